#!/usr/bin/env python3
"""Assemble a folder of plain-text documents (default ~200 MB) for the corpus-data benchmark
(docs/benchmarks.md, "Corpus data"): one .txt file per source file, as a user's corpus folder looks.

Deterministic for a given machine: each source's files are taken in sorted order until its share of
the budget is used (a source that runs short passes the rest of its share on to the next one). Files
that are not valid UTF-8 are skipped; gzip'd files (changelogs, man pages) are decompressed (the same
reader as scripts/make-tokenizer-corpus.py). Output: OUT/<source>/<NNNNNN>.txt.

    python3 scripts/make-corpus-folder.py Benchmarks/corpus-200mb --megabytes 200
    python3 scripts/make-corpus-folder.py Benchmarks/corpus-20mb --megabytes 20
"""
import argparse
import glob
import importlib.util
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_tokenizer_corpus", os.path.join(HERE, "make-tokenizer-corpus.py"))
make_tokenizer_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_tokenizer_corpus)
read_text = make_tokenizer_corpus.read_text

# (folder name, glob patterns, share of the total); a source that runs short passes its rest to the next.
SOURCES = [
    ("c-headers", ["/usr/include/**/*.h"], 0.20),
    ("python", ["/usr/lib/python3*/**/*.py"], 0.25),
    ("swift-toolchain", ["/opt/swift/**/*.swiftinterface", "/opt/swift/**/*.md", "/opt/swift/**/*.h"], 0.10),
    ("docs", ["/usr/share/common-licenses/*", "/usr/share/doc/**/*.txt", "/usr/share/doc/**/README*",
              "/usr/share/doc/**/copyright", "/usr/share/doc/**/changelog*.gz", "/usr/share/doc/**/NEWS*",
              "/usr/share/doc/**/*.md"], 0.20),
    ("man-pages", ["/usr/share/man/**/*.gz"], 0.25),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("--megabytes", type=float, default=200.0)
    args = parser.parse_args()
    total = int(args.megabytes * 1_000_000)
    if os.path.exists(args.output):
        shutil.rmtree(args.output)
    written, carry = 0, 0
    for label, patterns, share in SOURCES:
        budget = int(total * share) + carry
        used, count = 0, 0
        folder = os.path.join(args.output, label)
        os.makedirs(folder, exist_ok=True)
        files = sorted({p for pattern in patterns for p in glob.glob(pattern, recursive=True)})
        for path in files:
            if used >= budget:
                break
            text = read_text(path)
            if text is None:
                continue
            data = text.encode("utf-8")
            with open(os.path.join(folder, f"{count:06d}.txt"), "wb") as f:
                f.write(data)
            used += len(data)
            count += 1
        carry = max(0, budget - used)
        print(f"{label}: {count} files, {used / 1e6:.2f} MB", file=sys.stderr)
        written += used
    print(f"wrote {args.output}: {written / 1e6:.2f} MB" + (f" ({carry / 1e6:.1f} MB short: the machine has no more text)" if carry else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
