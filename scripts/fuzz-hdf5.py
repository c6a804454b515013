#!/usr/bin/env python3
"""Finds single-byte mutations of an .h5 file that crash or hang libhdf5 in GPT2Kit's reader.

Each mutated copy is read by the in-process reader (`KerasHDF5.readWeightFileInProcess`) as the helper
executable runs it -- `gpt2kit-hdf5 read -- FILE`, its output channel on descriptor 3 -- in a throwaway
child process with a wall-clock limit, so a crash or a hang costs one child. Prints one line per mutation
that ends in a signal or runs out of time:

    OFFSET OLD->NEW signal N | timeout

Usage:
    swift build --product gpt2kit-hdf5
    python3 scripts/fuzz-hdf5.py FILE.h5 [--helper .build/debug/gpt2kit-hdf5] [--offsets A-B]
                                 [--values 00,ff,x01,x80] [--timeout 5]

`--values` takes hex bytes to store and `xNN` for "old byte XOR NN". Used to make fixtures/hdf5-hostile/
(see its README).
"""
import argparse
import os
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--helper", default=".build/debug/gpt2kit-hdf5")
    parser.add_argument("--offsets", help="A-B (end exclusive); default: the whole file")
    parser.add_argument("--values", default="00,ff,x01,x80")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    original = open(args.file, "rb").read()
    start, end = 0, len(original)
    if args.offsets:
        a, b = args.offsets.split("-")
        start, end = int(a), min(int(b), len(original))
    values = args.values.split(",")
    workdir = tempfile.mkdtemp(prefix="fuzz-hdf5-")
    path = os.path.join(workdir, "mutated.h5")
    channel = os.path.join(workdir, "channel")
    for offset in range(start, end):
        old = original[offset]
        tried = set()
        for spec in values:
            new = old ^ int(spec[1:], 16) if spec.startswith("x") else int(spec, 16)
            if new == old or new in tried:
                continue
            tried.add(new)
            data = bytearray(original)
            data[offset] = new
            with open(path, "wb") as f:
                f.write(data)
            try:
                # The shell opens the channel read-write as descriptor 3 (the helper maps it), then becomes the
                # helper (exec keeps the pid, so a signal ends "the child" itself and a timeout kills it).
                result = subprocess.run(
                    ["/bin/sh", "-c", 'exec "$0" read -- "$1" 3<>"$2"', args.helper, path, channel],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.timeout)
                outcome = f"signal {-result.returncode}" if result.returncode < 0 else None
            except subprocess.TimeoutExpired:
                outcome = "timeout"
            if outcome:
                print(f"{offset} {old:02x}->{new:02x} {outcome}", flush=True)
    for name in (path, channel):
        if os.path.exists(name):
            os.unlink(name)
    os.rmdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
