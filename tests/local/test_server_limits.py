"""Idle and slow clients cost a file descriptor, never a worker; the server's other limits.

Real server processes on loopback, in both pool modes. The "default" server
runs as ``docker compose up`` starts it: 5 workers, a 60 s idle timeout,
and the default header deadline and minimum upload rate.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from app import json_protocol, protocol
from app.csvlog import CsvLog
from app.fileserver import OUTCOME_FIELDS
from tests.local.conftest import ROOT, LocalServer, start_server, stop_server

SMALL = os.urandom(3000)
GET_LIMIT = 5.0  # seconds: the bound for a normal GET beside hostile clients


@pytest.fixture(params=["thread", "process"])
def default_server(request, tmp_path) -> Iterator[LocalServer]:
    server = start_server(tmp_path, request.param, workers=5, timeout=60, json=True)
    (server.storage / "small.bin").write_bytes(SMALL)
    try:
        yield server
    finally:
        stop_server(server)


def timed_get(server: LocalServer) -> float:
    """Seconds a normal GET takes; the client gives up after 10 s (the socket's timeout)."""
    started = time.monotonic()
    assert server.request(protocol.get_header("small.bin")) == protocol.size_reply(len(SMALL)) + SMALL
    return time.monotonic() - started


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def json_answer(sock: socket.socket) -> dict:
    data = b""
    while not data.endswith(protocol.TERMINATOR):  # bounded by the socket's timeout
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return json.loads(data)


def test_idle_connections_do_not_keep_a_get_waiting(default_server):
    with ExitStack() as stack:
        for i in range(40):  # they connect, and say nothing
            stack.enter_context(connect(default_server.json_port if i % 4 == 0 else default_server.port))
        assert timed_get(default_server) < GET_LIMIT


def test_trickling_uploads_do_not_keep_a_get_waiting_and_are_cut(default_server):
    stop = threading.Event()
    with ExitStack() as stack:
        uploads = [stack.enter_context(connect(default_server.port)) for _ in range(8)]
        for i, sock in enumerate(uploads):
            sock.sendall(protocol.upload_header(f"trickle-{i}.bin", 400_000))

        def trickle() -> None:
            for _ in range(15):  # one byte per second each, 15 s at most
                for sock in uploads:
                    try:
                        sock.send(b"Q")
                    except OSError:
                        pass  # cut by the server
                if stop.wait(1):
                    return

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            time.sleep(0.5)  # every upload is under way
            assert timed_get(default_server) < GET_LIMIT
        finally:
            stop.set()
            trickler.join()
        rows = [r for r in default_server.rows(9) if r["command"] == "UPLOAD"]
        assert len(rows) == 8
        assert all(r["error"].startswith("body-too-slow: ") for r in rows), rows
        for sock in uploads:  # each was told why, after its READY
            assert _until_close(sock).endswith(b"ERROR Timeout waiting for client\r\n\r\n")
    assert not [p.name for p in default_server.storage.iterdir() if p.name.startswith(".")]


def test_kept_open_json_connections_between_requests_hold_no_worker(default_server):
    with ExitStack() as stack:
        kept = [stack.enter_context(connect(default_server.json_port)) for _ in range(12)]
        for sock in kept:  # 12 > 5 workers: each must be answered while the others stay open
            sock.sendall(json_protocol.request("LIST"))
            assert json_answer(sock)["data"] == ["small.bin"]
        assert timed_get(default_server) < GET_LIMIT
        for sock in kept:  # still open, and served again: a bare command too, as the reference client sends
            started = time.monotonic()
            sock.sendall(b"GET small.bin")
            answer = json_answer(sock)
            assert base64.b64decode(answer["data_file"]) == SMALL
            assert time.monotonic() - started < 2


def test_a_kill_of_a_process_worker_sweeps_its_upload(tmp_path):
    """A worker killed mid-upload (as the OOM killer would) leaves no hidden temporary file behind."""
    server = start_server(tmp_path, "process", workers=1, timeout=30)
    try:
        with connect(server.port) as sock:
            sock.sendall(protocol.upload_header("big.bin", 8_000_000))
            assert sock.recv(100) == protocol.READY
            sock.sendall(b"QUJD" * 500_000)
            temp = _wait_for(lambda: [p for p in server.storage.iterdir() if p.name.startswith(".upload-")])
            assert temp, "the upload's temporary file did not appear"
            (worker,) = _children(server.process.pid)
            os.kill(worker, signal.SIGKILL)
            assert _wait_for(lambda: not temp[0].exists()), f"{temp[0].name} left behind"
        assert server.request(protocol.get_header("big.bin")) == b"ERROR File not found\r\n\r\n"  # a new worker
        assert list(server.storage.iterdir()) == []
    finally:
        stop_server(server)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_header_deadline_and_waiting_cap_cut_with_their_causes(tmp_path, pool):
    server = start_server(tmp_path, pool, "--header-timeout", "1.5", "--max-waiting", "4", timeout=60)
    try:
        with ExitStack() as stack:
            socks = [stack.enter_context(connect(server.port)) for _ in range(5)]
            ports = {str(sock.getsockname()[1]) for sock in socks}
            started = time.monotonic()
            assert _until_close(socks[0]) == b"ERROR Server busy: too many waiting connections\r\n\r\n"
            assert time.monotonic() - started < 1  # made room for the fifth at once
            for sock in socks[1:]:
                assert _until_close(sock) == b"ERROR Timeout waiting for client\r\n\r\n"
            assert 1.0 < time.monotonic() - started < 4
        errors = sorted(r["error"] for r in server.rows(5) if r["peer_port"] in ports)  # not the start-up probe
        assert errors == ["header-timeout: no complete request header within 1.5s"] * 4 + [
            "too-many-waiting: the oldest of 4 waiting connections, closed for a new one"
        ]
    finally:
        stop_server(server)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_an_upload_over_the_cap_is_refused_before_its_body(tmp_path, pool):
    server = start_server(tmp_path, pool, "--max-upload", "1KiB", json=True)
    try:
        fits, too_big = base64.b64encode(b"k" * 1024), base64.b64encode(b"x" * 1030)
        assert server.request(protocol.upload_header("a.bin", len(fits)) + fits).endswith(protocol.UPLOAD_COMPLETE)
        refused = b"ERROR File too large: the limit is 1KiB\r\n\r\n"
        assert server.request(protocol.upload_header("a.bin", len(too_big))) == refused  # no READY: no body sent
        just_over = base64.b64encode(b"x" * 1025)  # as many characters as 1024 bytes: known only once decoded
        assert server.request(protocol.upload_header("a.bin", len(just_over)) + just_over) == protocol.READY + refused
        with connect(server.json_port) as sock:
            sock.sendall(json_protocol.upload_prefix("a.bin") + too_big + protocol.TERMINATOR)
            assert json_answer(sock) == {"status": "ERROR", "data": "File too large: the limit is 1KiB"}
            assert _until_close(sock) == b""  # the rest of the upload cannot be told from a next request
        with connect(server.json_port) as sock:
            sock.sendall(json_protocol.upload_prefix("b.bin") + fits + protocol.TERMINATOR)
            assert json_answer(sock)["status"] == "OK"
        assert (server.storage / "a.bin").read_bytes() == (server.storage / "b.bin").read_bytes() == b"k" * 1024
        assert sorted(p.name for p in server.storage.iterdir()) == ["a.bin", "b.bin"]
    finally:
        stop_server(server)


def _until_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):  # bounded by the socket's timeout
        data += chunk
    return data


