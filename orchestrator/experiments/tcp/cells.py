"""The TCP experiment's cells: a matrix's ``tcp`` section in, numbered cells out (pure).

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
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from app.sizes import format_size
from orchestrator.matrix import Section, check_keys, choices, positive_ints, seconds, volumes

OPERATIONS = ("upload", "download")
POOLS = ("thread", "process")
PROTOCOLS = ("stream", "json")
MAX_CLIENTS = 500
MAX_WORKERS = 500
TCP_KEYS = {
    "operations", "volumes", "clients", "server_workers", "server_pools",
    "client_pools", "protocols", "timeout", "server_idle_timeout",
}  # fmt: skip


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


def expand_tcp(section: Any, where: str = "tcp") -> Section:
    """Validate a ``tcp`` section and expand it into numbered cells."""
    check_keys(where, section, TCP_KEYS, ("operations", "volumes", "clients", "server_workers", "server_pools"))
    operations = choices(where, "operations", section["operations"], OPERATIONS)
    sizes = volumes(where, section["volumes"])
    clients = positive_ints(where, "clients", section["clients"], MAX_CLIENTS)
    workers = positive_ints(where, "server_workers", section["server_workers"], MAX_WORKERS)
    server_pools = choices(where, "server_pools", section["server_pools"], POOLS)
    client_pools = choices(where, "client_pools", section.get("client_pools", ["thread"]), POOLS)
    protocols = choices(where, "protocols", section.get("protocols", ["stream"]), PROTOCOLS)
    timeout = seconds(where, "timeout", section.get("timeout", 300))
    idle = seconds(where, "server_idle_timeout", section.get("server_idle_timeout", 60))
    combos = itertools.product(server_pools, client_pools, protocols, operations, sizes, clients, workers)
    return Section(
        TcpCell(number, op, volume, n_clients, n_workers, server_pool, client_pool, timeout, idle, protocol)
        for number, (server_pool, client_pool, protocol, op, volume, n_clients, n_workers) in enumerate(combos, start=1)
    )
