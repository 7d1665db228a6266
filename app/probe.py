"""Wait until a TCP port accepts connections (a readiness check, not a sleep).

    python -m app.probe --host 172.16.16.101 --port 8889 --wait 30

Exits 0 as soon as a connection succeeds, 1 when ``--wait`` seconds pass
first. The connection is closed without sending a byte; the file server
does not count such connections as requests.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

from app.contract import STREAM_PORT


def wait_for_port(host: str, port: int, wait: float, interval: float = 0.1) -> bool:
    """Try to connect until it works or ``wait`` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.2, min(2.0, wait))):
                return True
        except OSError:
            if time.monotonic() + interval > deadline:
                return False
            time.sleep(interval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.probe", description="Wait for a TCP port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=STREAM_PORT)
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to keep trying (default: one try)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if wait_for_port(args.host, args.port, args.wait):
        return 0
    print(f"probe: {args.host}:{args.port} not accepting connections", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
