"""The UDP sender and receivers as real processes with real sockets on loopback."""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import udp_framing
from app.sample_image import sample_png

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SAMPLE_SHA = hashlib.sha256(sample_png()).hexdigest()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@dataclass
class Receiver:
    process: subprocess.Popen[str]
    csv: Path
    out: Path
    first_line: str

    def finish(self, timeout: float = 30) -> tuple[int, str, list[dict[str, str]]]:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        finally:
            self.process.kill()
        rows = read_rows(self.csv) if self.csv.exists() else []
        return self.process.returncode, self.first_line + stdout + stderr, rows


def start_receiver(tmp_path: Path, port: int, *args: str, name: str = "r") -> Receiver:
    """Start a receiver and wait (bounded) until it says it is listening."""
    csv_path, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.png"
    command = [sys.executable, "-m", "app.udp_receiver", "--host", "0.0.0.0", "--port", str(port),
               "--csv", str(csv_path), "--out", str(out), "--label", name, *args]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=15):
            process.kill()
            pytest.fail("receiver did not start in 15 s")
    line = process.stdout.readline()
    if not line.startswith("listening"):
        process.kill()
        pytest.fail(f"receiver did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    return Receiver(process, csv_path, out, line)


MODELS = ["process", "thread", "process-pool", "thread-pool", "asyncio"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("payload", [1, 1000])
def test_every_model_delivers_the_sample_to_two_receivers(tmp_path, model, payload):
    ports = [free_udp_port(), free_udp_port()]
    receivers = [start_receiver(tmp_path, port, "--expect", "sample", name=f"r{i}") for i, port in enumerate(ports)]
    sender_csv = tmp_path / "sender.csv"
    done = run("app.udp_sender", "--model", model, "--payload", str(payload), "--transfer-id", "41",
               "--dest", f"127.0.0.1:{ports[0]}", "--dest", f"127.0.0.1:{ports[1]}",
               "--csv", str(sender_csv))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "total time" in done.stdout
    expected = udp_framing.count_datagrams(12_371, payload)
    for receiver in receivers:
        code, output, rows = receiver.finish()
        assert code == 0, output
        (row,) = rows
        assert row["status"] == "ok" and row["intact"] == "true" and row["sha256"] == SAMPLE_SHA
        assert (row["lost"], row["duplicates"], row["out_of_order"]) == ("0", "0", "0")
        assert row["datagrams"] == str(expected) and row["transfer_id"] == "41" and row["end_markers"] == "3"
        assert receiver.out.read_bytes() == sample_png()
    sent = read_rows(sender_csv)
    assert [r["destination"] for r in sent] == ["127.0.0.1", "127.0.0.1"]
    assert {r["port"] for r in sent} == {str(p) for p in ports}
    assert all(r["status"] == "ok" and r["datagrams"] == str(expected) for r in sent)
    run_seconds = float(sent[0]["run_seconds"])
    # The total covers every destination: no destination took longer than the whole run.
    assert all(0 < float(r["seconds"]) <= run_seconds for r in sent)


def test_broadcast_is_one_send_that_every_receiver_gets(tmp_path):
    port = free_udp_port()
    # Two receivers on one machine must share the port, as the course's broadcast example does.
    receivers = [start_receiver(tmp_path, port, "--reuse-port", "--expect", "sample", name=f"b{i}") for i in range(2)]
    sender_csv = tmp_path / "sender.csv"
    done = run("app.udp_sender", "--model", "broadcast", "--broadcast", "127.255.255.255", "--port", str(port),
               "--payload", "512", "--csv", str(sender_csv))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (sent,) = read_rows(sender_csv)
    assert sent["destination"] == "127.255.255.255" and sent["datagrams"] == "25"
    senders = set()
    for receiver in receivers:
        code, output, (row,) = receiver.finish()
        assert code == 0 and row["intact"] == "true", output
        senders.add(row["sender"])
    assert len(senders) == 1  # both copies came from the one socket of the one send


ORIGINAL_SENDER = """
import socket, sys
data = open(sys.argv[1], "rb").read()
sck = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for x in data:  # one byte per datagram, no header: the course's send_image()
    sck.sendto(bytes([x]), ("127.0.0.1", int(sys.argv[2])))
"""

ORIGINAL_RECEIVER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[2])))
sock.settimeout(3)  # the original loops forever; this ends it for the test
print("bound", flush=True)
fp = open(sys.argv[1], "wb+")
try:
    while True:
        data, addr = sock.recvfrom(1024)
        fp.write(data)
