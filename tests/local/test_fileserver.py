"""The file server's behaviour over real loopback sockets, in both pool modes."""

import base64
import hashlib
import socket
import subprocess
import sys
import threading
import time

import pytest

from app import protocol
from tests.local.conftest import ROOT, free_port

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def upload(server, name: str, data: bytes, with_digest: bool = True) -> bytes:
    encoded = base64.b64encode(data)
    digest = hashlib.sha256(data).hexdigest() if with_digest else None
    return server.request(protocol.upload_header(name, len(encoded), digest) + encoded)


def test_upload_then_download_round_trip(server):
    assert upload(server, "data.bin", PAYLOAD) == protocol.READY + protocol.UPLOAD_COMPLETE
    reply = server.request(protocol.get_header("data.bin"))
    assert reply == protocol.size_reply(len(PAYLOAD)) + PAYLOAD
    assert (server.storage / "data.bin").read_bytes() == PAYLOAD
    rows = server.rows(2)
    assert [(r["command"], r["status"], r["bytes"]) for r in rows] == [
        ("UPLOAD", "ok", str(len(PAYLOAD))),
        ("GET", "ok", str(len(PAYLOAD))),
    ]
    assert rows[0]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_original_three_word_upload_with_payload_in_the_header_segment(server):
    encoded = base64.b64encode(b"hello world")
    reply = server.request(b"upload Hello.TXT " + str(len(encoded)).encode() + b"\r\n\r\n" + encoded)
    assert reply == b"OK Ready to receive\r\n\r\nOK Upload complete\r\n\r\n"
    assert (server.storage / "Hello.TXT").read_bytes() == b"hello world"


def test_failed_uploads_leave_the_previous_version_intact(server):
    assert upload(server, "keep.bin", PAYLOAD).endswith(protocol.UPLOAD_COMPLETE)
    # wrong digest
    encoded = base64.b64encode(b"other")
    reply = server.request(protocol.upload_header("keep.bin", len(encoded), "0" * 64) + encoded)
    assert reply.endswith(b"ERROR Checksum mismatch\r\n\r\n")
    # invalid base64
    assert server.request(b"UPLOAD keep.bin 8\r\n\r\n!!!!!!!!").endswith(b"ERROR Invalid Base64 data stream\r\n\r\n")
    # client disconnects half way
    server.request(b"UPLOAD keep.bin 4000\r\n\r\n" + b"QUJD" * 100, shutdown=True)
    assert (server.storage / "keep.bin").read_bytes() == PAYLOAD
    assert sorted(p.name for p in server.storage.iterdir()) == ["keep.bin"]  # no temporary file left
    statuses = [(r["status"], r["error"]) for r in server.rows(4)]
    assert statuses[0] == ("ok", "")
    assert [s for s, _ in statuses[1:]] == ["error"] * 3
    assert "connection closed after 400 of 4000" in statuses[3][1]


def test_hostile_requests_get_an_error_and_the_server_keeps_serving(server):
    cases = {
        b"GET ../../etc/passwd\r\n\r\n": b"ERROR Invalid filename",
        b"GET /etc/passwd\r\n\r\n": b"ERROR Invalid filename",
        b"GET missing.bin\r\n\r\n": b"ERROR File not found",
        b"DELETE x\r\n\r\n": b"ERROR Unknown command",
        b"UPLOAD a.bin lots\r\n\r\n": b"ERROR Invalid size format",
        b"G" * 9000: b"ERROR Header too large",
    }
    for request, answer in cases.items():
        assert server.request(request).startswith(answer), request[:40]
    assert upload(server, "after.bin", b"still serving").endswith(protocol.UPLOAD_COMPLETE)


def test_silent_client_times_out_and_frees_the_worker(server):
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(100) == b"ERROR Timeout waiting for client\r\n\r\n"
        assert 1.5 < time.monotonic() - started < 8
    assert upload(server, "next.bin", b"x").endswith(protocol.UPLOAD_COMPLETE)


