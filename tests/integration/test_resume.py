"""Interrupting a run: Ctrl-C stops cleanly, a killed run resumes without redoing cells."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from orchestrator.experiments.udp.cells import expand_udp
from orchestrator.matrix import plan
from orchestrator.rows import read_raw as read_csv
from tests.integration.conftest import ROOT, TEST_ENV, orchestrate

SLOW = Path(__file__).parent / "slow.yaml"
UDP_SLOW = Path(__file__).parent / "udp-slow.yaml"
CELLS, CLIENT_ROWS = 4, 2 + 3 + 2 + 3


def start_run(results: Path, run_id: str, *options: str, matrix: Path = SLOW) -> subprocess.Popen[str]:
    command = [sys.executable, str(ROOT / "orchestrate.py"), "--matrix", str(matrix), "--results", str(results),
               "--run-id", run_id, *options]  # fmt: skip
    env = {**os.environ, **TEST_ENV, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_cells(process: subprocess.Popen[str], done: int, limit: float = 300) -> None:
    """Read progress lines until ``done`` cells have finished (bounded in time)."""
    deadline = time.monotonic() + limit
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"the run ended early: {process.stderr.read() if process.stderr else ''}"
        if line.startswith(f"[{done:>3}/"):
            return
    raise AssertionError(f"{done} cells did not finish in {limit}s")


def stray_clients(lab) -> str:
    result = lab.node("alpine-2").exec(["pgrep", "-af", "[a]pp.stress_client"])
    return result.output.strip() if result.exit_code == 0 else ""


def test_killed_run_resumes_without_redoing_cells(lab, tmp_path):
    process = start_run(tmp_path, "killed")
    try:
        wait_for_cells(process, 1)
        time.sleep(0.5)  # well inside the second cell, which takes seconds
    finally:
        process.kill()  # no cleanup at all, as if the machine lost power
        process.wait(timeout=30)
    assert len(read_csv(tmp_path / "killed" / "summary.csv")) == 1

    done = orchestrate("--resume", "killed", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 of 4 TCP cells already done" in done.stdout
    summary = read_csv(tmp_path / "killed" / "summary.csv")
    assert len({row["cell_id"] for row in summary}) == len(summary) == CELLS
    clients = read_csv(tmp_path / "killed" / "clients.csv")
    assert len(clients) == CLIENT_ROWS
    assert len({(row["cell_id"], row["client"]) for row in clients}) == CLIENT_ROWS
    assert all(row["status"] == "ok" for row in clients)
    assert len(read_csv(tmp_path / "killed" / "server.csv")) == CLIENT_ROWS
    assert '"status": "finished"' in (tmp_path / "killed" / "run.json").read_text()


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(lab, tmp_path):
    process = start_run(tmp_path, "interrupted")
    try:
        wait_for_cells(process, 1)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "resume with: python orchestrate.py --resume interrupted" in stderr
    assert "Traceback" not in stderr
    assert stray_clients(lab) == ""
    assert '"status": "interrupted"' in (tmp_path / "interrupted" / "run.json").read_text()
    # the lab is left usable: the default server answers again
    lab.wait_server_ready(wait=30)


def test_udp_repeats_in_a_recorded_order_and_resumes_without_redoing_cells(lab, tmp_path):
    """--repeat and --shuffle apply to UDP cells too; a killed run's finished UDP cells are not run again."""
    options = ("--experiment", "udp", "--repeat", "2", "--shuffle", "--seed", "11")
    process = start_run(tmp_path, "udp-killed", *options, matrix=UDP_SLOW)
    try:
        wait_for_cells(process, 1)
        time.sleep(0.5)  # inside the second cell, which takes about 2.5 s
    finally:
        process.kill()
        process.wait(timeout=30)
    first = read_csv(tmp_path / "udp-killed" / "udp.csv")
    assert len(first) == 2 and len({row["cell_id"] for row in first}) == 1  # one cell: a row per receiver

    done = orchestrate("--resume", "udp-killed", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 of 4 UDP cells already done" in done.stdout
    rows = read_csv(tmp_path / "udp-killed" / "udp.csv")
    assert rows[:2] == first  # the finished cell was not run again
    cells = list(dict.fromkeys(row["cell_id"] for row in rows))
    section = expand_udp(yaml.safe_load(UDP_SLOW.read_text())["udp"])
    assert cells == [cell.id for cell in plan(section, 2, 11)]  # each cell twice, in the seed's order
    assert sorted(cells) == ["001-thread-1B-r1", "001-thread-1B-r2", "002-asyncio-1B-r1", "002-asyncio-1B-r2"]
    assert all(row["intact"] == "true" for row in rows) and len(rows) == 8
    summary = read_csv(tmp_path / "udp-killed" / "udp_summary.csv")
    assert [(row["model"], row["runs"]) for row in summary] == [("thread", "2")] * 2 + [("asyncio", "2")] * 2
    assert '"shuffle_seed": 11' in (tmp_path / "udp-killed" / "run.json").read_text()
