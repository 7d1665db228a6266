"""The real three-node lab, brought up once for the integration tests and always torn down.

It runs as its own Compose project on its own network and subnet
(``progjar-test`` on 172.16.17.0/24, or PROGJAR_TEST_PROJECT and
PROGJAR_TEST_NET_PREFIX), so a student's lab on the course's addresses can
keep running meanwhile, and two test sessions can run side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import LabError
from orchestrator.lab import Lab, running_lab
from orchestrator.lab.compose_cli import settings_compose_command
from orchestrator.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
TEST_PROJECT = os.environ.get("PROGJAR_TEST_PROJECT", "progjar-test")
TEST_ENV = {
    "COMPOSE_PROJECT_NAME": TEST_PROJECT,
    "PROGJAR_NETWORK": f"{TEST_PROJECT}-network",
    "PROGJAR_NET_PREFIX": os.environ.get("PROGJAR_TEST_NET_PREFIX", "172.16.17"),
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    settings = load_settings(ROOT, {**os.environ, **TEST_ENV})
    try:
        with running_lab(settings, say=lambda msg: print(f"[lab] {msg}")) as lab:
            yield lab
    except LabError as exc:
        pytest.fail(f"the lab could not be brought up: {exc}")


def orchestrate(
    *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI against the test lab (``env``: more variables, or other values)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "orchestrate.py"), *args],
        cwd=ROOT,
        env={**os.environ, **TEST_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the real CLI against the test lab in the background (unbuffered, for its progress lines)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "orchestrate.py"), *args],
        cwd=ROOT,
        env={**os.environ, **TEST_ENV, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real Compose CLI on the test project, as a student would."""
    return subprocess.run(
        [*settings_compose_command(load_settings(ROOT, {**os.environ, **TEST_ENV})), *args],
        cwd=ROOT,
        env={**os.environ, **TEST_ENV},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
