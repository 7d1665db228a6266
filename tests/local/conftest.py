"""A real file server process on loopback, for fast tests of its behaviour."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.probe import wait_for_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocalServer:
    port: int
    storage: Path
    outcomes: Path
    process: subprocess.Popen
    json_port: int = 0

    def request(self, data: bytes, shutdown: bool = False, limit: int = 1 << 20) -> bytes:
        """Send ``data``, read until the server closes (at most ``limit`` bytes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            if shutdown:
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while sum(map(len, chunks)) < limit and (chunk := sock.recv(65536)):
                chunks.append(chunk)
            return b"".join(chunks)

    def rows(self, expected: int) -> list[dict[str, str]]:
        return wait_for_rows(self.outcomes, expected)


def wait_for_rows(outcomes: Path, expected: int) -> list[dict[str, str]]:
    """The server's outcome rows, once ``expected`` of them are written (at most 5 s).

    A worker appends its row just after the client has its answer, so a
    test that reads at once could race it.
    """
    deadline = time.monotonic() + 5
    while True:
        with outcomes.open() as f:
            rows = list(csv.DictReader(f))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    tmp_path: Path,
    pool: str,
    *options: str,
    workers: int = 2,
    timeout: float = 2,
    json: bool = False,
    preexec_fn: Callable[[], None] | None = None,
    stderr: int | None = None,
) -> LocalServer:
    """Start ``python -m app.fileserver`` on loopback with these options (and the JSON protocol if ``json``).

    ``preexec_fn`` runs in the server's process before it starts (e.g. to set a resource limit).
    """
    port, json_port = free_port(), (free_port() if json else 0)
    if json:
        options = (*options, "--json-port", str(json_port))
    storage, outcomes = tmp_path / "storage", tmp_path / "outcomes.csv"
    command = [sys.executable, "-m", "app.fileserver", "--pool", pool, "--workers", str(workers),
               "--host", "127.0.0.1", "--port", str(port), "--storage", str(storage),
               "--outcomes", str(outcomes), "--timeout", str(timeout), "--quiet", *options]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=preexec_fn, stderr=stderr
    )
    assert wait_for_port("127.0.0.1", port, 10), "server did not start"
    return LocalServer(port, storage, outcomes, process, json_port)


def stop_server(server: LocalServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        assert server.process.wait(timeout=15) == 0, "server did not stop cleanly on SIGTERM"
    finally:
        server.process.kill()


@pytest.fixture(params=["thread", "process"])
def server(request, tmp_path) -> Iterator[LocalServer]:
    server = start_server(tmp_path, request.param)
    try:
        yield server
    finally:
        stop_server(server)
