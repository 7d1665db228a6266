"""Hostile input against the containerised server, in both pool modes, on both protocols.

Every client here runs inside alpine-2 and talks to alpine-1 over the lab's
bridge, like a student's client would; the stored files are checked inside
alpine-1. For each kind of bad input the server must answer ``ERROR …`` (or
a JSON error) where an answer is possible and close cleanly otherwise, never
show a partial or corrupted file, keep the previous version of a file, and
serve the next client normally.

The server runs with an idle timeout of 2 s, so the silent-client cases are quick.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from collections.abc import Iterator

import pytest

from orchestrator.lab import Lab

IDLE_TIMEOUT = 2
WORKERS = 4  # enough for two uploads under way, a GET and a spare
STORAGE = "/srv/files"
STREAM_TIMEOUT = "ERROR Timeout waiting for client\r\n\r\n"
JSON_TIMEOUT = '{"status": "ERROR", "data": "Timeout waiting for client"}\r\n\r\n'

# The client side, run in alpine-2 as `python -c HELPERS+SCRIPT <server ip>`.
# It prints one JSON line of findings; the assertions are made here, on the host.
HELPERS = r'''
import base64, hashlib, json, os, select, selectors, socket, sys, time

HOST = sys.argv[1]
STREAM_PORT, JSON_PORT = 8889, 6666


def connect(port, timeout=10):
    return socket.create_connection((HOST, port), timeout=timeout)


def until_close(sock, limit=1 << 26):
    """Everything the server sends until it closes, as text; a reset or a timeout is marked."""
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        data += b"<reset>"
    except socket.timeout:
        data += b"<timeout>"
    return data.decode("latin-1")


def stream(request, shutdown=False, timeout=10):
    """One streaming-dialect request; the whole answer, up to the server's close."""
    with connect(STREAM_PORT, timeout) as sock:
        try:
            sock.sendall(request)
            if shutdown:
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            return f"<send failed: {exc}>" + until_close(sock)
        return until_close(sock)


def b64(data):
    return base64.b64encode(data)


def stream_upload(name, data):
    encoded = b64(data)
    return stream(b"UPLOAD " + name.encode() + b" " + str(len(encoded)).encode() + b"\r\n\r\n" + encoded)


def stream_get(name):
    """The file's bytes, or the answer's text when it is not OK."""
    answer = stream(b"GET " + name.encode() + b"\r\n\r\n").encode("latin-1")
    head, _, body = answer.partition(b"\r\n\r\n")
    return body if head.startswith(b"OK ") and len(body) == int(head[3:]) else answer.decode("latin-1")


class Json:
    """One connection of the JSON protocol; answers may arrive several in a segment."""

    def __init__(self, timeout=10):
        self.sock = connect(JSON_PORT, timeout)
        self.buffer = b""
        self.port = self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def answer(self):
        try:
            while b"\r\n\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return {"closed": self.buffer.decode("latin-1")}
                self.buffer += chunk
        except ConnectionResetError:
            return {"reset": self.buffer.decode("latin-1")}
        text, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return json.loads(text)

    def ask(self, data):
        self.send(data)
        return self.answer()

    def closed_by_server(self):
        try:
            return not self.buffer and self.sock.recv(100) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def json_once(request):
    client = Json()
    try:
        return client.ask(request)
    finally:
        client.close()


def json_get(name):
    answer = json_once(b"GET " + name.encode() + b"\r\n\r\n")
    return base64.b64decode(answer["data_file"]) if answer.get("status") == "OK" else answer


def next_client_served():
    """After the hostile ones, a normal client is served on both protocols."""
    data = os.urandom(200_000)
    ok = stream_upload("h-next.bin", data) == "OK Ready to receive\r\n\r\nOK Upload complete\r\n\r\n"
    ok = ok and stream_get("h-next.bin") == data
    ok = ok and json_once(b"UPLOAD h-next.bin " + b64(data[::-1]) + b"\r\n\r\n").get("status") == "OK"
    return ok and json_get("h-next.bin") == data[::-1]


def report(**values):
    print(json.dumps(values))
