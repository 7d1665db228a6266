"""A stress client's --timeout is one deadline per transfer, whatever a slow peer does.

Real sockets on loopback: a peer that keeps each socket call busy (a byte now
and then, or reading a little at a time) must not stretch a transfer past
its timeout.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.stress_client import Transfer, run_transfer

TIMEOUT = 1.0
PEER_LIMIT = 15.0  # the slow peer gives up after this long, so a broken client cannot hang the test


@pytest.fixture
def slow_peer() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection server that runs ``behave`` on its connection; returns its port."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(behave: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            listener.settimeout(PEER_LIMIT)
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(PEER_LIMIT)
                try:
                    behave(conn)
                except OSError:
                    pass  # the client gave up and closed: what the test expects

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return listener.getsockname()[1]

    yield start
    for listener in listeners:
        listener.close()
    for thread in threads:
        thread.join(PEER_LIMIT + 5)


def trickle_answer(conn: socket.socket) -> None:
    """Read the request, then answer one byte every 0.3 s (never a complete header)."""
    conn.recv(65536)
    stop = time.monotonic() + PEER_LIMIT
    while time.monotonic() < stop:
        conn.sendall(b"O")
        time.sleep(0.3)


def slow_reader(conn: socket.socket) -> None:
    """Accept the upload, then drain the socket every 0.8 s: no send waits a full timeout, yet it is slow."""
    conn.recv(65536)
    conn.sendall(b"OK Ready to receive\r\n\r\n")
    stop = time.monotonic() + PEER_LIMIT
    while time.monotonic() < stop and conn.recv(1 << 20):
        time.sleep(0.8)


def timed(job: Transfer) -> tuple[dict[str, object], float]:
    started = time.monotonic()
    row = run_transfer(job, 1)
    return row, time.monotonic() - started


def test_an_answer_that_trickles_in_ends_at_the_deadline(slow_peer, tmp_path):
    port = slow_peer(trickle_answer)
    reference = tmp_path / "f.bin"
    reference.write_bytes(b"x" * 1000)
    digest = hashlib.sha256(b"x" * 1000).hexdigest()
    job = Transfer("download", "127.0.0.1", port, str(reference), "f.bin", 1000, digest, TIMEOUT)
    row, seconds = timed(job)
    assert row["status"] == "error" and row["error"] == "timeout after 1s"
    assert seconds < TIMEOUT + 0.5


@pytest.mark.parametrize("with_sendfile", [True, False])
def test_a_slow_reader_cannot_stretch_an_upload_past_the_deadline(slow_peer, tmp_path, with_sendfile):
    port = slow_peer(slow_reader)
    size = 24 << 20  # far more than loopback's socket buffers hold
    source = tmp_path / "f.bin"
    source.write_bytes(b"\0" * size)
    encoded = tmp_path / "f.bin.b64"
    encoded.write_bytes(b"A" * (size // 3 * 4))  # the peer does not decode; only its length matters
    job = Transfer(
        "upload", "127.0.0.1", port, str(source), "f.bin", size, "0" * 64, TIMEOUT,
        base64_path=str(encoded) if with_sendfile else None,
    )  # fmt: skip
    row, seconds = timed(job)
    assert row["status"] == "error" and row["error"] == "timeout after 1s"
    assert seconds < TIMEOUT + 0.5
