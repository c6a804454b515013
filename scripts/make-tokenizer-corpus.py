#!/usr/bin/env python3
"""Assemble the tokenizer benchmark corpus (~20 MB of English prose and code) from text files
every Debian machine with the build tools has.

Deterministic for a given machine: files are taken in sorted order from each source until the
source's byte budget is used. Files that are not valid UTF-8 are skipped; gzip'd docs
(changelogs, READMEs) are decompressed. Each file is followed by a blank line.

    python3 scripts/make-tokenizer-corpus.py [OUTPUT] [--megabytes 20]
"""
import argparse
import glob
import gzip
import os
import sys

# (label, glob patterns, share of the total)
SOURCES = [
    ("licenses and docs (prose)", ["/usr/share/common-licenses/*",
                                   "/usr/share/doc/**/*.txt", "/usr/share/doc/**/README*",
                                   "/usr/share/doc/**/copyright", "/usr/share/doc/**/changelog*.gz",
                                   "/usr/share/doc/**/NEWS*", "/usr/share/doc/**/*.md"], 0.40),
    ("python stdlib (code + docstrings)", ["/usr/lib/python3*/**/*.py"], 0.35),
    ("C headers (code + comments)", ["/usr/include/**/*.h"], 0.25),
]


def read_text(path):
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    return text if text.strip() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?", default="Benchmarks/tokenizer-corpus.txt")
    parser.add_argument("--megabytes", type=float, default=20.0)
    args = parser.parse_args()
    total = int(args.megabytes * 1_000_000)
    parts = []
    written = 0
    for label, patterns, share in SOURCES:
        budget = int(total * share)
        used = 0
        files = sorted({p for pattern in patterns for p in glob.glob(pattern, recursive=True)})
        count = 0
        for path in files:
            if used >= budget:
                break
            text = read_text(path)
            if text is None:
                continue
            chunk = text + "\n\n"
            parts.append(chunk)
            used += len(chunk.encode("utf-8"))
            count += 1
        print(f"{label}: {count} files, {used / 1e6:.2f} MB", file=sys.stderr)
        written += used
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="") as f:
        f.write("".join(parts))
    print(f"wrote {args.output}: {written / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