def _wait_for(check, seconds: float = 5):
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_an_unwritable_outcome_log_costs_rows_not_answers(tmp_path, pool):
    # The log holds its header and may not grow (as on a full disk): every row fails with EFBIG.
    CsvLog(str(tmp_path / "outcomes.csv"), OUTCOME_FIELDS).close()
    size = (tmp_path / "outcomes.csv").stat().st_size

    def cap_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    server = start_server(tmp_path, pool, "--header-timeout", "0.5", json=True, preexec_fn=cap_file_size)
    try:
        (server.storage / "small.bin").write_bytes(SMALL)
        with connect(server.port) as silent:  # cut by the waiting room
            assert _until_close(silent) == b"ERROR Timeout waiting for client\r\n\r\n"
        for _ in range(3):  # more requests than workers: each worker recorded a row, and lives on
            reply = server.request(protocol.get_header("small.bin"))  # the server closes after it
            assert reply == protocol.size_reply(len(SMALL)) + SMALL
            with connect(server.json_port) as sock:
                sock.sendall(b"LIST\r\n\r\n")
                assert json_answer(sock) == {"status": "OK", "data": ["small.bin"]}
        assert server.process.poll() is None
        assert (tmp_path / "outcomes.csv").stat().st_size == size
    finally:
        stop_server(server)


@pytest.mark.parametrize("protocol_name", ["stream", "json"])
def test_an_upload_refused_half_way_is_reported_with_the_servers_reason(tmp_path, protocol_name):
    server = start_server(tmp_path, "thread", "--max-upload", "1MiB", json=True)
    try:
        port = server.json_port if protocol_name == "json" else server.port
        done = subprocess.run(
            [sys.executable, "-m", "app.stress_client", "--protocol", protocol_name, "--op", "upload",
             "--size", "8MiB", "--host", "127.0.0.1", "--port", str(port), "--files", str(tmp_path / "files"),
             "--csv", str(tmp_path / "clients.csv")],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 3, done.stdout + done.stderr
        assert "server: File too large: the limit is 1MiB" in done.stdout, done.stdout
    finally:
        stop_server(server)


def test_a_second_sigterm_while_stopping_is_ignored(tmp_path):
    server = start_server(tmp_path, "thread", json=True, timeout=3, stderr=subprocess.PIPE)
    try:
        (server.storage / "big.bin").write_bytes(os.urandom(8 << 20))
        with connect(server.json_port) as sock:
            sock.sendall(b"GET big.bin\r\n\r\n")  # never read: the worker waits in its send
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the server now waits for that transfer
            server.process.send_signal(signal.SIGTERM)
            _, stderr = server.process.communicate(timeout=15)
        assert server.process.returncode == 0
        assert "Traceback" not in stderr.decode(), stderr
    finally:
        server.process.kill()
