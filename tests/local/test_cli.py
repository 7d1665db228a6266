"""The orchestrator's command line on bad input: a clear message and an exit code, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def orchestrate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "orchestrate.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_matrix_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tcp:\n  operations: [upload]\n  volumes: [lots]\n  clients: [1]\n"
        "  server_workers: [1]\n  server_pools: [thread]\n"
    )
    done = orchestrate("--matrix", str(bad))
    assert done.returncode == 2
    assert "error:" in done.stderr and "volumes" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_matrix_names_the_builtin_ones():
    done = orchestrate("--matrix", "no-such-matrix")
    assert done.returncode == 2
    assert "built-in matrices: full, quick" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_docker_engine(tmp_path):
    done = orchestrate("up", env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert done.returncode == 1
    assert "cannot reach the Docker engine" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_exit_codes():
    done = orchestrate("--help")
    assert done.returncode == 0 and "Exit codes" in done.stdout


NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/no-docker.sock"}


@pytest.mark.parametrize(
    "args",
    [
        ["--run-id", "../../escape"],
        ["--run-id", "x; rm -rf /"],
        ["--resume", "../other"],
        ["bench", "--run-id", "/abs"],
        ["report", ".."],
        ["compare", "a", "../../etc"],
    ],
)
def test_unsafe_run_ids_are_bad_usage_before_docker(tmp_path, args):
    (tmp_path / "results").mkdir()
    done = orchestrate(*args, "--results", str(tmp_path / "results"), env=NO_DOCKER)
    assert done.returncode == 2, done.stderr
    assert "not a valid run id" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "escape").exists()


def test_resume_refuses_a_language_other_than_the_runs(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    state = {"run_id": "r1", "matrix": "quick", "experiment": "all", "repeat": 1, "shuffle_seed": None,
             "status": "interrupted", "started": 0.0, "lang": "id"}  # fmt: skip
    (run / "run.json").write_text(json.dumps(state))
    done = orchestrate("--resume", "r1", "--lang", "en", "--results", str(tmp_path), env=NO_DOCKER)
    assert done.returncode == 2, done.stderr
    assert "was started with --lang id" in done.stderr


def test_up_suggests_the_compose_command_this_machine_has():
    from orchestrator.cli import up_hint

    assert "`docker-compose exec alpine-2 " in up_hint(("docker-compose",))
    assert "`docker compose exec alpine-2 " in up_hint(("docker", "compose"))
