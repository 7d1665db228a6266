"""Settings that choose the Compose CLI and limit the nodes: checked before anything starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import DockerUnavailable, SettingsError
from orchestrator.lab.compose_cli import compose_command
from orchestrator.settings import DEFAULT_PIDS, pids_limits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_compose_choice():
    compose_command.cache_clear()
    yield
    compose_command.cache_clear()


def orchestrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "orchestrate.py", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_an_unknown_compose_choice_is_refused():
    with pytest.raises(SettingsError, match="PROGJAR_COMPOSE must be one of auto, v1, v2, not 'v3'"):
        compose_command("v3")


def test_no_compose_on_the_path_says_so_in_one_message(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    for choice, says in (("auto", "neither"), ("v1", "PROGJAR_COMPOSE=v1"), ("v2", "PROGJAR_COMPOSE=v2")):
        with pytest.raises(DockerUnavailable, match=says):
            compose_command(choice)


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Compose v1 (docker-compose) is not installed")
def test_v1_is_the_docker_compose_binary_even_where_v2_works():
    assert compose_command("v1") == ("docker-compose",)


def test_v2_is_the_docker_cli_plugin():
    works = shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode
    if not shutil.which("docker") or works != 0:
        pytest.skip("the Compose v2 plugin is not installed")
    assert compose_command("v2") == ("docker", "compose")


@pytest.mark.parametrize(("key", "value"), [("PROGJAR_COMPOSE", "v3"), ("PROGJAR_ALPINE_2_PIDS", "lots")])
def test_the_cli_refuses_a_bad_setting_with_one_line(key, value):
    done = orchestrate("up", env={key: value})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and key in done.stderr and "Traceback" not in done.stderr


def test_process_limits_default_per_node_and_follow_the_settings():
    assert pids_limits({}) == DEFAULT_PIDS
    assert pids_limits({"PROGJAR_ALPINE_1_PIDS": "2000"})["alpine-1"] == 2000
    for bad in ("0", "-5", "1.5", "many", "15"):
        with pytest.raises(SettingsError, match="PROGJAR_ALPINE_3_PIDS must be a whole number"):
            pids_limits({"PROGJAR_ALPINE_3_PIDS": bad})
