"""Faults in the real lab while a cell runs: a killed or removed server, a killed client, a full disk.

Each run must report the transfers that failed with their causes, keep every
stored file whole, end with a clear message (never a traceback) and finish
with ``--resume``. Uploads are slowed by a rate limit on alpine-2 (``tc tbf``)
so that a fault lands in the middle of the first cell. Every wait is bounded.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from app.genfile import ensure_file, file_name
from orchestrator.errors import LabError, NodeError
from orchestrator.rows import read_raw as read_csv
from tests.integration.conftest import ROOT, TEST_PROJECT, orchestrate, spawn

FAULTS = Path(__file__).parent / "faults.yaml"
VOLUME = 12 * 2**20  # faults.yaml's file size
CELLS = 2
TMPFS_OVERRIDE = {"COMPOSE_FILE": f"docker-compose.yml:{Path(__file__).parent.relative_to(ROOT)}/storage-tmpfs.yml"}
RUN_LIMIT = 300  # seconds a faulty run may take before the test fails


@pytest.fixture
def slow_uploads(lab) -> Iterator[None]:
    """alpine-2 sends at 40 Mbit/s: a 12 MiB upload takes seconds, not a fraction of one."""
    rate = ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "40mbit", "burst", "64kb", "latency", "1s"]
    lab.node("alpine-2").check(rate, root=True)
    yield
    try:
        lab.node("alpine-2").exec(["tc", "qdisc", "del", "dev", "eth0", "root"], root=True)
    except LabError:
        pass  # alpine-2 was recreated: its rate limit went with it


@pytest.fixture(scope="module")
def upload_digest(tmp_path_factory) -> str:
    """SHA-256 of the file the faults matrix uploads (the same generator the nodes use)."""
    return ensure_file(str(tmp_path_factory.mktemp("files")), VOLUME)[1]


def wait_for_upload_in_progress(lab, limit: float = 120) -> None:
    """Until the server is writing an upload (a hidden temporary file in its storage)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            listing = lab.node("alpine-1").exec(["ls", "-a", "/srv/files"], time_limit=10).output
        except LabError:
            listing = ""  # the server is being recreated for the cell
        if ".upload-" in listing:
            return
        time.sleep(0.1)
    raise AssertionError(f"no upload started in {limit:g}s")


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=30)
        raise AssertionError(f"the run did not end within {RUN_LIMIT}s") from None
    return process.returncode, stdout, stderr


def stored_digests(node, folder: str) -> dict[str, str]:
    """SHA-256 of every visible file in ``folder`` of ``node``."""
    script = (
        "import hashlib, os, sys\n"
        "for name in sorted(os.listdir(sys.argv[1])):\n"
        "    path = os.path.join(sys.argv[1], name)\n"
        "    if not name.startswith('.') and os.path.isfile(path):\n"
        "        h = hashlib.sha256()\n"
        "        with open(path, 'rb') as f:\n"
        "            for block in iter(lambda: f.read(1 << 20), b''):\n"
        "                h.update(block)\n"
        "        print(name, h.hexdigest())\n"
    )
    output = node.check(["python", "-c", script, folder], time_limit=60)
    return dict(line.split() for line in output.splitlines())


def assert_uploads_whole(digests: dict[str, str], upload_digest: str) -> None:
    """The uploaded name is either absent or exactly the client's file, never a part of it."""
    assert digests.get(file_name(VOLUME), upload_digest) == upload_digest, digests


def assert_first_cell_failed_with_causes(run: Path) -> list[dict[str, str]]:
    summary = read_csv(run / "summary.csv")
    first = summary[0]["cell_id"]
    failed = [r for r in read_csv(run / "clients.csv") if r["cell_id"] == first and r["status"] != "ok"]
    assert failed, f"no failed transfer recorded in {first}"
    assert all(r["error"] for r in failed), failed
    return failed


def assert_resume_completes(run: Path, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    done = orchestrate("--resume", run.name, "--results", str(tmp_path), env=env, timeout=RUN_LIMIT)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]  # the faulty cell's failures stay
    assert "Traceback" not in done.stderr
    summary = read_csv(run / "summary.csv")
    assert len({row["cell_id"] for row in summary}) == len(summary) == CELLS
    assert '"status": "finished"' in (run / "run.json").read_text()
    second = read_csv(run / "clients.csv")
    assert [r["status"] for r in second if r["cell_id"] == summary[1]["cell_id"]] == ["ok", "ok"]


