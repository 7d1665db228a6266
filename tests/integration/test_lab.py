"""End to end against the real Compose lab: real containers, real sockets."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.rows import read_raw as read_csv
from tests.integration.conftest import compose, orchestrate

HERE = Path(__file__).parent


def expected_digest(size: int) -> str:
    """The generator's bytes, made again on the host: the same on every machine."""
    from app.genfile import _block

    hasher = hashlib.sha256()
    for index, offset in enumerate(range(0, size, 1 << 20)):
        hasher.update(_block(size, index, min(1 << 20, size - offset)))
    return hasher.hexdigest()


def run_matrix(tmp_path: Path, matrix: str, run_id: str) -> Path:
    done = orchestrate("--matrix", str(HERE / matrix), "--results", str(tmp_path), "--run-id", run_id)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp_path / run_id


def test_tiny_matrix_every_cell_succeeds_and_both_sides_agree(lab, tmp_path):
    run = run_matrix(tmp_path, "tiny.yaml", "tiny")
    summaries = read_csv(run / "summary.csv")
    assert len(summaries) == 16
    for s in summaries:
        clients = int(s["client_workers"])
        assert (int(s["clients_ok"]), int(s["clients_failed"])) == (clients, 0), s
        assert (int(s["server_ok"]), int(s["server_failed"])) == (clients, 0), s
        assert float(s["throughput_per_client_mibps"]) > 0
        assert float(s["throughput_per_client_mean_mibps"]) > 0
        # Every cell, however short, has its containers' CPU from their cgroup counters.
        assert float(s["server_cpu_seconds"]) > 0 and float(s["client_cpu_seconds"]) > 0, s
        assert float(s["server_cpu_percent"]) > 0 and float(s["client_cpu_percent"]) > 0, s
        assert s["cpu_problems"] == "", s

    digest = expected_digest(3 * 2**20)
    client_rows = read_csv(run / "clients.csv")
    server_rows = read_csv(run / "server.csv")
    assert len(client_rows) == len(server_rows) == sum(int(s["client_workers"]) for s in summaries)
    assert {r["sha256"] for r in client_rows} == {digest}
    # Every upload the client made is the server's record of the same connection, same bytes.
    server_by_port = {(r["cell"], r["peer_port"]): r for r in server_rows}
    for row in client_rows:
        twin = server_by_port[(row["cell"], row["local_port"])]
        assert twin["status"] == "ok" and twin["bytes"] == str(3 * 2**20)
        if row["op"] == "upload":
            assert twin["sha256"] == digest
    stored = lab.node("alpine-1").check(["sha256sum", "/srv/files/file_3MiB.bin"])
    assert stored.split()[0] == digest
    assert "| upload" in (run / "summary.md").read_text()


def test_a_second_run_of_a_cell_reproduces(lab, tmp_path):
    first = read_csv(run_matrix(tmp_path, "one-cell.yaml", "first") / "summary.csv")[0]
    second = read_csv(run_matrix(tmp_path, "one-cell.yaml", "second") / "summary.csv")[0]
    for key in ("clients_ok", "clients_failed", "server_ok", "server_failed", "volume_bytes"):
        assert first[key] == second[key]
    assert first["clients_ok"] == "4" and first["server_ok"] == "4"
    ratio = float(first["throughput_per_client_mibps"]) / float(second["throughput_per_client_mibps"])
    assert 0.2 < ratio < 5, f"throughput differs by {ratio:.2f}x between two runs of one cell"


def test_manual_upload_and_download_through_compose_exec(lab):
    for op in ("upload", "download"):
        done = compose("exec", "-T", "alpine-2", "python", "-m", "app.stress_client", "--op", op,
                       "--size", "1MiB", "--host", lab.address("alpine-1"))  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"1/1 {op}s of file_1MiB.bin (1048576 bytes) succeeded" in done.stdout


HOSTILE = """
import socket, sys
def ask(data):
    with socket.create_connection((sys.argv[1], 8889), timeout=10) as s:
        s.sendall(data)
        return s.recv(200)
print(ask(b"GET ../../etc/passwd\\r\\n\\r\\n"))
print(ask(b"UPLOAD /tmp/x 4\\r\\n\\r\\nQUJD"))
print(ask(b"GET nothing-here.bin\\r\\n\\r\\n"))
"""


def test_containerised_server_refuses_traversal_and_keeps_serving(lab):
    output = lab.node("alpine-2").check(["python", "-c", HOSTILE, lab.address("alpine-1")])
    assert output.count("ERROR Invalid filename") == 2
    assert "ERROR File not found" in output
    listing = lab.node("alpine-1").check(["ls", "-A", "/srv/files", "/tmp"])
    assert "passwd" not in listing and "\nx\n" not in listing
    assert lab.node("alpine-1").check(["cat", "/etc/passwd"]).startswith("root:")
    done = compose("exec", "-T", "alpine-2", "python", "-m", "app.stress_client", "--op", "upload",
                   "--size", "1MiB", "--host", lab.address("alpine-1"))  # fmt: skip
    assert done.returncode == 0