'''


# --- host side ------------------------------------------------------------------

_restarts = itertools.count(1)


@pytest.fixture(scope="module", params=["thread", "process"])
def pool(request, lab: Lab) -> Iterator[str]:
    """Every test of this module runs against each pool mode; the default server comes back at the end."""
    yield request.param
    _server.clear()
    if request.param == "process":  # the last one
        lab.restore_server()
        lab.wait_server_ready()


_server: dict[str, object] = {}


def serve(lab: Lab, pool: str, workers: int = WORKERS) -> str:
    """(Re)start the server with this pool and size unless it already runs so; returns its outcome CSV."""
    if _server.get("config") != (pool, workers):
        outcomes = f"/results/hostile/{pool}{workers}-{next(_restarts)}.csv"
        lab.restart_server(pool, workers, outcomes, idle_timeout=IDLE_TIMEOUT)
        lab.node("alpine-1").check(["sh", "-c", f"rm -f {STORAGE}/h-*"])
        _server.update(config=(pool, workers), outcomes=outcomes)
    return str(_server["outcomes"])


def run_client(lab: Lab, script: str, time_limit: float = 180) -> dict:
    """Run HELPERS + ``script`` in alpine-2 against the server; its findings."""
    output = lab.node("alpine-2").check(["python", "-c", HELPERS + script, lab.address("alpine-1")], time_limit)
    return json.loads(output.strip().splitlines()[-1])


STORED = f"""
import hashlib, json, os
paths = {{name: os.path.join("{STORAGE}", name) for name in os.listdir("{STORAGE}")}}
print(json.dumps({{name: hashlib.sha256(open(path, "rb").read()).hexdigest() for name, path in paths.items()}}))
"""


def stored_files(lab: Lab) -> dict[str, str]:
    """Every file in the server's storage (hidden ones too) with its sha256."""
    return json.loads(lab.node("alpine-1").check(["python", "-c", STORED]))


def sha256_in_server(lab: Lab, name: str) -> str:
    return stored_files(lab)[name]


def outcome_rows(lab: Lab, outcomes: str, ports: set[int], expected: int) -> list[dict[str, str]]:
    """The server's rows of the connections from ``ports`` (a row is written just after its answer)."""
    deadline = time.monotonic() + 10
    while True:
        text = lab.node("alpine-1").check(["cat", outcomes])
        rows = [r for r in csv.DictReader(io.StringIO(text)) if int(r["peer_port"]) in ports]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def assert_no_partial_files(lab: Lab) -> dict[str, str]:
    files = stored_files(lab)
    assert not [name for name in files if name.startswith(".")], f"temporary files left: {sorted(files)}"
    return files


# --- the streaming dialect (port 8889) ------------------------------------------

STREAM_HEADERS = r"""
started = time.monotonic()
no_terminator = stream(b"GET h-keep.bin", timeout=10)
waited = time.monotonic() - started

def trickle(port, request):
    # One byte every 0.2 s, never idle long enough for a timeout: the whole header has a deadline.
    with connect(port) as sock:
        started = time.monotonic()
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                break
        return until_close(sock), time.monotonic() - started

report(
    no_terminator=no_terminator, waited=waited,
    trickled=trickle(STREAM_PORT, b"GET h-" + b"x" * 60 + b".bin\r\n\r\n"),
    trickled_json=trickle(JSON_PORT, b"UPLOAD h-" + b"x" * 60 + b".bin QUJD\r\n\r\n"),
    too_large=stream(b"G" * 20000),
    far_too_large=stream(b"GET " + b"x" * (1 << 20) + b"\r\n\r\n"),
    unknown=stream(b"DELETE h-keep.bin\r\n\r\n"),
    unknown_binary=stream(b"\x00\xff\xfe garbage\r\n\r\n"),
    empty=stream(b"\r\n\r\n"),
    missing_size=stream(b"UPLOAD h-keep.bin\r\n\r\n"),
    words_size=stream(b"UPLOAD h-keep.bin ten\r\n\r\nQUJD"),
    negative_size=stream(b"UPLOAD h-keep.bin -4\r\n\r\nQUJD"),
    float_size=stream(b"UPLOAD h-keep.bin 4.0\r\n\r\nQUJD"),
    next_client=next_client_served(),
)
"""


def test_stream_malformed_headers_get_an_error(lab, pool):
    serve(lab, pool)
    found = run_client(lab, STREAM_HEADERS)
    assert found["no_terminator"] == "ERROR Timeout waiting for client\r\n\r\n"
    assert IDLE_TIMEOUT - 0.5 < found["waited"] < IDLE_TIMEOUT + 3
    for case, answer in (("trickled", STREAM_TIMEOUT), ("trickled_json", JSON_TIMEOUT)):
        text, seconds = found[case]
        assert text == answer and seconds < IDLE_TIMEOUT + 3, (case, text, seconds)
    assert found["too_large"] == "ERROR Header too large\r\n\r\n"
    assert found["far_too_large"] == "ERROR Header too large\r\n\r\n"  # not a reset: the server drains first
    assert found["unknown"] == found["unknown_binary"] == "ERROR Unknown command\r\n\r\n"
    assert found["empty"] == "ERROR Empty request\r\n\r\n"
    assert found["missing_size"] == "ERROR Usage: UPLOAD <filename> <base64 length> [sha256]\r\n\r\n"
    for case in ("words_size", "negative_size", "float_size"):
        assert found[case] == "ERROR Invalid size format\r\n\r\n", case
    assert found["next_client"]
    assert "h-keep.bin" not in assert_no_partial_files(lab)


STREAM_UPLOADS = r"""
old = os.urandom(300_000)
first = stream_upload("h-keep.bin", old)
def upload(size, payload, **kw):
    return stream(b"UPLOAD h-keep.bin " + str(size).encode() + b"\r\n\r\n" + payload, **kw)
started = time.monotonic()
larger_silent = upload(8, b"QUJD")
larger_waited = time.monotonic() - started
report(
    first=first,
    invalid_base64=upload(8, b"QUJD!!!!"),
    invalid_padding=upload(8, b"QQ==QUJD"),
    wrong_checksum=stream(b"UPLOAD h-keep.bin 4 " + b"0" * 64 + b"\r\n\r\nQUJD"),
    larger_silent=larger_silent, larger_waited=larger_waited,
    larger_closed=upload(4000, b"QUJD" * 500, shutdown=True),
    smaller=upload(4, b"QUJDREVG"),
    smaller_big=upload(4, b"QUJD" * 300_000),
    unaligned=upload(5, b"QUJDR"),
    still_old=stream_get("h-keep.bin") == old,
    sha=hashlib.sha256(old).hexdigest(),
    next_client=next_client_served(),
)
"""


def test_stream_bad_uploads_keep_the_previous_version(lab, pool):
    serve(lab, pool)
    found = run_client(lab, STREAM_UPLOADS)
    ready = "OK Ready to receive\r\n\r\n"
    assert found["first"] == ready + "OK Upload complete\r\n\r\n"
    assert found["invalid_base64"] == found["invalid_padding"] == ready + "ERROR Invalid Base64 data stream\r\n\r\n"
    assert found["unaligned"] == ready + "ERROR Invalid Base64 data stream\r\n\r\n"
    assert found["wrong_checksum"] == ready + "ERROR Checksum mismatch\r\n\r\n"
    assert found["larger_silent"] == ready + "ERROR Timeout waiting for client\r\n\r\n"
    assert IDLE_TIMEOUT - 0.5 < found["larger_waited"] < IDLE_TIMEOUT + 3
    assert found["larger_closed"] == ready  # the client went away: nothing to answer, nothing stored
    assert found["smaller"] == ready + "ERROR Size mismatch: more data than declared\r\n\r\n"
    assert found["smaller_big"] == ready + "ERROR Size mismatch: more data than declared\r\n\r\n"
    assert found["still_old"] and found["next_client"]
    assert assert_no_partial_files(lab)["h-keep.bin"] == found["sha"]


UNSAFE_NAMES = [b"../../etc/passwd", b"/etc/passwd", b"..", b".", b"h-a/../../x", b"..\\h-x", b".hidden",
                b"h-nul\x00.bin", b"h-\xff\xfe.bin", b"h-tab\x01.bin", b"/tmp/h-escape", b"../h-escape"]  # fmt: skip

# Every name the tests of this module store; anything else in storage came from a bad request.
KNOWN_NAMES = {"h-next.bin", "h-keep.bin", "h-big.bin", "h-live.bin", "h-fresh.bin", "h-small.bin", "h-stress.bin"}

UNSAFE = r"""
names = NAMES
report(
    get=[stream(b"GET " + n + b"\r\n\r\n") for n in names],
    upload=[stream(b"UPLOAD " + n + b" 4\r\n\r\nQUJD") for n in names],
    json_get=[json_once(b"GET " + n + b"\r\n\r\n") for n in names],
    json_upload=[json_once(b"UPLOAD " + n + b" QUJD\r\n\r\n") for n in names],
    json_delete=[json_once(b"DELETE " + n + b"\r\n\r\n") for n in names],
    next_client=next_client_served(),
)
"""


def test_unsafe_names_are_refused_on_both_protocols(lab, pool):
    serve(lab, pool)
    found = run_client(lab, UNSAFE.replace("NAMES", repr(UNSAFE_NAMES)))
    for name, get, upload in zip(UNSAFE_NAMES, found["get"], found["upload"], strict=True):
        assert get.startswith("ERROR Invalid filename"), (name, get)
        assert upload.startswith("ERROR Invalid filename"), (name, upload)
    for case in ("json_get", "json_upload", "json_delete"):
        for name, answer in zip(UNSAFE_NAMES, found[case], strict=True):
            assert answer["status"] == "ERROR" and answer["data"].startswith("Invalid filename"), (case, name, answer)
    assert found["next_client"]
    escaped = lab.node("alpine-1").check(["sh", "-c", "ls -A / /tmp /srv /etc | grep -c h-escape || true"])
    assert escaped.strip() == "0"
    assert lab.node("alpine-1").check(["head", "-c", "5", "/etc/passwd"]) == "root:"
    stored = {name for name in assert_no_partial_files(lab) if name.startswith("h-")}
    assert stored <= KNOWN_NAMES, f"unexpected files stored: {stored - KNOWN_NAMES}"


# --- silent clients and clients that go away ------------------------------------

SILENT_AND_GONE = r"""
silent = {}
for name, port in (("stream", STREAM_PORT), ("json", JSON_PORT)):
    with connect(port) as sock:
        started = time.monotonic()
        silent[name] = [until_close(sock), time.monotonic() - started]

old = os.urandom(500_000)
assert stream_upload("h-keep.bin", old).endswith("OK Upload complete\r\n\r\n")
ports = {}
# Uploads abandoned half way, on a new name and on an existing one, both protocols.
for name in ("h-partial.bin", "h-keep.bin"):
    with connect(STREAM_PORT) as sock:
        sock.sendall(b"UPLOAD " + name.encode() + b" 4000000\r\n\r\n" + b"QUJD" * 250_000)
        ports["stream-up-" + name] = sock.getsockname()[1]
    client = Json()
    client.send(b"UPLOAD " + name.encode() + b" " + b"QUJD" * 250_000)
    ports["json-up-" + name] = client.port
    client.close()
# Downloads abandoned half way.
with connect(STREAM_PORT) as sock:
    sock.sendall(b"GET h-big.bin\r\n\r\n")
    head = sock.recv(65536)
    ports["stream-down"] = sock.getsockname()[1]
client = Json()
client.send(b"GET h-big.bin\r\n\r\n")
json_head = client.sock.recv(65536)
ports["json-down"] = client.port
client.close()
time.sleep(0.5)
report(
    silent=silent, ports=ports,
    stream_head=head[:12].decode("latin-1"), json_head=json_head[:60].decode("latin-1"),
    still_old=stream_get("h-keep.bin") == old,
    partial_listed="h-partial.bin" in json_once(b"LIST\r\n\r\n")["data"],
    next_client=next_client_served(),
)
"""


def test_silent_clients_and_clients_that_go_away(lab, pool):
    outcomes = serve(lab, pool)
    lab.node("alpine-1").check(["sh", "-c", f"head -c 33554432 /dev/urandom > {STORAGE}/h-big.bin"])
    big_sha = sha256_in_server(lab, "h-big.bin")
    found = run_client(lab, SILENT_AND_GONE)
    for name, error in (("stream", STREAM_TIMEOUT), ("json", JSON_TIMEOUT)):
        answer, waited = found["silent"][name]
        assert answer == error
        assert IDLE_TIMEOUT - 0.5 < waited < IDLE_TIMEOUT + 3
    assert found["stream_head"].startswith("OK 33554432")
    assert found["json_head"].startswith('{"status": "OK", "data_namafile": "h-big.bin"')
    assert found["still_old"] and not found["partial_listed"] and found["next_client"]
    files = assert_no_partial_files(lab)
    assert "h-partial.bin" not in files and files["h-big.bin"] == big_sha
    ports = found["ports"]
    rows = {int(r["peer_port"]): r for r in outcome_rows(lab, outcomes, set(ports.values()), len(ports))}
    for case, port in ports.items():
        row = rows[port]
        assert row["status"] == "error", (case, row)
        assert "closed" in row["error"] or "connection error" in row["error"], (case, row)
    assert rows[ports["json-up-h-keep.bin"]]["command"] == "JSON-UPLOAD"
    assert rows[ports["json-down"]]["command"] == "JSON-GET"


# --- concurrency ------------------------------------------------------------------

LIVE_UPLOAD = r"""
old, new = os.urandom(1 << 20), os.urandom(1 << 20)
first = stream_upload("h-live.bin", old)

def start_upload(name, data):
    encoded = b64(data)
    sock = connect(STREAM_PORT)
    sha = hashlib.sha256(data).hexdigest().encode()
    sock.sendall(b"UPLOAD " + name + b" " + str(len(encoded)).encode() + b" " + sha + b"\r\n\r\n")
    ready = sock.recv(100)
    sock.sendall(encoded[: len(encoded) // 2])
    return sock, encoded[len(encoded) // 2 :], ready

replacing, rest, ready1 = start_upload(b"h-live.bin", new)
creating, rest2, ready2 = start_upload(b"h-fresh.bin", new)
# Both uploads are half way now (the idle timeout is 2 s: be quick).
during = dict(
    stream=stream_get("h-live.bin") == old,
    json=json_get("h-live.bin") == old,
    fresh=stream_get("h-fresh.bin"),
    fresh_json=json_once(b"GET h-fresh.bin\r\n\r\n"),
    listing=json_once(b"LIST\r\n\r\n")["data"],
)
replacing.sendall(rest)
creating.sendall(rest2)
report(
    first=first, ready=[ready1.decode(), ready2.decode()], during=during,
    finished=[until_close(replacing), until_close(creating)],
    after=stream_get("h-live.bin") == new, after_json=json_get("h-fresh.bin") == new,
    next_client=next_client_served(),
)
"""


def test_a_get_during_an_upload_sees_the_previous_version_or_nothing(lab, pool):
    serve(lab, pool)
    found = run_client(lab, LIVE_UPLOAD)
    assert found["first"].endswith("OK Upload complete\r\n\r\n")
    assert found["ready"] == ["OK Ready to receive\r\n\r\n"] * 2
    during = found["during"]
    assert during["stream"] and during["json"], "a GET during an upload must return the previous version whole"
    assert during["fresh"] == "ERROR File not found\r\n\r\n"
    assert during["fresh_json"] == {"status": "ERROR", "data": "File not found"}
    assert "h-fresh.bin" not in during["listing"] and not [n for n in during["listing"] if n.startswith(".")]
    assert found["finished"] == ["OK Upload complete\r\n\r\n"] * 2
    assert found["after"] and found["after_json"] and found["next_client"]
    assert_no_partial_files(lab)


MANY_AT_ONCE = r"""
content = os.urandom(3000)
assert stream_upload("h-small.bin", content).endswith("OK Upload complete\r\n\r\n")
N = 200
socks = []
for i in range(N):  # all 200 open at once, before any request
    socks.append(connect(STREAM_PORT if i % 2 else JSON_PORT, timeout=60))
opened = sum(1 for s in socks if s.fileno() != -1)
selector = selectors.DefaultSelector()
for i, sock in enumerate(socks):
    sock.sendall(b"GET h-small.bin\r\n\r\n")
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ, i)
answers = {}
buffers = {i: b"" for i in range(N)}
deadline = time.monotonic() + 120
while len(answers) < N and time.monotonic() < deadline:  # bounded: 2 minutes at most
    for key, _ in selector.select(timeout=1):
        i = key.data
        try:
            chunk = key.fileobj.recv(65536)
        except BlockingIOError:
            continue
        except OSError as exc:
            chunk = b""
            buffers[i] += f"<{exc}>".encode()
        buffers[i] += chunk
        # Stream: the answer ends when the server closes. JSON: at the blank line; then we close.
        if not chunk or (i % 2 == 0 and buffers[i].endswith(b"\r\n\r\n")):
            answers[i] = buffers[i]
            selector.unregister(key.fileobj)
            key.fileobj.close()
expected_stream = b"OK 3000\r\n\r\n" + content
ok = 0
for i, answer in answers.items():
    if i % 2:
        ok += answer == expected_stream
    else:
        parsed = json.loads(answer)
        ok += parsed.get("status") == "OK" and base64.b64decode(parsed["data_file"]) == content
report(opened=opened, answered=len(answers), ok=ok, next_client=next_client_served())
"""


def test_200_connections_at_once_against_one_worker(lab, pool):
    outcomes = serve(lab, pool, workers=1)
    found = run_client(lab, MANY_AT_ONCE)
    assert found == {"opened": 200, "answered": 200, "ok": 200, "next_client": True}
    text = lab.node("alpine-1").check(["cat", outcomes])
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["filename"] == "h-small.bin"]
    assert sorted({(r["command"], r["status"]) for r in rows}) == [("GET", "ok"), ("JSON-GET", "ok"), ("UPLOAD", "ok")]
    assert len(rows) == 201


# --- the JSON protocol (port 6666) ---------------------------------------------------

JSON_CASES = r"""
data = os.urandom(100_000)
client = Json()
started = time.monotonic()
client.send(b"LIST")  # the reference client: no terminator, and the connection stays open
bare_list = client.answer()
bare_seconds = time.monotonic() - started
upload = client.ask(b"UPLOAD h-Mixed.TXT " + b64(data) + b"\r\n\r\n")
client.send(b"GET h-Mixed.TXT")
bare_get = client.answer()
answers = dict(
    listing=client.ask(b"list\r\n\r\n"),
    wrong_case=client.ask(b"GET h-mixed.txt\r\n\r\n"),
    unknown=client.ask(b"FETCH h-Mixed.TXT\r\n\r\n"),
    unknown_bare=client.ask(b"HELLO"),
    usage=client.ask(b"GET\r\n\r\n"),
    no_base64=client.ask(b"UPLOAD h-Mixed.TXT\r\n\r\n"),
    bad_base64=client.ask(b"UPLOAD h-Mixed.TXT QUJ\r\n\r\n"),
    pipelined=[client.ask(b"LIST\r\n\r\nGET h-missing.bin\r\n\r\n"), client.answer()],
    delete=client.ask(b"DELETE h-Mixed.TXT\r\n\r\n"),
    delete_again=client.ask(b"HAPUS h-Mixed.TXT\r\n\r\n"),
    listing_after=client.ask(b"LIST\r\n\r\n"),
)
persistent_port = client.port
client.close()

# Errors that end the connection: the rest of the data cannot be read as requests.
client = Json()
client.ask(b"UPLOAD h-keep.bin " + b64(data) + b"\r\n\r\n")
closing = dict(invalid_mid_upload=client.ask(b"UPLOAD h-keep.bin QUJD!!!!" + b"QUJD" * 100_000))
closing["invalid_closed"] = client.closed_by_server()
client.close()
client = Json()
closing["too_large"] = client.ask(b"G" * 20000)
closing["too_large_closed"] = client.closed_by_server()
client.close()
client = Json()
started = time.monotonic()
closing["unterminated_upload"] = client.ask(b"UPLOAD h-never.bin QUJD")
closing["unterminated_seconds"] = time.monotonic() - started
client.close()
report(
    bare_list=bare_list, bare_seconds=bare_seconds, upload=upload,
    bare_get_ok=base64.b64decode(bare_get["data_file"]) == data, bare_get_name=bare_get["data_namafile"],
    answers=answers, closing=closing, port=persistent_port,
    sha=hashlib.sha256(data).hexdigest(), keep=json_get("h-keep.bin") == data, next_client=next_client_served(),
)
"""


def test_json_protocol_cases(lab, pool):
    outcomes = serve(lab, pool)
    found = run_client(lab, JSON_CASES)
    assert found["bare_list"]["status"] == "OK" and isinstance(found["bare_list"]["data"], list)
    assert found["bare_seconds"] < IDLE_TIMEOUT  # answered after a short quiet period, not a timeout
    assert found["upload"]["status"] == "OK" and found["upload"]["sha256"] == found["sha"]
    assert found["bare_get_ok"] and found["bare_get_name"] == "h-Mixed.TXT"
    answers = found["answers"]
    assert "h-Mixed.TXT" in answers["listing"]["data"]
    assert answers["wrong_case"] == {"status": "ERROR", "data": "File not found"}
    assert answers["unknown"] == answers["unknown_bare"] == {"status": "ERROR", "data": "request tidak dikenali"}
    assert answers["usage"] == {"status": "ERROR", "data": "Usage: GET <filename>"}
    assert answers["no_base64"] == {"status": "ERROR", "data": "Usage: UPLOAD <filename> <base64>"}
    assert answers["bad_base64"] == {"status": "ERROR", "data": "Invalid Base64 data stream"}
    assert answers["pipelined"][0]["status"] == "OK"
    assert answers["pipelined"][1] == {"status": "ERROR", "data": "File not found"}
    assert answers["delete"]["status"] == "OK"
    assert answers["delete_again"] == {"status": "ERROR", "data": "File not found"}
    assert "h-Mixed.TXT" not in answers["listing_after"]["data"]
    closing = found["closing"]
    assert closing["invalid_mid_upload"] == {"status": "ERROR", "data": "Invalid Base64 data stream"}
    assert closing["too_large"] == {"status": "ERROR", "data": "Header too large"}
    assert closing["invalid_closed"] and closing["too_large_closed"]
    assert closing["unterminated_upload"] == {"status": "ERROR", "data": "Timeout waiting for client"}
    assert IDLE_TIMEOUT - 0.5 < closing["unterminated_seconds"] < IDLE_TIMEOUT + 3
    assert found["keep"] and found["next_client"]
    files = assert_no_partial_files(lab)
    assert "h-never.bin" not in files and "h-Mixed.TXT" not in files and files["h-keep.bin"] == found["sha"]
    # Every request of the persistent connection has its own outcome row, in order.
    rows = outcome_rows(lab, outcomes, {found["port"]}, 15)
    assert [(r["command"], r["status"]) for r in rows] == [
        ("JSON-LIST", "ok"), ("JSON-UPLOAD", "ok"), ("JSON-GET", "ok"), ("JSON-LIST", "ok"),
        ("JSON-GET", "error"), ("JSON", "error"), ("JSON", "error"), ("JSON-GET", "error"),
        ("JSON-UPLOAD", "error"), ("JSON-UPLOAD", "error"), ("JSON-LIST", "ok"), ("JSON-GET", "error"),
        ("JSON-DELETE", "ok"), ("JSON-DELETE", "error"), ("JSON-LIST", "ok"),
    ]  # fmt: skip
    assert rows[1]["filename"] == "h-Mixed.TXT" and rows[1]["sha256"] == found["sha"] and rows[1]["bytes"] == "100000"


def test_stress_client_over_json_in_the_lab(lab, pool):
    serve(lab, pool)
    for op in ("upload", "download"):
        command = ["python", "-m", "app.stress_client", "--protocol", "json", "--op", op, "--size", "3MiB",
                   "--clients", "5", "--name", "h-stress.bin", "--host", lab.address("alpine-1")]  # fmt: skip
        output = lab.node("alpine-2").check(command, time_limit=180)
        assert f"5/5 {op}s of h-stress.bin (3145728 bytes) succeeded" in output
