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
      protocols: [stream]         # optional: stream (port 8889) and/or json (port 6666)
      timeout: 300                # optional: seconds per transfer
      server_idle_timeout: 60     # optional: seconds a server waits on a silent client

Every combination of the lists is one cell, numbered from 1 in the order
server pool, client pool, protocol, operation, volume, clients, server workers.

A ``udp`` section describes the second experiment (one sender, two
receivers)::

    udp:
      models: [process, thread, process-pool, thread-pool, asyncio, broadcast]
      payload_sizes: [1, 1024]    # bytes of file data per datagram (1 as in the course)
      framing: framed             # framed (sequence numbers, end marker) or raw (the original's bare bytes)
      repeats: 3                  # optional, default 1
      rate: 0                     # optional: datagrams per second per destination, 0 = unpaced
      idle_timeout: 5             # optional: seconds a receiver waits for more before it reports

Its cells are numbered in the order model, payload size, repeat. A matrix
needs at least one of the two sections.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from app.sample_image import TARGET_SIZE
from app.sizes import format_size, parse_size
from app.udp_framing import MAX_IDLE_TIMEOUT, MAX_RATE, MAX_SECONDS, max_payload, transfer_time_limits
from orchestrator.errors import MatrixError

OPERATIONS = ("upload", "download")
POOLS = ("thread", "process")
PROTOCOLS = ("stream", "json")
MAX_CLIENTS = 500
MAX_WORKERS = 500
MAX_VOLUME = 4 * 1024**3

TCP_KEYS = {
    "operations", "volumes", "clients", "server_workers", "server_pools",
    "client_pools", "protocols", "timeout", "server_idle_timeout",
}  # fmt: skip
TOP_KEYS = {"name", "description", "tcp", "udp"}

UDP_MODELS = ("process", "thread", "process-pool", "thread-pool", "asyncio", "broadcast")
UDP_FRAMINGS = ("framed", "raw")
UDP_KEYS = {"models", "payload_sizes", "framing", "repeats", "rate", "idle_timeout"}
MAX_UDP_PAYLOAD = 65507  # largest UDP payload over IPv4


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
    protocol: str = "stream"
    repeat: int = 1  # 1-based; see plan_cells()

    @property
    def id(self) -> str:
        """Stable folder name, e.g. ``007-upload-10MiB-c5-thread5-r1``."""
        protocol = "" if self.protocol == "stream" else f"-{self.protocol}"
        return (
            f"{self.number:03d}-{self.op}-{format_size(self.volume)}-c{self.clients}"
            f"-{self.server_pool}{self.server_workers}{protocol}-r{self.repeat}"
        )


@dataclass(frozen=True)
class UdpCell:
    """One run of the UDP experiment: one model, one payload size, one repeat."""

    number: int
    model: str  # one of UDP_MODELS
    payload: int  # bytes of file data per datagram
    repeat: int  # 1-based
    framing: str = "framed"
    rate: float = 0.0  # datagrams per second per destination; 0 = as fast as possible
    idle_timeout: float = 5.0

    @property
    def id(self) -> str:
        """Stable folder name, e.g. ``003-thread-1B-r1``."""
        return f"{self.number:03d}-{self.model}-{self.payload}B-r{self.repeat}"


@dataclass(frozen=True)
class Matrix:
    name: str
    description: str
    tcp: list[TcpCell] = field(default_factory=list)
    udp: list[UdpCell] = field(default_factory=list)
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


def _check_keys(where: str, section: Any, known: set[str], required: tuple[str, ...]) -> None:
    """A section is a mapping with only known keys and every required one."""
    if not isinstance(section, dict):
        raise _fail(where, "must be a mapping of settings")
    unknown = set(section) - known
    if unknown:
        raise _fail(where, f"unknown key(s) {_names(unknown)}; known: {_names(known)}")
    for key in required:
        if key not in section:
            raise _fail(where, f"missing key {key!r}")


