"""The plain file client (python -m app.file_client) against the real server on loopback."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.local import test_json_server
from tests.local.conftest import ROOT, free_port
from tests.local.test_json_server import JsonServer, start_server, stop_server

PROTOCOLS = ["stream", "json"]


# The fixture of the JSON server's tests: the real server with both protocols, in both pool modes.
server = test_json_server.server


def port_of(server: JsonServer, protocol: str) -> int:
    return server.port if protocol == "stream" else server.json_port


def client_command(port: int, protocol: str, *args: str, timeout: float = 30) -> list[str]:
    return [sys.executable, "-m", "app.file_client", "--host", "127.0.0.1", "--port", str(port),
            "--protocol", protocol, "--timeout", f"{timeout:g}", *args]  # fmt: skip


def file_client(port: int, protocol: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the real program; returns its exit code and output."""
    command = client_command(port, protocol, *args, timeout=timeout)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout + 30)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failure prints: no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), done.stderr
    return lines[-1]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("size", [0, 1, 3 * 2**20 + 1])
def test_upload_then_get_round_trip_is_byte_identical(server, tmp_path, protocol, size):
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    up = file_client(port_of(server, protocol), protocol, "upload", str(source), "--name", "round.bin")
    assert up.returncode == 0, up.stderr
    assert hashlib.sha256(data).hexdigest() in up.stdout
    assert (server.storage / "round.bin").read_bytes() == data
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    get = file_client(port_of(server, protocol), protocol, "get", "round.bin", "--dir", str(downloads))
    assert get.returncode == 0, get.stderr
    assert (downloads / "round.bin").read_bytes() == data
    assert leftovers(downloads) == ["round.bin"]  # the temporary file was renamed, not copied
    assert f"({size} bytes, sha256 {hashlib.sha256(data).hexdigest()})" in get.stdout


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_get_of_a_missing_file_is_the_server_error_and_saves_nothing(server, tmp_path, protocol):
    done = file_client(port_of(server, protocol), protocol, "get", "nothing-here.bin", "--dir", str(tmp_path))
    assert done.returncode == 3
    assert error_line(done) == "file_client: error: server: File not found"
    assert "nothing-here.bin" not in "".join(leftovers(tmp_path))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", ["../escape.bin", "/etc/passwd", ".hidden", "two words"])
def test_a_bad_name_is_refused_before_anything_is_sent(server, tmp_path, protocol, name):
    done = file_client(port_of(server, protocol), protocol, "get", name, "--dir", str(tmp_path / "d"))
    assert done.returncode == 2
    assert "Invalid filename" in error_line(done) or "blanks" in error_line(done)
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    done = file_client(port_of(server, protocol), protocol, "upload", str(source), "--name", name)
    assert done.returncode == 2, done.stderr
    assert not server.outcomes.exists() or server.rows(0) == []  # nothing reached the server


def test_an_existing_file_is_kept_unless_force(server, tmp_path):
    (server.storage / "same.bin").write_bytes(b"new bytes")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "same.bin").write_bytes(b"mine")
    done = file_client(server.port, "stream", "get", "same.bin", "--dir", str(mine))
    assert done.returncode == 2
    assert "already exists (use --force" in error_line(done)
    assert (mine / "same.bin").read_bytes() == b"mine"
    done = file_client(server.port, "stream", "get", "same.bin", "--dir", str(mine), "--force")
    assert done.returncode == 0, done.stderr
    assert (mine / "same.bin").read_bytes() == b"new bytes"
    assert leftovers(mine) == ["same.bin"]


