"""The conformance suite (python -m app.conformance) against servers on loopback.

The lab's own server is the model answer: it passes every case, in both pool
modes and both protocols. A deliberately broken server fails exactly the
cases its defects break, with a transcript and a command to replay each; a
port nobody listens on fails the gate and skips the rest, quickly.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.conformance import all_cases
from tests.local.conftest import ROOT, free_port, start_server, stop_server

KEYS = ["id", "category", "points", "passed", "skipped", "detail", "transcript", "reproduce"]


def conformance(port: int, protocol: str, *options: str, limit: float = 240) -> tuple[int, list[dict], str]:
    """Run the suite with --json; returns (exit status, one dict per case, stderr)."""
    command = [sys.executable, "-m", "app.conformance", "--host", "127.0.0.1", "--port", str(port),
               "--protocol", protocol, "--json", *options]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=limit
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def case_ids(protocol: str) -> list[str]:
    return [case.id for case in all_cases() if protocol in case.protocols]


@pytest.mark.parametrize("protocol", ["stream", "json"])
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_the_labs_server_passes_every_case(tmp_path, pool, protocol):
    server = start_server(tmp_path, pool, workers=5, timeout=5, json=True)
    try:
        port = server.port if protocol == "stream" else server.json_port
        started = time.monotonic()
        status, results, stderr = conformance(port, protocol, "--workers", "5", "--timeout", "200")
        seconds = time.monotonic() - started
    finally:
        stop_server(server)
    failed = {line["id"]: f"{line['detail']}\n{line['transcript']}" for line in results if not line["passed"]}
    assert not failed, failed
    assert status == 0, stderr
    assert [line["id"] for line in results] == case_ids(protocol)
    assert all(list(line) == KEYS and not line["skipped"] and not line["transcript"] for line in results)
    assert results[0]["reproduce"] == (
        f"python -m app.conformance --host 127.0.0.1 --port {port} --protocol {protocol} --only start.listens"
    )
    print(f"{pool}/{protocol}: {len(results)} cases in {seconds:.1f} s")


# --- a broken server ---------------------------------------------------------------------


def serve_badly(conn: socket.socket, storage: Path) -> None:
    """One request of the streaming dialect, with two defects of the course's first servers.

    It lower-cases the whole header (file names lose their case), and it opens
    the stored file with truncation before the upload has arrived, writing in
    place: an aborted or refused upload leaves a partial file, and concurrent
    uploads of one name write into one file.
    """
    with conn:
        conn.settimeout(10)
        buffer = b""
        while b"\r\n\r\n" not in buffer and len(buffer) < 8192:  # bounded: at most 8 KiB of header
            data = conn.recv(4096)
            if not data:
                return
            buffer += data
        header, _, rest = buffer.partition(b"\r\n\r\n")
        words = header.decode("utf-8", "replace").lower().split()
        if len(words) < 2 or "/" in words[1] or words[0] not in ("get", "upload"):
            conn.sendall(b"ERROR Bad request\r\n\r\n")
        elif words[0] == "get":
            try:
                data = (storage / words[1]).read_bytes()
            except OSError:
                conn.sendall(b"ERROR File not found\r\n\r\n")
                return
            conn.sendall(b"OK %d\r\n\r\n" % len(data) + data)
        elif len(words) != 3 or not words[2].isdigit() or len(words[2]) > 12:
            conn.sendall(b"ERROR Invalid size format\r\n\r\n")
        else:
            try:
                out = (storage / words[1]).open("wb")
            except OSError:
                conn.sendall(b"ERROR Cannot store the file\r\n\r\n")
                return
            with out:
                conn.sendall(b"OK Ready to receive\r\n\r\n")
                left = int(words[2])
                pending = rest[:left]
                left -= len(pending)
                while True:  # bounded: each round receives at least a byte of the declared size
                    whole = len(pending) - len(pending) % 4
                    try:
                        out.write(base64.b64decode(pending[:whole], validate=True))
                    except ValueError:
                        conn.sendall(b"ERROR Invalid Base64 data stream\r\n\r\n")
                        return
                    pending = pending[whole:]
                    if not left:
                        break
                    data = conn.recv(min(65536, left))
                    if not data:
                        return
                    pending, left = pending + data, left - len(data)
            conn.sendall(b"OK Upload complete\r\n\r\n")


@pytest.fixture
def broken_server(tmp_path) -> Iterator[int]:
    """The broken server on a loopback port, one thread per connection."""
    storage = tmp_path / "broken"
    storage.mkdir()
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():  # bounded by the test: the fixture sets stop
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_badly, args=(conn, storage), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()


def test_a_broken_server_fails_exactly_the_cases_its_defects_break(broken_server):
    status, results, stderr = conformance(broken_server, "stream", "--timeout", "200")
    assert status == 1, stderr
    failed = {line["id"]: line for line in results if not line["passed"]}
    assert sorted(failed) == [
        "bad.invalid-base64",  # the refused upload had already truncated the previous version
        "concurrency.same-name",  # eight uploads wrote into one file
        "robust.client-leaves",  # the aborted upload left a partial file
        "roundtrip.mixed-case-name",  # names lose their case
    ], {name: line["detail"] for name, line in failed.items()}
    assert not any(line["skipped"] for line in results)
    for line in failed.values():
        assert line["transcript"] and line["detail"]
        assert line["reproduce"].endswith(f"--port {broken_server} --protocol stream --only {line['id']}")
    mixed = failed["roundtrip.mixed-case-name"]
    assert "does not keep the case" in mixed["detail"]
    assert "> GET Report-MixedCase.BIN\\r\\n\\r\\n" in mixed["transcript"]
    assert "> <16 base64 characters>" in mixed["transcript"]
    assert mixed["transcript"].splitlines()[-1].startswith("< OK 20\\r\\n\\r\\n")
    assert "expected: OK 12" in mixed["transcript"].splitlines()[-1]
    assert "keep.bin" in failed["robust.client-leaves"]["detail"]
    assert "same.bin" in failed["concurrency.same-name"]["detail"]


def test_the_table_shows_a_failure_with_its_transcript(broken_server):
    command = [sys.executable, "-m", "app.conformance", "--host", "127.0.0.1", "--port", str(broken_server),
               "--only", "roundtrip.mixed-case-name", "roundtrip.1B"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("PASS  roundtrip.1B ")
    assert lines[2].startswith("FAIL  roundtrip.mixed-case-name ")
    assert any(line.strip() == "> GET Report-MixedCase.BIN\\r\\n\\r\\n" for line in lines)
    assert any(line.strip().startswith("reproduce: python -m app.conformance") for line in lines)
    assert lines[-1] == "1 passed, 1 failed, 0 skipped: 1 of 2 points"


def test_a_port_nobody_listens_on_fails_the_gate_and_skips_the_rest():
    started = time.monotonic()
    status, results, _ = conformance(free_port(), "json", "--timeout", "3", limit=30)
    assert time.monotonic() - started < 15
    assert status == 1
    assert [line["id"] for line in results] == case_ids("json")
    gate, *rest = results
    assert (gate["id"], gate["passed"], gate["skipped"]) == ("start.listens", False, False)
    assert "refused" in gate["detail"] and gate["transcript"]
    assert all(line["skipped"] and not line["passed"] for line in rest)
    # Run alone, the gate still lists the whole suite: the host reports a server that did not start this way.
    status, results, _ = conformance(free_port(), "stream", "--only", "start.listens", "--timeout", "1", limit=30)
    assert status == 1 and [line["id"] for line in results] == case_ids("stream")
    assert [line["skipped"] for line in results] == [False] + [True] * (len(results) - 1)


def test_usage_errors_exit_2():
    wrong = (["--only", "no.such-case"], ["--protocol", "json", "--only", "bad.absurd-size"], ["--timeout", "0"])
    for options in wrong:
        done = subprocess.run([sys.executable, "-m", "app.conformance", *options], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        assert done.returncode == 2, options


def test_the_help_works_on_debians_python():
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    done = subprocess.run([python, "-m", "app.conformance", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env={"PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--only ID" in done.stdout and "concurrency.same-name" in done.stdout
