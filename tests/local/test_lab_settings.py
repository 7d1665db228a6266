"""Settings that choose the Compose CLI and limit the nodes: checked before anything starts."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from orchestrator.compose import compose_command
from orchestrator.errors import DockerUnavailable, SettingsError
from orchestrator.nodes import plain_members
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


def archive_of(*members: tarfile.TarInfo) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def entry(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = 3 if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_fetched_results_are_plain_files_owned_by_the_host_user(tmp_path):
    archive = archive_of(entry("cell", tarfile.DIRTYPE, mode=0o700), entry("cell/clients.csv", uid=10001, mode=0o4777))
    archive.extractall(tmp_path, members=plain_members(archive))
    stored = tmp_path / "cell" / "clients.csv"
    assert stored.read_bytes() == b"xxx"
    assert (stored.stat().st_uid, stored.stat().st_mode & 0o7777) == (os.getuid(), 0o644)


UNSAFE = [
    entry("../escape"),
    entry("/etc/x"),
    entry("cell/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
    entry("cell/dev", tarfile.CHRTYPE),
]


@pytest.mark.parametrize("member", UNSAFE)
def test_fetched_results_with_anything_else_are_refused(member):
    with pytest.raises(ValueError, match="refusing"):
        plain_members(archive_of(member))
