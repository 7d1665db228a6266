"""Lab settings: the project's ``.env`` file overridden by the environment.

Compose reads the same ``.env``, so ``docker compose up`` by hand and
``orchestrate.py`` always agree on the project name and the addresses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import SettingsError

DEFAULT_PROJECT = "progjar-lab"
DEFAULT_NET_PREFIX = "172.16.16"
DEFAULT_BASE_IMAGE = "python:3.12-slim"
LOCAL_BASE_IMAGE = "progjar-base:bookworm"
NODE_IMAGE = "progjar-node:latest"
NODES = ("alpine-1", "alpine-2", "alpine-3")
NODE_USER = "progjar"  # the unprivileged user the nodes' programs run as (images/Dockerfile)
SERVER_NODE = "alpine-1"
CLIENT_NODE = "alpine-2"
SERVER_PORT = 8889  # the streaming dialect
JSON_PORT = 6666  # the course's JSON protocol
# Most processes and threads each node may run (PROGJAR_ALPINE_1_PIDS, ...): room for
# 50 process-pool workers or 50 clients, each with its threads, and the tools.
DEFAULT_PIDS = {"alpine-1": 512, "alpine-2": 512, "alpine-3": 512}


def parse_env_file(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines as Compose does for the simple cases we use."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


@dataclass(frozen=True)
class Settings:
    """Where the lab is and what it is called."""

    root: Path  # folder of docker-compose.yml
    project: str
    net_prefix: str
    base_image: str | None  # None: choose automatically (see images.py)
    env: Mapping[str, str]  # merged .env + environment, passed to compose

    @property
    def server_ip(self) -> str:
        return f"{self.net_prefix}.101"


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for the lab in ``root``: ``.env`` first, the environment wins."""
    environ = os.environ if environ is None else environ
    env_file = root / ".env"
    merged = parse_env_file(env_file.read_text()) if env_file.is_file() else {}
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
