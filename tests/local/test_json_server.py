"""The JSON protocol (port 6666) of the real server process on loopback, in both pool modes."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import json_protocol
from app.probe import wait_for_port
from tests.local.conftest import ROOT, free_port, wait_for_rows

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@dataclass
class JsonServer:
    port: int  # the streaming dialect
    json_port: int
    storage: Path
    outcomes: Path
    process: subprocess.Popen

    def connect(self) -> Client:
        return Client(self.json_port)

    def rows(self, expected: int) -> list[dict[str, str]]:
        return wait_for_rows(self.outcomes, expected)


def start_server(tmp_path: Path, pool: str, timeout: float = 2) -> JsonServer:
    port = json_port = free_port()
    while json_port == port:  # the kernel may hand out the same free port twice
        json_port = free_port()
    storage, outcomes = tmp_path / "storage", tmp_path / "outcomes.csv"
    command = [sys.executable, "-m", "app.fileserver", "--pool", pool, "--workers", "2", "--host", "127.0.0.1",
               "--port", str(port), "--json-port", str(json_port), "--storage", str(storage),
               "--outcomes", str(outcomes), "--timeout", str(timeout), "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert wait_for_port("127.0.0.1", json_port, 10), "server did not start"
    return JsonServer(port, json_port, storage, outcomes, process)


def stop_server(server: JsonServer, limit: float = 15) -> float:
    """SIGTERM; returns how long the server took to stop (it must exit 0)."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        assert server.process.wait(timeout=limit) == 0, "server did not stop cleanly on SIGTERM"
    finally:
        server.process.kill()
    return time.monotonic() - started


@pytest.fixture(params=["thread", "process"])
def server(request, tmp_path) -> Iterator[JsonServer]:
    server = start_server(tmp_path, request.param)
    try:
        yield server
    finally:
        stop_server(server)