def test_concurrent_uploads_of_one_name_never_mix(server):
    versions = [bytes([i]) * (512 * 1024) for i in range(6)]
    threads = [threading.Thread(target=upload, args=(server, "same.bin", v)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert (server.storage / "same.bin").read_bytes() in versions
    assert [r["status"] for r in server.rows(6)] == ["ok"] * 6


def test_stress_client_against_the_server(server, tmp_path):
    csv_path = tmp_path / "clients.csv"
    base = [sys.executable, "-m", "app.stress_client", "--size", "2MiB", "--clients", "3", "--host", "127.0.0.1",
            "--port", str(server.port), "--files", str(tmp_path / "files"), "--csv", str(csv_path)]  # fmt: skip
    for op, pool in (("upload", "process"), ("download", "thread")):
        done = subprocess.run([*base, "--op", op, "--pool", pool], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"3/3 {op}s of file_2MiB.bin" in done.stdout
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 1 + 6 and all(",ok," in line for line in lines[1:])


def test_a_header_trickled_byte_by_byte_is_cut_at_the_timeout(server):
    """The idle timeout bounds the whole header, not each byte of it (a slow-loris client)."""
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.settimeout(10)
        started = time.monotonic()
        answer = b""
        for byte in b"GET " + b"x" * 40:  # one byte every 0.25 s: never idle for 2 s
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.25)
            if answer := _ready(slow):
                break
        assert (answer or slow.recv(100)) == b"ERROR Timeout waiting for client\r\n\r\n"
        assert time.monotonic() - started < 5
    assert server.rows(1)[0]["error"] == "header-timeout: no complete request header within 2s"


def _ready(sock: socket.socket) -> bytes:
    """What the server has sent so far, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(100)
    except BlockingIOError:
        return b""
    finally:
        sock.settimeout(10)


def test_more_data_than_declared_is_refused(server):
    assert upload(server, "exact.bin", b"old").endswith(protocol.UPLOAD_COMPLETE)
    reply = server.request(b"UPLOAD exact.bin 4\r\n\r\nQUJDREVG")  # 8 characters, 4 declared
    assert reply == protocol.READY + b"ERROR Size mismatch: more data than declared\r\n\r\n"
    assert (server.storage / "exact.bin").read_bytes() == b"old"
    # Blanks after the payload are tolerated (some clients end with a newline).
    assert server.request(b"UPLOAD exact.bin 4\r\n\r\nQUJD\r\n").endswith(protocol.UPLOAD_COMPLETE)
    assert (server.storage / "exact.bin").read_bytes() == b"ABC"


def test_the_error_answer_reaches_a_client_that_is_still_sending(server):
    """Closing with unread input resets the connection; the server drains it first."""
    cases = [
        (b"G" * (1 << 20), b"ERROR Header too large\r\n\r\n"),
        (b"UPLOAD x.bin 4000000\r\n\r\n" + b"!" * (1 << 20), b"ERROR Invalid Base64 data stream\r\n\r\n"),
    ]
    for request, answer in cases:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.endswith(answer), (request[:30], reply[-60:])


def test_an_absurd_upload_size_is_refused_and_the_worker_survives(server):
    assert server.request(b"UPLOAD big.bin " + b"9" * 5000 + b"\r\n\r\n") == b"ERROR Invalid size format\r\n\r\n"
    assert upload(server, "after.bin", b"served").endswith(protocol.UPLOAD_COMPLETE)
    assert [r["error"] for r in server.rows(2)] == ["Invalid size format", ""]


def test_an_empty_file_is_answered_ok_0_and_nothing_else(server):
    assert server.request(protocol.upload_header("empty.bin", 0)) == protocol.READY + protocol.UPLOAD_COMPLETE
    assert (server.storage / "empty.bin").read_bytes() == b""
    assert server.request(protocol.get_header("empty.bin")) == b"OK 0\r\n\r\n"
    assert [(r["command"], r["status"], r["bytes"]) for r in server.rows(2)] == [
        ("UPLOAD", "ok", "0"),
        ("GET", "ok", "0"),
    ]


def test_links_and_special_files_in_storage_are_not_served(server, tmp_path):
    """GET serves only what LIST shows: regular files in the folder, never where a link points."""
    import os

    secret = tmp_path / "secret.txt"
    secret.write_text("outside the storage folder")
    (server.storage / "link.txt").symlink_to(secret)
    (server.storage / "dir-link").symlink_to(tmp_path)
    (server.storage / "folder").mkdir()
    os.mkfifo(server.storage / "pipe.bin")  # opening it for reading would block until a writer came
    for name in ("link.txt", "dir-link", "folder", "pipe.bin"):
        assert server.request(protocol.get_header(name)) == b"ERROR File not found\r\n\r\n", name
    # An upload to a link's name replaces the link, never the file it points to.
    assert upload(server, "link.txt", b"new").endswith(protocol.UPLOAD_COMPLETE)
    assert secret.read_text() == "outside the storage folder"
    assert not (server.storage / "link.txt").is_symlink()
    assert server.request(protocol.get_header("link.txt")) == protocol.size_reply(3) + b"new"


@pytest.mark.parametrize("flag", ["--storage", "--outcomes"])
def test_a_folder_that_cannot_be_created_is_one_line_and_exit_1(tmp_path, flag):
    (tmp_path / "plain-file").write_bytes(b"")
    target = tmp_path / "plain-file" / "sub" / "x"  # under a regular file: mkdir fails even for root
    options = ["--storage", str(tmp_path / "storage"), flag, str(target)]  # the last --storage wins
    done = subprocess.run(
        [sys.executable, "-m", "app.fileserver", "--host", "127.0.0.1", "--port", str(free_port()), *options],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (1, f"fileserver: cannot write {target.parent}: Not a directory\n")
