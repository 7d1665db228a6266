"""Lab settings: the project's ``.env`` file overridden by the environment.

Compose reads the same ``.env``, so ``docker compose up`` by hand and
``orchestrate.py`` always agree on the project name and the addresses. The
file is parsed by python-dotenv, as Compose v1 does and with the same rules as
Compose v2 (``VAR=VAL # note`` is ``VAL``; quotes, ``export`` and escapes too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from app.contract import NODE_OCTETS, NODES
from orchestrator.errors import SettingsError

DEFAULT_PROJECT = "progjar-lab"
DEFAULT_NET_PREFIX = "172.16.16"
DEFAULT_BASE_IMAGE = "python:3.12-slim"
LOCAL_BASE_IMAGE = "progjar-base:bookworm"
NODE_IMAGE = "progjar-node:latest"  # default of PROGJAR_IMAGE
DEFAULT_NETWORK = "progjar-network"
# Most processes and threads each node may run (PROGJAR_ALPINE_1_PIDS, ...): room for
# 50 process-pool workers or 50 clients, each with its threads, and the tools.
DEFAULT_PIDS = dict.fromkeys(NODES, 512)


def parse_env_file(path: Path) -> dict[str, str]:
    """The variables of an ``.env`` file, read as Compose reads them (a key without ``=`` is skipped)."""
    return {key: value for key, value in dotenv_values(path, encoding="utf-8").items() if value is not None}


@dataclass(frozen=True)
class Settings:
    """Where the lab is and what it is called."""

    root: Path  # folder of docker-compose.yml
    project: str
    net_prefix: str
    base_image: str | None  # None: choose automatically (see images.py)
    env: Mapping[str, str]  # merged .env + environment, passed to compose

    def address(self, node: str) -> str:
        """A node's fixed address on the lab network."""
        return f"{self.net_prefix}.{NODE_OCTETS[node]}"

    @property
    def subnet(self) -> str:
        return f"{self.net_prefix}.0/24"

    @property
    def network(self) -> str:
        """Name of the lab's bridge network (as docker-compose.yml names it)."""
        return self.env.get("PROGJAR_NETWORK") or DEFAULT_NETWORK

    @property
    def image(self) -> str:
        """Tag of the node image (as docker-compose.yml names it)."""
        return self.env.get("PROGJAR_IMAGE") or NODE_IMAGE


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for the lab in ``root``: ``.env`` first, the environment wins."""
    environ = os.environ if environ is None else environ
    env_file = root / ".env"
    merged = parse_env_file(env_file) if env_file.is_file() else {}
    merged.update(environ)
    return Settings(
        root=root,
        project=merged.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT,
        net_prefix=merged.get("PROGJAR_NET_PREFIX") or DEFAULT_NET_PREFIX,
        base_image=merged.get("PROGJAR_BASE_IMAGE") or None,
        env=merged,
    )


def pids_limits(env: Mapping[str, str]) -> dict[str, int]:
    """Each node's process-count limit: ``PROGJAR_ALPINE_<n>_PIDS`` or its default."""
    limits = {}
    for node, default in DEFAULT_PIDS.items():
        key = f"PROGJAR_{node.upper().replace('-', '_')}_PIDS"
        text = env.get(key) or str(default)
        if not text.isdigit() or not 16 <= int(text) <= 1_000_000:
            raise SettingsError(f"{key} must be a whole number from 16 to 1000000, not {text!r}")
        limits[node] = int(text)
    return limits
