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
from pathlib import Path
from typing import Any

from app import contract
from orchestrator.errors import NodeError
from orchestrator.lab.node import ExecResult, Node
from orchestrator.lab.stand_in import describe_exit, remove_stand_ins, start_stand_in
from orchestrator.lab.telemetry import Samples, sampling
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
        self.stand_ins: dict[str, Node] = {}  # node name -> a submission's program running in its place
        self._stood_down: dict[str, Node] = {}  # node name -> the lab's own node, stopped meanwhile

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
    def _node(self, name: str) -> Node:
        """The running node ``name`` as the lab defines it, or NodeError."""

    @abstractmethod
    def _start_node(self, name: str) -> None:
        """Start node ``name`` again as the lab defines it (after a stand-in took its place)."""

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

    def node(self, name: str) -> Node:
        """The running node ``name`` (a submission's stand-in while one takes its place), or NodeError."""
        return self.stand_ins.get(name) or self._node(name)

    def stand_in(self, name: str, command: str, folder: Path, time_limit: float, volumes: Mapping[str, bool]) -> Node:
        """Run a submission's ``command`` from ``folder`` in place of node ``name`` (see ``stand_in.py``), with
        the node's ``volumes`` named (mount point -> read-only); a stand-in already there is replaced (the
        lab's node stays stopped until ``end_stand_in``)."""
        own = self._stood_down.get(name) or self._node(name)
        self._stood_down[name] = own
        self.stand_ins.pop(name, None)
        self.stand_ins[name] = start_stand_in(own, self.settings.project, command, folder, time_limit, volumes)
        return self.stand_ins[name]

    def end_stand_in(self, name: str) -> None:
        """Remove the stand-in of node ``name``, if any, and start the lab's node again."""
        own = self._stood_down.pop(name, None)
        self.stand_ins.pop(name, None)
        if own is not None:
            remove_stand_ins(own.client, self.settings.project, name)
            self._start_node(name)

    def wait_listening(self, name: str, port: int, wait: float = 30) -> None:
        """Readiness check of node ``name``'s server on ``port``, probed from the client node; NodeError
        with what went wrong (a stand-in that exited says how, with its last output)."""
        probe = contract.probe_command(host=self.address(name), port=port, wait=wait)
        result = self.node(self.roles.client).exec(probe, time_limit=wait + 10)
        if result.exit_code == 0:
            return
        stand_in = self.stand_ins.get(name)
        why = describe_exit(stand_in) if stand_in else None
        detail = why or (f"it runs, but nothing listens on port {port}" if stand_in else self._server_logs())
        raise NodeError(f"the server on {name} did not accept connections on port {port} within {wait:g}s: {detail}")

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