def start(tmp_path: Path, run_id: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return spawn("--matrix", str(FAULTS), "--results", str(tmp_path), "--run-id", run_id, env=env)


def test_killed_server_fails_its_transfers_and_the_run_goes_on(lab, slow_uploads, upload_digest, tmp_path):
    process = start(tmp_path, "server-killed")
    wait_for_upload_in_progress(lab)
    lab.node("alpine-1").container.kill()
    code, stdout, stderr = finish(process)
    assert code == 3, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    run = tmp_path / "server-killed"
    assert len(read_csv(run / "summary.csv")) == CELLS
    assert_first_cell_failed_with_causes(run)
    assert_uploads_whole(stored_digests(lab.node("alpine-1"), "/srv/files"), upload_digest)
    assert_resume_completes(run, tmp_path)


def test_docker_errors_on_a_vanished_node_are_clear_node_errors(lab, tmp_path):
    node = lab.node("alpine-3")
    node.container.remove(force=True)
    try:
        with pytest.raises(NodeError, match="alpine-3 was removed"):
            node.stop()
        with pytest.raises(NodeError, match=r"alpine-3: .* does not exist|alpine-3: cannot copy"):
            node.fetch("/results", tmp_path / "copy")
        with pytest.raises(NodeError, match="alpine-3: cannot run"):
            node.exec(["true"])
    finally:
        lab.up()  # alpine-3 back for the other tests


def test_host_error_mid_run_is_one_line_exit_1_and_resumable(lab, slow_uploads, tmp_path):
    process = start(tmp_path, "host-error")
    run = tmp_path / "host-error"
    deadline = time.monotonic() + 120
    while not (run / "run.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    (run / "summary.csv").mkdir()  # the cell's summary cannot be written: an OSError on the host
    code, stdout, stderr = finish(process)
    assert code == 1, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    assert "error: IsADirectoryError: [Errno 21] Is a directory:" in stderr
    assert "resume with: python orchestrate.py --resume host-error" in stderr
    assert '"status": "failed"' in (run / "run.json").read_text()
    (run / "summary.csv").rmdir()
    done = orchestrate("--resume", "host-error", "--results", str(tmp_path), timeout=RUN_LIMIT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "0 of 2 TCP cells already done" in done.stdout
    assert len(read_csv(run / "summary.csv")) == CELLS
    assert len(read_csv(run / "clients.csv")) == 2 * CELLS  # the cut-off cell's rows were not kept twice
    assert '"status": "finished"' in (run / "run.json").read_text()


def test_killed_client_is_recorded_as_failed_and_the_run_resumes(lab, slow_uploads, upload_digest, tmp_path):
    process = start(tmp_path, "client-killed")
    wait_for_upload_in_progress(lab)
    lab.node("alpine-2").container.kill()
    code, stdout, stderr = finish(process)
    assert code == 1, stdout[-2000:] + stderr[-2000:]  # the next cell finds no client node
    assert "Traceback" not in stderr
    assert "node alpine-2 is not running" in stderr
    run = tmp_path / "client-killed"
    assert '"status": "failed"' in (run / "run.json").read_text()
    failed = assert_first_cell_failed_with_causes(run)
    assert len(failed) == 2  # one row per client, though the stress client wrote none
    assert_uploads_whole(stored_digests(lab.node("alpine-1"), "/srv/files"), upload_digest)
    assert_resume_completes(run, tmp_path)  # brings alpine-2 back


FILL = """
import os, sys
s = os.statvfs('/srv/files')
if s.f_blocks * s.f_frsize > 128 * 2**20:
    sys.exit('refusing to fill /srv/files: it is not the test tmpfs')
fd = os.open('/srv/files/filler.bin', os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, bytes(1 << 20))
except OSError as exc:
    print('full', exc.errno)
"""


@pytest.fixture
def tmpfs_storage(lab) -> Iterator[None]:
    """The lab with its storage on a tmpfs; after the test, its own storage again and the tmpfs removed."""
    moved = orchestrate("up", env=TMPFS_OVERRIDE, timeout=600)  # before slow_uploads: alpine-2 may be recreated
    assert moved.returncode == 0, moved.stderr[-2000:]
    yield
    back = orchestrate("up", timeout=600)
    assert back.returncode == 0, back.stderr[-2000:]
    try:
        docker.from_env().volumes.get(f"{TEST_PROJECT}_storage-tmpfs").remove()
    except docker.errors.NotFound:
        pass


def test_full_storage_fails_uploads_with_the_cause_and_the_run_resumes(
    lab, tmpfs_storage, slow_uploads, upload_digest, tmp_path
):
    process = start(tmp_path, "storage-full", env=TMPFS_OVERRIDE)
    wait_for_upload_in_progress(lab)
    fill = lab.node("alpine-1").exec(["python", "-c", FILL], time_limit=60)
    # 137: the uploads failed at once, the cell ended and the orchestrator stopped alpine-1 with the filler in it
    assert (fill.exit_code, fill.output.strip()) in ((0, "full 28"), (137, "")), fill
    code, stdout, stderr = finish(process)
    # the uploads under way fail; the next cell is refused for want of space
    assert code == 1, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr
    assert "of free disk in Docker's storage" in stderr
    run = tmp_path / "storage-full"
    assert '"status": "failed"' in (run / "run.json").read_text()
    failed = assert_first_cell_failed_with_causes(run)
    assert any("storage error" in r["error"].lower() for r in failed), [r["error"] for r in failed]
    server = [r for r in read_csv(run / "server.csv") if r["status"] != "ok"]
    assert any("storage" in r.get("error", "").lower() for r in server), server
    view = lab.node("alpine-3")  # mounts the same tmpfs, which outlives the server's recreation
    digests = stored_digests(view, "/srv/storage-view")
    assert "filler.bin" in digests
    assert_uploads_whole(digests, upload_digest)
    view.check(["rm", "/srv/storage-view/filler.bin"])
    assert_resume_completes(run, tmp_path, env=TMPFS_OVERRIDE)
