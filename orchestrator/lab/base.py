"""The lab interface: what experiments may ask of a lab, whatever runs it.

A backend (``ComposeLab`` today) implements the few abstract methods; the
roles, addresses, readiness check, telemetry and program stopping are the
same for every backend and live here. Node names and roles are referenced
here only, so experiments never spell them out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from app import contract
from orchestrator.errors import NodeError
from orchestrator.lab.telemetry import Samples, sampling
from orchestrator.lab.node import ExecResult, Node
from orchestrator.settings import Settings

Say = Callable[[str], None]


@dataclass(frozen=True)
class Roles:
    """Which node does what (the names come from app/contract.py, as the programs know them)."""

    nodes: tuple[str, ...] = contract.NODES
    server: str = contract.SERVER_NODE  # the TCP file server (also a UDP receiver)
    client: str = contract.CLIENT_NODE  # the stress clients and the UDP sender
    receivers: tuple[str, ...] = tuple(contract.RECEIVER_NODES)  # the UDP receivers


ROLES = Roles()


class Lab(ABC):
    """A running three-node lab, whatever backend runs it."""

    backend: str  # its key in orchestrator.lab.BACKENDS, recorded in manifest.json
    roles: Roles = ROLES

    def __init__(self, settings: Settings, say: Say = print) -> None:
        self.settings = settings
        self.say = say

    # --- what a backend implements --------------------------------------
    @abstractmethod
    def build(self) -> str:
        """Build the node image; return the base image it was built on."""

    @abstractmethod
    def up(self) -> None:
        """Build the node image, start (or update) every node, then wait for the server."""

    @abstractmethod
    def down(self) -> None:
        """Remove the lab's nodes and network (and its volumes)."""

    @abstractmethod
    def node(self, name: str) -> Node:
        """The running node ``name``, or NodeError."""

    @abstractmethod
    def restart_server(self, pool: str, workers: int, outcomes: str, idle_timeout: float) -> None:
        """Recreate the server node with a new pool mode and size, then wait until it accepts."""

    @abstractmethod
    def restore_server(self) -> None:
        """Start the server node again as the lab defines it (the default pool), without waiting."""

    @abstractmethod
    def environment(self) -> dict[str, Any]:
        """Facts for manifest.json: ``backend``, engine, host, images, lab, and ``unavailable`` (never raises)."""

    @abstractmethod
    def _server_logs(self) -> str:
        """What to show when the server did not become ready: the end of its log, or why there is none."""

    # --- the same for every backend -------------------------------------
    @property
    def nodes(self) -> tuple[str, ...]:
        return self.roles.nodes

    def address(self, name: str) -> str:
        """The node's address on the lab network."""
        if name not in self.nodes:
            raise NodeError(f"no node {name} in this lab (its nodes: {', '.join(self.nodes)})")
        return self.settings.address(name)

    def broadcast_address(self) -> str:
        """The lab network's broadcast address (its subnet is always a /24)."""
        return f"{self.settings.net_prefix}.255"

    def wait_server_ready(self, wait: float = 60) -> None:
        """Readiness check: poll the server's port from the client node."""
        server = self.roles.server
        probe = contract.probe_command(host=self.address(server), port=contract.STREAM_PORT, wait=wait)
        result = self.node(self.roles.client).exec(probe, time_limit=wait + 10)
        if result.exit_code != 0:
            raise NodeError(f"the file server on {server} did not become ready in {wait:g}s.\n{self._server_logs()}")

    def sampling(self, nodes: Mapping[str, Node]) -> AbstractContextManager[dict[str, Samples]]:
        """Measure each node's CPU and memory (by role, e.g. ``{"server": node}``) over a ``with`` block."""
        return sampling(nodes)

    def stop_programs(self, name: str, pattern: str) -> ExecResult:
        """Stop (TERM) the programs in node ``name`` whose command line matches ``pattern`` (``pkill -f``)."""
        return self.node(name).exec(["pkill", "-TERM", "-f", pattern], time_limit=30)