class Client:
    """One JSON connection; answers may come several in one segment."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_answer(self, limit: int = 1 << 24) -> dict:
        """One answer: JSON up to the blank line."""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {self.buffer[:200]!r}"
            self.buffer += chunk
            assert len(self.buffer) < limit
        answer, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return json.loads(answer)

    def ask(self, request: bytes) -> dict:
        self.sendall(request)
        return self.read_answer()

    def closed_by_server(self) -> bool:
        try:
            return not self.buffer and self.sock.recv(100) == b""
        except ConnectionResetError:
            return True


def upload_request(name: str, data: bytes) -> bytes:
    return json_protocol.upload_prefix(name) + base64.b64encode(data) + b"\r\n\r\n"


def test_bare_commands_like_the_reference_client_on_one_connection(server):
    (server.storage / "Foto Kampus.JPG").write_bytes(b"x")  # not a name a request can carry, still listed
    (server.storage / "b.pdf").write_bytes(b"%PDF")
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"LIST")  # no terminator at all, the connection stays open
        assert sock.read_answer() == {"status": "OK", "data": ["Foto Kampus.JPG", "b.pdf"]}
        assert time.monotonic() - started < 1.5
        sock.sendall(b"GET b.pdf")
        assert sock.read_answer() == {"status": "OK", "data_namafile": "b.pdf", "data_file": "JVBERg=="}
        # The terminator a client sends late, on its own, is not a request of its own.
        sock.sendall(b"\r\n\r\n")
        assert sock.ask(b"LIST\r\n\r\n")["data"] == ["Foto Kampus.JPG", "b.pdf"]


def test_upload_get_delete_keep_the_case_of_names(server):
    with server.connect() as sock:
        stored = sock.ask(upload_request("Laporan.PDF", PAYLOAD))
        assert stored["status"] == "OK" and stored["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
        assert (server.storage / "Laporan.PDF").read_bytes() == PAYLOAD
        got = sock.ask(b"GET Laporan.PDF\r\n\r\n")
        assert got["data_namafile"] == "Laporan.PDF" and base64.b64decode(got["data_file"]) == PAYLOAD
        assert sock.ask(b"GET laporan.pdf\r\n\r\n") == {"status": "ERROR", "data": "File not found"}
        assert sock.ask(b"DELETE Laporan.PDF\r\n\r\n")["status"] == "OK"
        assert sock.ask(b"HAPUS Laporan.PDF\r\n\r\n") == {"status": "ERROR", "data": "File not found"}
        assert sock.ask(b"LIST\r\n\r\n") == {"status": "OK", "data": []}
    rows = server.rows(6)
    assert [(r["command"], r["filename"], r["status"]) for r in rows] == [
        ("JSON-UPLOAD", "Laporan.PDF", "ok"),
        ("JSON-GET", "Laporan.PDF", "ok"),
        ("JSON-GET", "laporan.pdf", "error"),
        ("JSON-DELETE", "Laporan.PDF", "ok"),
        ("JSON-DELETE", "Laporan.PDF", "error"),
        ("JSON-LIST", "", "ok"),
    ]
    assert rows[0]["bytes"] == rows[1]["bytes"] == str(len(PAYLOAD))
    assert rows[0]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert int(rows[1]["wire_bytes"]) > len(PAYLOAD) * 4 // 3


def test_pipelined_requests_and_an_upload_cut_in_tiny_pieces(server):
    with server.connect() as sock:
        sock.sendall(upload_request("a.txt", b"first") + b"LIST\r\n\r\nGET a.txt\r\n\r\n")
        assert sock.read_answer()["status"] == "OK"
        assert sock.read_answer()["data"] == ["a.txt"]
        assert base64.b64decode(sock.read_answer()["data_file"]) == b"first"
        # The terminator split over several segments, one byte at a time.
        request = upload_request("a.txt", b"second version")
        for offset in range(0, len(request), 3):
            sock.sendall(request[offset : offset + 3])
            time.sleep(0.01)
        assert sock.read_answer()["status"] == "OK"
    assert (server.storage / "a.txt").read_bytes() == b"second version"


def test_errors_that_leave_the_connection_usable(server):
    with server.connect() as sock:
        assert sock.ask(b"FOO bar\r\n\r\n") == {"status": "ERROR", "data": "request tidak dikenali"}
        assert sock.ask(b"GET ../../etc/passwd\r\n\r\n")["data"].startswith("Invalid filename")
        assert sock.ask(b"GET\r\n\r\n") == {"status": "ERROR", "data": "Usage: GET <filename>"}
        assert sock.ask(b"UPLOAD a.bin\r\n\r\n")["data"].startswith("Usage: UPLOAD")
        assert sock.ask(b"UPLOAD a.bin QUJ\r\n\r\n") == {"status": "ERROR", "data": "Invalid Base64 data stream"}
        assert sock.ask(b"LIST\r\n\r\n") == {"status": "OK", "data": []}
    assert sorted(os.listdir(server.storage)) == []  # no temporary file left either


def test_errors_in_the_middle_of_an_upload_close_the_connection_and_keep_the_old_file(server):
    with server.connect() as sock:
        assert sock.ask(upload_request("keep.bin", PAYLOAD))["status"] == "OK"
    with server.connect() as sock:
        sock.sendall(b"UPLOAD keep.bin QUJD!!!!QUJD")
        assert sock.read_answer() == {"status": "ERROR", "data": "Invalid Base64 data stream"}
        assert sock.closed_by_server()
    with server.connect() as sock:  # a client that gives up half way
        sock.sendall(b"UPLOAD keep.bin " + b"QUJD" * 1000)
    with server.connect() as sock:
        sock.sendall(b"UPLOAD ../keep.bin QUJD\r\n\r\n")
        assert sock.read_answer()["data"].startswith("Invalid filename")
        assert sock.closed_by_server()
    rows = server.rows(4)  # two workers: the rows of the last three may come in any order
    assert sorted(r["status"] for r in rows) == ["error", "error", "error", "ok"]
    assert any("connection closed after 3000 bytes" in r["error"] for r in rows)
    assert (server.storage / "keep.bin").read_bytes() == PAYLOAD
    assert sorted(os.listdir(server.storage)) == ["keep.bin"]


def test_silent_and_idle_clients(server):
    with server.connect() as sock:  # says nothing: an error answer after the idle timeout
        started = time.monotonic()
        assert sock.read_answer() == {"status": "ERROR", "data": "Timeout waiting for client"}
        assert 1.5 < time.monotonic() - started < 8
        assert sock.closed_by_server()
    with server.connect() as sock:  # an UPLOAD without its terminator is never stored
        sock.sendall(b"UPLOAD never.bin QUJD")
        assert sock.read_answer() == {"status": "ERROR", "data": "Timeout waiting for client"}
    with server.connect() as sock:  # idle after a request: closed without an answer, recorded with its cause
        assert sock.ask(b"LIST\r\n\r\n")["status"] == "OK"
        started = time.monotonic()
        assert sock.closed_by_server()
        assert 1.5 < time.monotonic() - started < 8
    rows = server.rows(4)  # a row follows its answer: they may be written in any order
    assert sorted((r["command"], r["error"]) for r in rows) == [
        ("JSON", "header-timeout: no complete request header within 2s"),
        ("JSON", "idle-timeout: no request within 2s"),
        ("JSON-LIST", ""),
        ("JSON-UPLOAD", "body-too-slow: 0 bytes in 2s, under 64KiB/s"),
    ]
    assert not (server.storage / "never.bin").exists()


def test_header_too_large(server):
    with server.connect() as sock:
        sock.sendall(b"G" * 9000)
        assert sock.read_answer() == {"status": "ERROR", "data": "Header too large"}
        assert sock.closed_by_server()


def peak_rss_kib(pid: int) -> int:
    """Largest VmHWM of the server process and its children (the workers in process mode)."""
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    peaks = []
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            peaks += [int(line.split()[1]) for line in f if line.startswith("VmHWM:")]
    return max(peaks)


def test_memory_stays_bounded_whatever_the_file_size(server, tmp_path):
    """40 MiB up and down (53 MiB of base64 each way) with under 40 MiB of peak memory."""
    size = 40 << 20
    csv_path = tmp_path / "clients.csv"
    base = [sys.executable, "-m", "app.stress_client", "--protocol", "json", "--size", str(size), "--clients", "1",
            "--host", "127.0.0.1", "--port", str(server.json_port), "--files", str(tmp_path / "files"),
            "--csv", str(csv_path)]  # fmt: skip
    for op in ("upload", "download"):
        done = subprocess.run([*base, "--op", op], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert peak_rss_kib(server.process.pid) < 40 * 1024


def test_stress_client_speaks_json(server, tmp_path):
    csv_path = tmp_path / "clients.csv"
    base = [sys.executable, "-m", "app.stress_client", "--protocol", "json", "--size", "2MiB", "--clients", "3",
            "--host", "127.0.0.1", "--port", str(server.json_port), "--files", str(tmp_path / "files"),
            "--csv", str(csv_path)]  # fmt: skip
    for op, pool in (("upload", "process"), ("download", "thread")):
        done = subprocess.run([*base, "--op", op, "--pool", pool], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"3/3 {op}s of file_2MiB.bin" in done.stdout
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["op"], r["status"], r["protocol"]) for r in rows] == [("upload", "ok", "json")] * 3 + [
        ("download", "ok", "json")
    ] * 3
    server_rows = server.rows(6)
    assert sorted(r["command"] for r in server_rows) == ["JSON-GET"] * 3 + ["JSON-UPLOAD"] * 3
    assert {r["peer_port"] for r in server_rows} == {r["local_port"] for r in rows}
    # A file the server does not have: one failed row, with the server's reason.
    done = subprocess.run([*base, "--op", "download", "--name", "other.bin"], capture_output=True, text=True)
    assert done.returncode == 3 and "server: File not found" in done.stdout


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_an_idle_json_connection_does_not_delay_shutdown(tmp_path, pool):
    server = start_server(tmp_path, pool, timeout=60)
    try:
        with server.connect() as sock:
            assert sock.ask(b"LIST\r\n\r\n")["status"] == "OK"
            assert stop_server(server) < 5  # not the 60 s idle timeout
    finally:
        server.process.kill()


def test_json_port_off_by_default_and_must_differ(tmp_path):
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "app.fileserver", "--port", str(port), "--json-port", str(port)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "--json-port must differ from --port" in done.stderr


def test_stress_client_refuses_a_name_no_protocol_can_carry(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "app.stress_client", "--op", "upload", "--protocol", "json", "--size", "1KiB",
         "--name", "Foto Kampus.JPG", "--files", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "separate words by blanks" in done.stderr


def test_an_empty_file_and_links(server, tmp_path):
    """An empty file is an empty data_file; a link in storage is neither listed, served nor deleted."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the storage folder")
    (server.storage / "link.txt").symlink_to(secret)
    with server.connect() as sock:
        assert sock.ask(upload_request("empty.bin", b""))["data"] == "empty.bin stored (0 bytes)"
        assert (server.storage / "empty.bin").read_bytes() == b""
        assert sock.ask(b"GET empty.bin\r\n\r\n") == {"status": "OK", "data_namafile": "empty.bin", "data_file": ""}
        # Nothing followed that answer: the next one is LIST's.
        assert sock.ask(b"LIST\r\n\r\n") == {"status": "OK", "data": ["empty.bin"]}
        assert sock.ask(b"GET link.txt\r\n\r\n") == {"status": "ERROR", "data": "File not found"}
        assert sock.ask(b"DELETE link.txt\r\n\r\n") == {"status": "ERROR", "data": "File not found"}
    assert (server.storage / "link.txt").is_symlink() and secret.read_text() == "outside the storage folder"


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_slow_upload_leaves_no_short_timeout_for_the_next_answer(tmp_path, pool):
    # An upload whose body comes late makes the rate check shorten the socket's
    # timeout; the pipelined GET after it must be sent under the idle timeout
    # (10 s here), not that leftover, while the client pauses for 4 s.
    server = start_server(tmp_path, pool, timeout=10)
    try:
        big = os.urandom(8 << 20)  # its base64 does not fit the loopback socket buffers
        (server.storage / "big.bin").write_bytes(big)
        with server.connect() as sock:
            sock.sendall(json_protocol.upload_prefix("small.bin"))
            time.sleep(0.3)
            sock.sendall(base64.b64encode(b"small") + b"\r\n\r\nGET big.bin\r\n\r\n")
            time.sleep(4)
            sock.sock.settimeout(20)
            assert sock.read_answer()["status"] == "OK"
            assert base64.b64decode(sock.read_answer(limit=1 << 26)["data_file"]) == big
        rows = server.rows(2)
        assert [row["status"] for row in rows] == ["ok", "ok"], rows
    finally:
        stop_server(server)


def test_a_storage_folder_that_fails_is_answered_not_dropped(server, tmp_path):
    # The folder becomes a link to itself: every path through it fails with ELOOP,
    # an error of the disk's side (like EIO or EROFS), not of the client's request.
    server.storage.rename(tmp_path / "moved")
    server.storage.symlink_to(server.storage.name)
    with server.connect() as sock:
        for request in (b"LIST\r\n\r\n", b"DELETE a.txt\r\n\r\n"):
            answer = sock.ask(request)
            assert answer == {"status": "ERROR", "data": "Server storage error: Too many levels of symbolic links"}
    errors = [row["error"] for row in server.rows(2)]
    assert errors[-2:] == ["Server storage error: Too many levels of symbolic links"] * 2
