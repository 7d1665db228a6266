"""Experiment matrices: YAML files in, a validated list of cells out (pure logic).

A matrix file looks like ``matrices/quick.yaml``::

    description: ...
    tcp:
      operations: [upload, download]
      volumes: [1MiB, 10MiB]
      clients: [1, 5]
      server_workers: [1, 5]
      server_pools: [thread, process]
      client_pools: [thread]      # optional, default [thread]
      timeout: 300                # optional: seconds per transfer
      server_idle_timeout: 60     # optional: seconds a server waits on a silent client

Every combination of the lists is one cell, numbered from 1 in the order
server pool, operation, volume, clients, server workers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.sizes import format_size, parse_size
from orchestrator.errors import MatrixError

OPERATIONS = ("upload", "download")
POOLS = ("thread", "process")
MAX_CLIENTS = 500
MAX_WORKERS = 500
MAX_VOLUME = 4 * 1024**3

TCP_KEYS = {
    "operations", "volumes", "clients", "server_workers", "server_pools",
    "client_pools", "timeout", "server_idle_timeout",
}  # fmt: skip
TOP_KEYS = {"name", "description", "tcp"}


@dataclass(frozen=True)
class TcpCell:
    """One run of the TCP file-server experiment."""

    number: int
    op: str
    volume: int  # file size in bytes
    clients: int
    server_workers: int
    server_pool: str
    client_pool: str = "thread"
    timeout: float = 300.0
    server_idle_timeout: float = 60.0

    @property
    def id(self) -> str:
        """Stable folder name, e.g. ``007-upload-10MiB-c5-thread5``."""
        return (
            f"{self.number:03d}-{self.op}-{format_size(self.volume)}-c{self.clients}"
            f"-{self.server_pool}{self.server_workers}"
        )


@dataclass(frozen=True)
class Matrix:
    name: str
    description: str
    tcp: list[TcpCell] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)  # the file's data, kept with the results


def _fail(where: str, message: str) -> MatrixError:
    return MatrixError(f"{where}: {message}")


def _names(keys: set[Any]) -> str:
    return ", ".join(sorted(map(str, keys)))


def _as_list(where: str, key: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _fail(where, f"{key} must not be empty")
    return values


def _positive_ints(where: str, key: str, value: Any, limit: int) -> list[int]:
    result = []
    for item in _as_list(where, key, value):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= limit:
            raise _fail(where, f"{key}: {item!r} is not a whole number from 1 to {limit}")
        result.append(item)
    return result


def _choices(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    result = []
    for item in _as_list(where, key, value):
        if item not in allowed:
            raise _fail(where, f"{key}: {item!r} is not one of {', '.join(allowed)}")
        result.append(item)
    return result


def _seconds(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise _fail(where, f"{key}: {value!r} is not a number of seconds from 0 to 86400")
    return float(value)


def _volumes(where: str, value: Any) -> list[int]:
    result = []
    for item in _as_list(where, "volumes", value):
        try:
            size = parse_size(item)
        except ValueError as exc:
            raise _fail(where, f"volumes: {exc}") from None
        if not 1 <= size <= MAX_VOLUME:
            raise _fail(where, f"volumes: {item!r} must be from 1 byte to 4GiB")
        result.append(size)
    return result


def expand_tcp(section: Any, where: str = "tcp") -> list[TcpCell]:
    """Validate a ``tcp`` section and expand it into numbered cells."""
    if not isinstance(section, dict):
        raise _fail(where, "must be a mapping of settings")
    unknown = set(section) - TCP_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {_names(unknown)}; known: {_names(TCP_KEYS)}")
    for key in ("operations", "volumes", "clients", "server_workers", "server_pools"):
        if key not in section:
            raise _fail(where, f"missing key {key!r}")
    operations = _choices(where, "operations", section["operations"], OPERATIONS)
    volumes = _volumes(where, section["volumes"])
    clients = _positive_ints(where, "clients", section["clients"], MAX_CLIENTS)
    workers = _positive_ints(where, "server_workers", section["server_workers"], MAX_WORKERS)
    server_pools = _choices(where, "server_pools", section["server_pools"], POOLS)
    client_pools = _choices(where, "client_pools", section.get("client_pools", ["thread"]), POOLS)
    timeout = _seconds(where, "timeout", section.get("timeout", 300))
    idle = _seconds(where, "server_idle_timeout", section.get("server_idle_timeout", 60))
    combos = itertools.product(server_pools, client_pools, operations, volumes, clients, workers)
    return [
        TcpCell(number, op, volume, n_clients, n_workers, server_pool, client_pool, timeout, idle)
        for number, (server_pool, client_pool, op, volume, n_clients, n_workers) in enumerate(combos, start=1)
    ]


def parse_matrix(data: Any, name: str) -> Matrix:
    """Validate a matrix file's parsed YAML."""
    if not isinstance(data, dict):
        raise _fail(name, "a matrix file must be a YAML mapping with a 'tcp' section")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise _fail(name, f"unknown section(s) {_names(unknown)}; known: {_names(TOP_KEYS)}")
    if "tcp" not in data:
        raise _fail(name, "nothing to run: add a 'tcp' section")
    cells = expand_tcp(data["tcp"], f"{name}: tcp")
    return Matrix(str(data.get("name", name)), str(data.get("description", "")), cells, data)


def load_matrix(spec: str, builtin_dir: Path) -> Matrix:
    """A built-in matrix by name (``quick``, ``full``) or a YAML file by path."""
    path = builtin_dir / f"{spec}.yaml"
    if "/" in spec or spec.endswith((".yaml", ".yml")) or not path.is_file():
        path = Path(spec)
    try:
        text = path.read_text()
    except OSError as exc:
        builtin = ", ".join(sorted(p.stem for p in builtin_dir.glob("*.yaml")))
        raise MatrixError(f"cannot read matrix {spec!r}: {exc.strerror} (built-in matrices: {builtin})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MatrixError(f"{path}: not valid YAML: {exc}") from None
    return parse_matrix(data, path.stem if path.parent == builtin_dir else str(path))