except TimeoutError:
    fp.close()
"""


def test_raw_receiver_understands_the_original_sender(tmp_path):
    image = tmp_path / "tes.png"
    image.write_bytes(sample_png())
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--framing", "raw", "--expect", "sample", "--payload", "1")
    done = subprocess.run([sys.executable, "-c", ORIGINAL_SENDER, str(image), str(port)], timeout=60)
    assert done.returncode == 0
    code, output, (row,) = receiver.finish()
    assert code == 0, output
    assert row["status"] == "ok" and row["bytes"] == "12371" and row["datagrams"] == "12371" and row["lost"] == "0"
    assert row["duplicates"] == "" and row["stopped"] == "complete"


def test_original_receiver_understands_the_raw_sender(tmp_path):
    port = free_udp_port()
    out = tmp_path / "tesfinished.png"
    original = subprocess.Popen([sys.executable, "-c", ORIGINAL_RECEIVER, str(out), str(port)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert original.stdout is not None and original.stdout.readline() == "bound\n"
        # Paced: unpaced, the original's small default socket buffer overflows and it loses
        # bytes (as the report's receivers did). Here only the wire format is under test.
        done = run("app.udp_sender", "--model", "thread", "--framing", "raw", "--rate", "10000",
                   "--dest", f"127.0.0.1:{port}")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert original.wait(timeout=30) == 0
    finally:
        original.kill()
    assert out.read_bytes() == sample_png()


def test_receiver_without_sender_gives_up_after_the_first_wait(tmp_path):
    started = time.monotonic()
    receiver = start_receiver(tmp_path, free_udp_port(), "--first-wait", "1", "--expect", "sample")
    code, output, (row,) = receiver.finish(timeout=20)
    waited = time.monotonic() - started
    assert code == 3 and "no-data" in output and "Traceback" not in output
    assert row["status"] == "no-data" and row["stopped"] == "first-wait" and row["datagrams"] == "0"
    assert row["intact"] == "false" and row["lost"] == ""
    assert 1 <= waited < 10
    assert not receiver.out.exists()


def test_receiver_waits_for_a_person_to_start_the_sender(tmp_path):
    """By hand there are seconds between starting a receiver and typing the sender's command:
    the receiver waits for the first datagram (by default without limit); the idle timeout
    counts from the last datagram."""
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--idle-timeout", "1", "--expect", "sample")
    time.sleep(2.5)  # longer than the idle timeout: nothing has been sent yet
    assert receiver.process.poll() is None, "the receiver gave up before anything was sent"
    started = time.monotonic()
    done = run("app.udp_sender", "--model", "thread", "--rate", "20000", "--dest", f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    code, output, (row,) = receiver.finish(timeout=30)
    assert code == 0, output
    assert row["status"] == "ok" and row["intact"] == "true" and row["stopped"] == "complete"
    assert time.monotonic() - started < 15


def test_first_wait_bounds_the_wait_for_the_first_datagram(tmp_path):
    started = time.monotonic()
    receiver = start_receiver(tmp_path, free_udp_port(), "--first-wait", "1", "--idle-timeout", "60")
    code, output, (row,) = receiver.finish(timeout=20)
    assert 1 <= time.monotonic() - started < 10
    assert code == 3 and "no-data" in output and "Traceback" not in output
    assert (row["status"], row["stopped"], row["datagrams"]) == ("no-data", "first-wait", "0")


def send_datagrams(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))


def test_receiver_counts_loss_duplicates_and_reordering_it_is_sent(tmp_path):
    data = sample_png()
    frames = udp_framing.build_datagrams(data, 1000, "framed", 5)  # 13 frames
    end = udp_framing.end_frame(5, len(frames), len(data), hashlib.sha256(data).hexdigest())
    order = [0, 1, 2, 4, 3, 3, 5, 6, 7, 8, 9, 10, 11]  # 12 never sent, 3 twice and late
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--expect", "sample", "--idle-timeout", "5")
    send_datagrams(port, [*(frames[i] for i in order), b"not a frame", end, end])
    code, output, (row,) = receiver.finish()
    assert code == 3, output
    assert (row["lost"], row["duplicates"], row["out_of_order"]) == ("1", "1", "1")
    assert row["datagrams"] == "13" and row["unique_datagrams"] == "12" and row["expected_datagrams"] == "13"
    assert row["malformed"] == "1" and row["end_markers"] == "2"
    assert row["status"] == "incomplete" and row["intact"] == "false" and row["stopped"] == "end-marker"


def test_complete_data_without_end_marker_still_finishes_at_once(tmp_path):
    frames = udp_framing.build_datagrams(sample_png(), 4096, "framed", 8)
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--expect", "sample", "--idle-timeout", "30")
    started = time.monotonic()
    send_datagrams(port, frames)  # every end marker "lost"
    code, output, (row,) = receiver.finish()
    assert code == 0 and row["intact"] == "true" and row["end_markers"] == "0", output
    assert time.monotonic() - started < 10  # not the 30 s idle timeout


def test_repeats_are_separate_transfers(tmp_path):
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--transfers", "3", "--expect", "sample")
    done = run("app.udp_sender", "--model", "thread-pool", "--payload", "100", "--repeats", "3",
               "--transfer-id", "70", "--dest", f"127.0.0.1:{port}")  # fmt: skip
    assert done.returncode == 0 and done.stdout.count("total time") == 3
    code, output, rows = receiver.finish()
    assert code == 0, output
    assert [r["transfer_id"] for r in rows] == ["70", "71", "72"]
    assert all(r["intact"] == "true" and r["lost"] == "0" for r in rows)


def test_pacing_spaces_the_datagrams(tmp_path):
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--expect", "sample")
    sender_csv = tmp_path / "sender.csv"
    done = run("app.udp_sender", "--model", "thread", "--payload", "128", "--rate", "500",
               "--dest", f"127.0.0.1:{port}", "--csv", str(sender_csv))  # fmt: skip
    assert done.returncode == 0
    (sent,) = read_rows(sender_csv)
    datagrams = 97 + 3  # 12,371 bytes in 128-byte pieces, and the end markers
    assert float(sent["seconds"]) >= (datagrams - 1) / 500 * 0.95
    assert receiver.finish()[2][0]["intact"] == "true"


def test_receiver_stops_at_max_time_even_while_data_trickles_in(tmp_path):
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--max-time", "1.5", "--expect", "sample")
    sender = subprocess.Popen([sys.executable, "-m", "app.udp_sender", "--model", "thread", "--rate", "20",
                               "--dest", f"127.0.0.1:{port}", "--quiet"], cwd=ROOT, env=ENV)  # fmt: skip
    try:
        code, output, (row,) = receiver.finish(timeout=15)
    finally:
        sender.kill()
        sender.wait()
    assert code == 3 and row["stopped"] == "max-time" and row["status"] == "incomplete", output
    assert 0 < int(row["datagrams"]) < 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--payload", "0"], "--payload must be from 1 to 65491"),
        (["--payload", "65492"], "--payload must be from 1 to 65491"),
        (["--file", "/no/such/file.png"], "cannot read /no/such/file.png"),
        (["--dest", "no-such-host.invalid"], "cannot resolve"),
        (["--dest", "127.0.0.1:99999"], "bad port"),
        (["--model", "carrier-pigeon"], "invalid choice"),
        (["--rate", "-1"], "--rate"),
        (["--dest", "127.0.0.1:9", "--dest", "localhost:9"], "each destination once"),
    ],
)
def test_sender_refuses_bad_input_clearly(args, message):
    done = run("app.udp_sender", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_raw_sender_accepts_the_largest_udp_payload(tmp_path):
    port = free_udp_port()
    receiver = start_receiver(tmp_path, port, "--framing", "raw", "--expect", "sample")
    done = run("app.udp_sender", "--framing", "raw", "--payload", "65507", "--dest", f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    assert receiver.finish()[2][0]["datagrams"] == "1"


def test_receiver_refuses_a_busy_port_and_bad_input(tmp_path):
    port = free_udp_port()
    first = start_receiver(tmp_path, port, "--idle-timeout", "5")
    try:
        done = run("app.udp_receiver", "--port", str(port), "--idle-timeout", "1")
        assert done.returncode == 1 and "Address already in use" in done.stderr and "--reuse-port" in done.stderr
    finally:
        first.process.kill()
        first.process.communicate()
    for args, message in [
        (["--idle-timeout", "0"], "--idle-timeout"),
        (["--expect", "/no/such/file"], "cannot read"),
        (["--transfers", "0"], "--transfers"),
        (["--rcvbuf", "lots"], "not a size"),
    ]:
        done = run("app.udp_receiver", "--port", str(port), *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, args


# --- the sender's deadline ---------------------------------------------------------------------


def drain(sock: socket.socket, quiet: float) -> list[bytes]:
    """Every datagram on ``sock`` until none has come for ``quiet`` seconds."""
    got = []
    sock.settimeout(quiet)
    try:
        while True:
            got.append(sock.recv(65_536))
    except TimeoutError:
        return got


ALL_MODELS = [*MODELS, "broadcast"]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_the_sender_stops_at_its_deadline_and_reports_what_it_sent(tmp_path, model):
    """Paced far too slowly for the time allowed: every round ends at --timeout, counting what went out,
    and the next round starts only after every datagram of the one before (nothing keeps sending)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        target = ["--broadcast", "127.0.0.1", "--port", str(port)] if model == "broadcast" else [
            "--dest", f"127.0.0.1:{port}"]  # fmt: skip
        sender_csv = tmp_path / "sender.csv"
        started = time.monotonic()
        done = run("app.udp_sender", "--model", model, "--rate", "40", "--timeout", "0.5", "--repeats", "2",
                   "--transfer-id", "500", "--csv", str(sender_csv), *target, timeout=30)  # fmt: skip
        took = time.monotonic() - started
        received = drain(sock, 0.5)
    assert done.returncode == 3, done.stdout + done.stderr
    assert took < 10, done.stdout  # two rounds of 0.5 s, not a hang at exit
    rows = read_rows(sender_csv)
    assert [r["transfer_id"] for r in rows] == ["500", "501"]
    ids = [udp_framing.parse_frame(d).transfer_id for d in received]
    for row in rows:
        assert row["status"] == "error" and "did not finish in 0.5s: sent" in row["error"], row
        assert 0 < int(row["datagrams"]) < 12_371 and row["end_markers"] == "0"
        assert float(row["seconds"]) <= 0.5 and float(row["run_seconds"]) < 0.5 + 1.5
        # The count is the real one: exactly what arrived on loopback.
        assert ids.count(int(row["transfer_id"])) == int(row["datagrams"])
    assert ids == sorted(ids), "a datagram of round 1 came after round 2 began"


