"""Idle and slow clients cost the containerised server a file descriptor, never a worker.

The server runs as ``docker compose up`` starts it (5 workers, a 60 s idle
timeout, the default header deadline and minimum upload rate), in each pool
mode. From alpine-2, 40 connections that say nothing, then 8 uploads that
trickle a byte a second, sit beside a normal GET, which must be answered in
under 5 s. Every loop is bounded: the GET gives up after 30 s, the trickle
after 20 s.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from orchestrator.lab import Lab

GET_LIMIT = 5.0
SMALL_SIZE = 3000

CLIENT = r"""
import json, socket, sys, threading, time

HOST = sys.argv[1]


def timed_get():
    # Seconds until the whole answer of a normal GET has come, or None after 30 s.
    started = time.monotonic()
    with socket.create_connection((HOST, 8889), timeout=30) as sock:
        sock.sendall(b"GET s-small.bin\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except socket.timeout:
            return None, len(answer)
    return time.monotonic() - started, len(answer)


# 40 connections that say nothing, on both protocols.
idle = [socket.create_connection((HOST, 6666 if i % 4 == 0 else 8889), timeout=30) for i in range(40)]
time.sleep(0.5)
beside_idle = timed_get()
for sock in idle:
    sock.close()

# 8 uploads whose header is whole and whose body trickles, a byte a second each.
uploads = []
for i in range(8):
    sock = socket.create_connection((HOST, 8889), timeout=30)
    sock.sendall(b"UPLOAD s-trickle-%d.bin 400000\r\n\r\n" % i)
    uploads.append(sock)
stop = threading.Event()


def trickle():
    for _ in range(20):  # bounded: 20 s at most
        for sock in uploads:
            try:
                sock.send(b"Q")
            except OSError:
                pass  # cut by the server
        if stop.wait(1):
            return


trickler = threading.Thread(target=trickle)
trickler.start()
time.sleep(0.5)
beside_trickle = timed_get()
stop.set()
trickler.join()
for sock in uploads:  # each is cut by the server (bounded: 30 s timeout each), then closed here
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()
print(json.dumps({"idle": beside_idle, "trickle": beside_trickle}))
"""


@pytest.fixture(scope="module", params=["thread", "process"])
def pool(request, lab: Lab) -> Iterator[str]:
    """The default server (thread pool), then the same in a process pool; the default comes back at the end."""
    yield request.param
    if request.param == "process":
        lab.restore_server()
        lab.wait_server_ready()


def test_a_get_beside_idle_and_trickling_clients_is_answered_at_once(lab, pool):
    outcomes = f"/results/slow-clients/{pool}.csv"
    lab.restart_server(pool, 5, outcomes, idle_timeout=60)  # as `docker compose up` starts it, in this pool mode
    server = lab.node("alpine-1")
    server.check(["sh", "-c", f"head -c {SMALL_SIZE} /dev/urandom > /srv/files/s-small.bin"])
    output = lab.node("alpine-2").check(["python", "-c", CLIENT, lab.address("alpine-1")], 180)
    found = json.loads(output.strip().splitlines()[-1])
    print(f"{pool}: GET beside 40 idle connections {found['idle']}, beside 8 trickling uploads {found['trickle']}")
    for case in ("idle", "trickle"):
        seconds, received = found[case]
        assert seconds is not None and seconds < GET_LIMIT, (case, found)
        assert received == len(f"OK {SMALL_SIZE}\r\n\r\n") + SMALL_SIZE, (case, found)
    rows = list(csv.DictReader(io.StringIO(server.check(["cat", outcomes]))))
    trickled = [r for r in rows if r["filename"].startswith("s-trickle-")]
    assert len(trickled) == 8 and all(r["error"].startswith("body-too-slow: ") for r in trickled), trickled
    listing = server.check(["ls", "-A", "/srv/files"]).split()
    assert not [name for name in listing if name.startswith(".upload-") or name.startswith("s-trickle-")]
