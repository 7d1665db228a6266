"""The UDP experiment's default file: a small, real PNG image, the same bytes everywhere.

    python -m app.sample_image --out sample.png

The course's UDP assignment sent "an image of about 12 KB" (12,371 bytes in
the report). This module draws a 64 x 63 picture (sky, sun, hills) and
writes it as a valid PNG of exactly 12,371 bytes, so one byte per datagram
means 12,371 datagrams per receiver, as in the report.

Why not ship a binary file or compress the pixels with ``zlib.compress``?
Compressed output may differ between zlib builds (zlib, zlib-ng), and then
the host and the three nodes would disagree on the SHA-256. So the pixels
are stored in *uncompressed* deflate blocks, which every PNG viewer reads
and whose bytes are fixed by the format alone. Only integer arithmetic is
used, so the picture is identical on every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import zlib

from app.contract import SAMPLE_IMAGE_SIZE as TARGET_SIZE  # 12,371 bytes, the size of the course report's test image

WIDTH = 64
HEIGHT = 63
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STORED_BLOCK_MAX = 65_535  # the most bytes one uncompressed deflate block can hold
COMMENT = "progjar-lab sample image for the UDP experiment: sky, sun and hills, 64x63 RGB, uncompressed."


def _pixel(x: int, y: int) -> tuple[int, int, int]:
    """Colour of one pixel: integer arithmetic only, so every machine agrees."""
    sun_x, sun_y, sun_r = 46, 16, 9
    if (x - sun_x) ** 2 + (y - sun_y) ** 2 <= sun_r * sun_r:
        return 255, 214 - (y - sun_y + sun_r) * 3, 64
    hill = 44 + ((x - 20) ** 2) // 60 if x < 40 else 40 + ((x - 52) ** 2) // 40
    if y >= hill:
        shade = (y - hill) * 3 + ((x * 7 + y * 13) % 11)  # a little texture on the grass
        return 34 + shade // 2, 139 - shade, 34
    return 70 + y * 2, 130 + y, 235 - y  # sky: lighter towards the horizon


def raw_scanlines(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The picture as PNG scanlines: each row is a filter byte (0: none) and RGB triples."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows.extend(_pixel(x, y))
    return bytes(rows)


def stored_zlib(data: bytes) -> bytes:
    """A zlib stream holding ``data`` in uncompressed deflate blocks (RFC 1950/1951)."""
    out = bytearray(b"\x78\x01")  # zlib header: deflate, 32 KiB window, no dictionary
    if not data:
        out += b"\x01\x00\x00\xff\xff"  # one empty final block
    for offset in range(0, len(data), STORED_BLOCK_MAX):
        block = data[offset : offset + STORED_BLOCK_MAX]
        final = 1 if offset + STORED_BLOCK_MAX >= len(data) else 0
        out += struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block
    out += struct.pack(">I", zlib.adler32(data))
    return bytes(out)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def sample_png() -> bytes:
    """The lab's sample image: a valid PNG of exactly TARGET_SIZE bytes."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0))  # 8-bit RGB
    pixels = png_chunk(b"IDAT", stored_zlib(raw_scanlines()))
    end = png_chunk(b"IEND", b"")
    # A tEXt comment fills the file up to the report's size exactly.
    chunk_overhead = 12  # length, type and CRC of the comment chunk
    room = TARGET_SIZE - len(PNG_SIGNATURE) - len(header) - len(pixels) - len(end) - chunk_overhead
    text = b"Comment\x00" + COMMENT.encode("ascii")
    if room < len(text):
        raise AssertionError(f"picture too large for {TARGET_SIZE} bytes")
    comment = png_chunk(b"tEXt", text.ljust(room, b" "))
    return PNG_SIGNATURE + header + comment + pixels + end


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.sample_image", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="sample.png", help="file to write (default: ./sample.png)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data = sample_png()
    try:
        with open(args.out, "wb") as f:
            f.write(data)
    except OSError as exc:
        print(f"sample_image: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{hashlib.sha256(data).hexdigest()}  {args.out}  ({len(data)} bytes, {WIDTH}x{HEIGHT} PNG)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