@pytest.mark.parametrize("model", ALL_MODELS)
def test_no_worker_outlives_its_round(model):
    from app import udp_sender

    data = sample_png()[:400]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        job = udp_sender.Job("127.0.0.1", sock.getsockname()[1], data, hashlib.sha256(data).hexdigest(), 1,
                             "framed", 9, 50.0, 0.4, broadcast=model == "broadcast")  # fmt: skip
        threads = set(threading.enumerate())
        started = time.monotonic()
        (row,), _, run_seconds = udp_sender.RUNNERS[model]([job], 0.4)
        took = time.monotonic() - started
        assert set(threading.enumerate()) <= threads  # every worker thread has ended
        assert multiprocessing.active_children() == []  # every worker process too
        late = drain(sock, 0.3)
    assert took < 0.4 + 1.5 and run_seconds < 0.4 + 1.5
    assert row["status"] == "error" and 10 <= int(row["datagrams"]) <= 21, row  # 0.4 s at 50 a second
    assert len(late) == int(row["datagrams"])  # all sent before the round ended, none after


@pytest.mark.parametrize("port", ["²", "\u0668\u0668\u0668\u0668", "8888\u0660", "+80", " 80", "1" * 5000, ""])
def test_a_port_must_be_ascii_digits(port):
    from app.udp_sender import parse_destination

    with pytest.raises(ValueError, match="bad port"):
        parse_destination(f"127.0.0.1:{port}", 8888)
    assert parse_destination("127.0.0.1:80", 8888) == ("127.0.0.1", 80)
    assert parse_destination("127.0.0.1", 8888) == ("127.0.0.1", 8888)


@pytest.mark.parametrize("port", ["²", "\u0668\u0668\u0668\u0668"])  # Arabic-Indic 8888
def test_sender_refuses_a_non_ascii_port_clearly(port):
    done = run("app.udp_sender", "--dest", f"127.0.0.1:{port}", "--timeout", "5")
    assert done.returncode == 2 and "bad port" in done.stderr and "invalid literal" not in done.stderr, done.stderr