def test_list_and_delete_with_the_json_protocol(server, tmp_path):
    (server.storage / "a.bin").write_bytes(b"a")
    (server.storage / "Foto Kampus.JPG").write_bytes(b"b")  # listed, but a request cannot carry it
    listed = file_client(server.json_port, "json", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["'Foto Kampus.JPG'  (a name this client cannot fetch)", "a.bin"]
    deleted = file_client(server.json_port, "json", "delete", "a.bin")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "deleted a.bin"
    assert not (server.storage / "a.bin").exists()
    again = file_client(server.json_port, "json", "delete", "a.bin")
    assert again.returncode == 3 and error_line(again).startswith("file_client: error: server: ")


@pytest.mark.parametrize("command", [["list"], ["delete", "a.bin"]])
def test_list_and_delete_need_the_json_protocol(tmp_path, command):
    done = file_client(free_port(), "stream", *command)
    assert done.returncode == 2
    assert error_line(done).endswith("the streaming dialect has only UPLOAD and GET; use --protocol json")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused(tmp_path, protocol):
    done = file_client(free_port(), protocol, "get", "a.bin", "--dir", str(tmp_path))
    assert done.returncode == 4
    assert "cannot reach the server at 127.0.0.1:" in error_line(done)
    assert leftovers(tmp_path) == []


def dripping_server(first: bytes) -> tuple[int, threading.Event]:
    """A fake server that sends ``first``, then one byte every 0.2 s: never idle long enough to time out."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(first)
                for _ in range(200):  # bounded: at most 40 s
                    if stop.wait(0.2):
                        return
                    try:
                        conn.sendall(b"A")
                    except OSError:
                        return

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], stop


@pytest.mark.parametrize(
    ("protocol", "first"),
    [("stream", b"OK 1000000\r\n\r\n"), ("json", b'{"status": "OK", "data_namafile": "a.bin", "data_file": "')],
)
def test_timeout_is_a_deadline_for_the_whole_command(tmp_path, protocol, first):
    port, stop = dripping_server(first)
    try:
        started = time.monotonic()
        done = file_client(port, protocol, "get", "a.bin", "--dir", str(tmp_path), timeout=1.5)
        took = time.monotonic() - started
    finally:
        stop.set()
    assert done.returncode == 5, done.stderr
    assert error_line(done) == "file_client: error: timeout: get did not finish within 1.5s"
    assert took < 1.5 + 3, f"took {took:.1f}s"  # the deadline, plus Python's start-up
    assert leftovers(tmp_path) == []


def fake_json_server(answer: bytes) -> int:
    """A fake JSON server that reads one whole request and sends ``answer``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            listener.settimeout(30)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                request = b""
                while not request.endswith(b"\r\n\r\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_an_upload_stored_with_another_checksum_is_a_mismatch(tmp_path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"hello")
    port = fake_json_server(
        b'{"status": "OK", "data": "a.bin stored (5 bytes)", "sha256": "' + b"0" * 64 + b'"}\r\n\r\n'
    )
    done = file_client(port, "json", "upload", str(source))
    assert done.returncode == 6
    assert error_line(done).startswith("file_client: error: checksum mismatch: the server stored bytes")


def test_an_answer_for_another_file_is_refused(tmp_path):
    port = fake_json_server(b'{"status": "OK", "data_namafile": "../evil", "data_file": "QUJD"}\r\n\r\n')
    done = file_client(port, "json", "get", "a.bin", "--dir", str(tmp_path))
    assert done.returncode == 1
    assert error_line(done) == "file_client: error: wrong file in answer: '../evil'"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_killed_mid_transfer_leaves_no_file(tmp_path, protocol):
    server = start_server(tmp_path / "server", "thread")
    try:
        with (server.storage / "big.bin").open("wb") as f:
            for _ in range(64):
                f.write(os.urandom(2**20))
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        command = client_command(port_of(server, protocol), protocol, "get", "big.bin", "--dir", str(downloads))
        client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Stop the client as soon as some of the file has arrived, then kill the server under it.
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the download never started"
            assert client.poll() is None, f"the client ended before it could be stopped: {client.communicate()}"
            parts = [p for p in downloads.iterdir() if p.name.endswith(".part")]
            if parts and parts[0].stat().st_size > 0:
                client.send_signal(signal.SIGSTOP)
                if parts[0].stat().st_size < 64 * 2**20:  # still in the middle
                    break
                client.send_signal(signal.SIGCONT)
            time.sleep(0.001)
        server.process.kill()
        server.process.wait(timeout=10)
        client.send_signal(signal.SIGCONT)
        _, err = client.communicate(timeout=60)
    finally:
        if server.process.poll() is None:
            stop_server(server)
    assert client.returncode == 1, err
    assert "Traceback" not in err
    assert err.startswith("file_client: error: connection closed after "), err
    assert leftovers(downloads) == []  # neither big.bin nor its temporary file


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_memory_does_not_grow_with_the_file(server, tmp_path, protocol):
    size = 48 * 2**20
    with (tmp_path / "big.bin").open("wb") as f:
        for _ in range(size // 2**20):
            f.write(os.urandom(2**20))
    # VmHWM, not ru_maxrss: Linux carries a parent's peak across fork and exec into ru_maxrss.
    peak = (
        "import sys\nfrom app.file_client import main\ncode = main(sys.argv[1:])\n"
        "print('peak', [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])\n"
        "sys.exit(code)\n"
    )
    port = port_of(server, protocol)
    for args in (["upload", str(tmp_path / "big.bin")], ["get", "big.bin", "--dir", str(tmp_path / "d")]):
        (tmp_path / "d").mkdir(exist_ok=True)
        command = [sys.executable, "-c", peak, "--host", "127.0.0.1", "--port", str(port), "--protocol", protocol]
        done = subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        peak_kib = int(done.stdout.split("peak")[-1])
        assert peak_kib < 40 * 1024, f"{args[0]} of {size} bytes peaked at {peak_kib} KiB"
    assert (tmp_path / "d" / "big.bin").read_bytes() == (tmp_path / "big.bin").read_bytes()
