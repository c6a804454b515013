#!/usr/bin/env python3
"""Writes the single-byte mutations of fixtures/hdf5-hostile/base.h5 listed in MUTATIONS (offsets found with
scripts/fuzz-hdf5.py; see fixtures/hdf5-hostile/README.md for what each does to libhdf5 1.10.8).

Usage: python3 scripts/make_hdf5_hostile.py [fixtures/hdf5-hostile]
"""
import os
import sys

# file, offset, byte in base.h5, byte written
MUTATIONS = [
    ("layer-names-heap-index.h5", 917, 0x00, 0xFF),
    ("backend-heap-index.h5", 989, 0x00, 0xFF),
    ("heap-object-size.h5", 2073, 0x00, 0xFF),
    ("weight-name-object-size.h5", 2233, 0x00, 0x10),
    ("heap-collection-size.h5", 2057, 0x10, 0x20),
]


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "fixtures/hdf5-hostile"
    base = open(os.path.join(folder, "base.h5"), "rb").read()
    for name, offset, old, new in MUTATIONS:
        if base[offset] != old:
            sys.exit(f"{name}: base.h5 holds {base[offset]:#04x} at {offset}, expected {old:#04x}")
        data = bytearray(base)
        data[offset] = new
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
