"""Everything that talks to Docker: the lab interface and its backends.

base.py         ``Lab``: what experiments ask of a lab (nodes by role, addresses, server restarts,
                readiness, telemetry, environment facts), whatever backend runs it
node.py         ``Node``: one container through its engine's Docker SDK; ``ExecResult``, ``run_as_root``
compose.py      ``ComposeLab``: the lab as one Compose project on the local engine
compose_cli.py  the Compose CLI (``docker compose`` v2 or ``docker-compose`` v1)
images.py       the node image and its base
archive.py      unpacks a node's tar stream safely
telemetry.py    container CPU (cgroup counters) and memory while a cell runs
environment.py  engine, Compose, host and image facts for manifest.json

A second backend is one new module and one line in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.errors import SettingsError
from orchestrator.lab.base import ROLES, Lab, Roles, Say
from orchestrator.lab.compose import ComposeLab
from orchestrator.lab.node import ROOT_HELPER, ExecResult, Node, docker_client, run_as_root
from orchestrator.settings import Settings

BACKENDS: dict[str, type[Lab]] = {"compose": ComposeLab}


def open_lab(settings: Settings, say: Say = print, backend: str = "compose") -> Lab:
    """The lab of ``settings`` on ``backend`` (nothing is started yet)."""
    if backend not in BACKENDS:
        raise SettingsError(f"the lab backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return BACKENDS[backend](settings, say)


@contextmanager
def running_lab(settings: Settings, say: Say = print, keep: bool = False, backend: str = "compose") -> Iterator[Lab]:
    """Bring the lab up for the ``with`` block; tear it down after unless ``keep``."""
    lab = open_lab(settings, say, backend)
    try:
        lab.up()
        yield lab
    finally:
        if not keep:
            lab.down()


__all__ = [
    "BACKENDS",
    "ROLES",
    "ROOT_HELPER",
    "ComposeLab",
    "ExecResult",
    "Lab",
    "Node",
    "Roles",
    "Say",
    "docker_client",
    "open_lab",
    "run_as_root",
    "running_lab",
]
