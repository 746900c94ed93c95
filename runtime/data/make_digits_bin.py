#!/usr/bin/env python3
"""Pack the handwritten digits CSV into runtime/data/digits.bin (run by hand).

Usage:
    python3 runtime/data/make_digits_bin.py path/to/digits.csv runtime/data/digits.bin

The input is the CSV with a header line and columns `label, p0 .. p63`
(1,797 rows, pixels 0-16, labels 0-9). The output format is described in
runtime/data/README.md; `runtime/src/data/digits.rs` reads it. Running the
script twice on the same CSV gives the same bytes (no timestamps).
"""

import csv
import struct
import sys

MAGIC = b"NFDG"
VERSION = 1
BITS = 5
PIXELS = 64
CLASSES = 10
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64-bit: the checksum the Rust reader recomputes over the body."""
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def pack_row(pixels):
    """64 values of 5 bits each, most significant bit first: 40 bytes."""
    acc = 0
    for p in pixels:
        acc = (acc << BITS) | p
    return acc.to_bytes(PIXELS * BITS // 8, "big")


def main(src: str, dst: str) -> None:
    with open(src, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        expected = ["label"] + [f"p{i}" for i in range(PIXELS)]
        if header != expected:
            sys.exit(f"{src}: unexpected header {header[:3]}...")
        body = bytearray()
        rows = 0
        for line_no, row in enumerate(reader, start=2):
            values = [int(v) for v in row]
            if len(values) != PIXELS + 1:
                sys.exit(f"{src}:{line_no}: {len(values)} columns, expected {PIXELS + 1}")
            label, pixels = values[0], values[1:]
            if not 0 <= label < CLASSES or not all(0 <= p <= 16 for p in pixels):
                sys.exit(f"{src}:{line_no}: label or pixel out of range")
            body.append(label)
            body += pack_row(pixels)
            rows += 1
    header = MAGIC + struct.pack("<BBBBIQ", VERSION, BITS, PIXELS, CLASSES, rows, fnv1a64(body))
    with open(dst, "wb") as f:
        f.write(header + bytes(body))
    print(f"{dst}: {rows} rows, {len(header) + len(body)} bytes, fnv1a64 {fnv1a64(body):#018x}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