def expand_tcp(section: Any, where: str = "tcp") -> list[TcpCell]:
    """Validate a ``tcp`` section and expand it into numbered cells."""
    _check_keys(where, section, TCP_KEYS, ("operations", "volumes", "clients", "server_workers", "server_pools"))
    operations = _choices(where, "operations", section["operations"], OPERATIONS)
    volumes = _volumes(where, section["volumes"])
    clients = _positive_ints(where, "clients", section["clients"], MAX_CLIENTS)
    workers = _positive_ints(where, "server_workers", section["server_workers"], MAX_WORKERS)
    server_pools = _choices(where, "server_pools", section["server_pools"], POOLS)
    client_pools = _choices(where, "client_pools", section.get("client_pools", ["thread"]), POOLS)
    protocols = _choices(where, "protocols", section.get("protocols", ["stream"]), PROTOCOLS)
    timeout = _seconds(where, "timeout", section.get("timeout", 300))
    idle = _seconds(where, "server_idle_timeout", section.get("server_idle_timeout", 60))
    combos = itertools.product(server_pools, client_pools, protocols, operations, volumes, clients, workers)
    return [
        TcpCell(number, op, volume, n_clients, n_workers, server_pool, client_pool, timeout, idle, protocol)
        for number, (server_pool, client_pool, protocol, op, volume, n_clients, n_workers) in enumerate(combos, start=1)
    ]


def plan_cells(cells: list[TcpCell], repeat: int = 1, shuffle_seed: int | None = None) -> list[TcpCell]:
    """The order cells run in: ``repeat`` rounds of the matrix, shuffled if a seed is given.

    Repeats run in rounds (all cells once, then all again) rather than back
    to back, so a slow minute of the machine does not hit one cell only.
    The same seed always gives the same order: a run can be resumed.
    """
    if repeat < 1:
        raise MatrixError(f"--repeat must be at least 1, not {repeat}")
    planned = [replace(cell, repeat=r) for r in range(1, repeat + 1) for cell in cells]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(planned)
    return planned


def expand_udp(section: Any, where: str = "udp") -> list[UdpCell]:
    """Validate a ``udp`` section and expand it into numbered cells."""
    _check_keys(where, section, UDP_KEYS, ("models", "payload_sizes"))
    models = _choices(where, "models", section["models"], UDP_MODELS)
    payloads = _positive_ints(where, "payload_sizes", section["payload_sizes"], MAX_UDP_PAYLOAD)
    framing = _choices(where, "framing", section.get("framing", "framed"), UDP_FRAMINGS)
    if len(framing) != 1:
        raise _fail(where, "framing: give one of framed, raw")
    limit = max_payload(framing[0])
    too_big = [p for p in payloads if p > limit]
    if too_big:
        raise _fail(where, f"payload_sizes: {too_big[0]} is larger than {limit}, the most one datagram holds")
    repeats = _positive_ints(where, "repeats", section.get("repeats", 1), 1000)
    if len(repeats) != 1:
        raise _fail(where, "repeats: give one number")
    rate = section.get("rate", 0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= MAX_RATE:
        raise _fail(where, f"rate: {rate!r} is not a number of datagrams per second from 0 to {MAX_RATE}")
    idle = section.get("idle_timeout", 5)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or not 0 < idle <= MAX_IDLE_TIMEOUT:
        raise _fail(where, f"idle_timeout: {idle!r} is not a number of seconds from 0 to {MAX_IDLE_TIMEOUT}")
    # The runner gives each program a time limit from these same numbers; refuse a cell whose limit
    # the programs would refuse (a slow rate: 0.01 datagrams per second is days for 12,371 datagrams).
    for payload in payloads:
        _, needed = transfer_time_limits(TARGET_SIZE, payload, rate, idle)
        if needed > MAX_SECONDS:
            raise _fail(
                where,
                f"rate: {rate:g} datagrams per second is too slow for payload_sizes {payload}: a cell would need "
                f"up to {needed:.0f} s, more than the {MAX_SECONDS} s the sender and receivers allow; "
                f"use a higher rate, or 0 (unpaced)",
            )
    combos = itertools.product(models, payloads, range(1, repeats[0] + 1))
    return [
        UdpCell(number, model, payload, repeat, framing[0], float(rate), float(idle))
        for number, (model, payload, repeat) in enumerate(combos, start=1)
    ]


def parse_matrix(data: Any, name: str) -> Matrix:
    """Validate a matrix file's parsed YAML."""
    if not isinstance(data, dict):
        raise _fail(name, "a matrix file must be a YAML mapping with a 'tcp' and/or 'udp' section")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise _fail(name, f"unknown section(s) {_names(unknown)}; known: {_names(TOP_KEYS)}")
    if "tcp" not in data and "udp" not in data:
        raise _fail(name, "nothing to run: add a 'tcp' or a 'udp' section")
    tcp = expand_tcp(data["tcp"], f"{name}: tcp") if "tcp" in data else []
    udp = expand_udp(data["udp"], f"{name}: udp") if "udp" in data else []
    return Matrix(str(data.get("name", name)), str(data.get("description", "")), tcp, udp, data)


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
