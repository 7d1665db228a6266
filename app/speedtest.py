"""Speed limits of a node, for the benchmark: raw TCP, base64 and SHA-256.

    python -m app.speedtest codec                      base64 decode/encode and SHA-256 speed
    python -m app.speedtest sink --port 5201           receive one TCP stream and discard it
    python -m app.speedtest send --host H --port 5201 --bytes 2GiB --seconds 20

Each prints one JSON object. ``send`` counts until the sink has confirmed
every byte, so the figure is what the receiver got, not what sat in a
buffer. Both ends are bounded by bytes and by time, and stop by themselves.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import json
import os
import socket
import sys
import time

from app.contract import SPEEDTEST_PORT
from app.sizes import parse_size

BUFFER = 4 << 20  # 4 MiB per send/recv: few system calls per byte moved


def _rate(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 2**20 if seconds > 0 else 0.0


def codec_speeds(size: int = 64 << 20) -> dict[str, float]:
    """MiB/s of file bytes for base64 decode and encode, and for SHA-256, in 1 MiB pieces like the server."""
    data = os.urandom(size)
    encoded = binascii.b2a_base64(data, newline=False)
    view, encoded_view = memoryview(data), memoryview(encoded)
    piece = 1 << 20
    started = time.perf_counter()
    for offset in range(0, len(encoded), piece):
        binascii.a2b_base64(encoded_view[offset : offset + piece], strict_mode=True)
    decode = _rate(size, time.perf_counter() - started)
    started = time.perf_counter()
    for offset in range(0, size, 3 * 256 * 1024):
        binascii.b2a_base64(view[offset : offset + 3 * 256 * 1024], newline=False)
    encode = _rate(size, time.perf_counter() - started)
    hasher = hashlib.sha256()
    started = time.perf_counter()
    for offset in range(0, size, piece):
        hasher.update(view[offset : offset + piece])
    sha = _rate(size, time.perf_counter() - started)
    return {"base64_decode_mibps": decode, "base64_encode_mibps": encode, "sha256_mibps": sha}


def sink(port: int, seconds: float) -> dict[str, float]:
    """Accept one connection, read until EOF, confirm the byte count."""
    with socket.create_server(("0.0.0.0", port), reuse_port=True) as server:
        server.settimeout(seconds)
        print("listening", flush=True)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(seconds)
            buffer = bytearray(BUFFER)
            received = 0
            started = time.perf_counter()
            deadline = time.monotonic() + seconds  # bounded in time even if the sender never stops
            while (count := conn.recv_into(buffer)) and time.monotonic() < deadline:
                received += count
            elapsed = time.perf_counter() - started
            conn.sendall(f"{received}\n".encode())
    return {"bytes": received, "seconds": elapsed, "mibps": _rate(received, elapsed)}


def send(host: str, port: int, nbytes: int, seconds: float) -> dict[str, float]:
    """Send up to ``nbytes`` (or for ``seconds``) and wait for the sink's confirmation."""
    payload = memoryview(os.urandom(BUFFER))
    with socket.create_connection((host, port), timeout=seconds + 10) as conn:
        started = time.perf_counter()
        deadline = time.monotonic() + seconds
        sent = 0
        while sent < nbytes and time.monotonic() < deadline:
            chunk = payload[: min(BUFFER, nbytes - sent)]
            conn.sendall(chunk)
            sent += len(chunk)
        conn.shutdown(socket.SHUT_WR)
        confirmed = int(conn.makefile().readline() or 0)
        elapsed = time.perf_counter() - started
    if confirmed != sent:
        raise OSError(f"sink confirmed {confirmed} of {sent} bytes")
    return {"bytes": sent, "seconds": elapsed, "mibps": _rate(sent, elapsed)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.speedtest", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("codec", help="base64 and SHA-256 speed")
    sink_args = sub.add_parser("sink", help="receive one TCP stream")
    sink_args.add_argument("--port", type=int, default=SPEEDTEST_PORT)
    sink_args.add_argument("--seconds", type=float, default=60, help="give up after this long")
    send_args = sub.add_parser("send", help="send one TCP stream")
    send_args.add_argument("--host", required=True)
    send_args.add_argument("--port", type=int, default=SPEEDTEST_PORT)
    send_args.add_argument("--bytes", type=parse_size, default=parse_size("2GiB"))
    send_args.add_argument("--seconds", type=float, default=20, help="stop sending after this long")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.mode == "codec":
            result = codec_speeds()
        elif args.mode == "sink":
            result = sink(args.port, args.seconds)
        else:
            result = send(args.host, args.port, args.bytes, args.seconds)
    except OSError as exc:
        print(f"speedtest: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
