"""The lab interface without Docker: roles, addresses, backends, teardown, readiness, per-engine telemetry."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from orchestrator.errors import NodeError, SettingsError
from orchestrator.lab import BACKENDS, ComposeLab, ExecResult, Lab, Node, open_lab, running_lab
from orchestrator.settings import Settings

SETTINGS = Settings(Path("."), project="p", net_prefix="172.16.99", base_image=None, env={})


class FakeNode:
    def __init__(self, exit_code: int = 0) -> None:
        self.commands: list[list[str]] = []
        self.exit_code = exit_code

    def exec(self, command: list[str], time_limit: float = 600, **_: Any) -> ExecResult:
        self.commands.append(list(command))
        return ExecResult(self.exit_code, "")


class FakeLab(Lab):
    backend = "fake"

    def __init__(self, settings: Settings, say: Any = print) -> None:
        super().__init__(settings, say)
        self.calls: list[str] = []
        self.fake_node = FakeNode()

    def build(self) -> str:
        return "base"

    def up(self) -> None:
        self.calls.append("up")

    def down(self) -> None:
        self.calls.append("down")

    def _node(self, name: str) -> Any:
        return self.fake_node

    def _start_node(self, name: str) -> None:
        self.calls.append(f"start {name}")

    def restart_server(self, pool: str, workers: int, outcomes: str, idle_timeout: float) -> None:
        pass

    def restore_server(self) -> None:
        pass

    def environment(self) -> dict[str, Any]:
        return {"backend": self.backend, "unavailable": {}}

    def _server_logs(self) -> str:
        return "Last lines of its log:\nboom"


def test_roles_and_addresses_come_from_one_place():
    lab = FakeLab(SETTINGS)
    assert lab.nodes == ("alpine-1", "alpine-2", "alpine-3")
    assert (lab.roles.server, lab.roles.client) == ("alpine-1", "alpine-2")
    assert lab.roles.receivers == ("alpine-1", "alpine-3")
    assert [lab.address(name) for name in lab.nodes] == ["172.16.99.101", "172.16.99.102", "172.16.99.103"]
    assert lab.address(lab.roles.server) == SETTINGS.address("alpine-1")
    assert lab.broadcast_address() == "172.16.99.255"
    with pytest.raises(NodeError, match="no node alpine-9"):
        lab.address("alpine-9")


def test_backends_are_chosen_by_name():
    assert list(BACKENDS) == ["compose"] and BACKENDS["compose"] is ComposeLab
    with pytest.raises(SettingsError, match="backend must be one of compose, not 'swarm'"):
        open_lab(SETTINGS, backend="swarm")
    with pytest.raises(TypeError, match="abstract"):
        Lab(SETTINGS)  # type: ignore[abstract]


def test_the_compose_backend_refuses_bad_settings_before_docker():
    bad = Settings(Path("."), project="p", net_prefix="172.16.99", base_image=None, env={"PROGJAR_ALPINE_1_PIDS": "x"})
    with pytest.raises(SettingsError, match="PROGJAR_ALPINE_1_PIDS"):
        open_lab(bad)


def test_running_lab_always_tears_down_unless_kept(monkeypatch):
    made: list[FakeLab] = []

    def make(settings: Settings, say: Any) -> FakeLab:
        made.append(FakeLab(settings, say))
        return made[-1]

    monkeypatch.setitem(BACKENDS, "fake", make)
    with pytest.raises(RuntimeError), running_lab(SETTINGS, backend="fake"):
        raise RuntimeError("a test failed")
    with running_lab(SETTINGS, keep=True, backend="fake") as lab:
        assert isinstance(lab, FakeLab)
    assert [m.calls for m in made] == [["up", "down"], ["up"]]


def test_wait_server_ready_probes_the_server_from_the_client_and_shows_its_log():
    lab = FakeLab(SETTINGS)
    lab.wait_server_ready(wait=5)
    probe = lab.fake_node.commands[-1]
    assert probe[:6] == ["python", "-m", "app.probe", "--host", "172.16.99.101", "--port"] and probe[-1] == "5"
    lab.fake_node.exit_code = 1
    with pytest.raises(NodeError, match=r"alpine-1 did not become ready in 5s\.\nLast lines of its log:\nboom"):
        lab.wait_server_ready(wait=5)


def test_stop_programs_sends_term_to_the_matching_programs():
    lab = FakeLab(SETTINGS)
    lab.stop_programs("alpine-2", "[a]pp.stress_client")
    assert lab.fake_node.commands == [["pkill", "-TERM", "-f", "[a]pp.stress_client"]]


class GoneEngine:
    """An engine whose every call fails; it records which containers it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.api = self

    def exec_create(self, container_id: str, *args: Any, **kwargs: Any) -> dict[str, str]:
        self.asked.append(container_id)
        raise docker.errors.APIError("engine gone")

    def stats(self, container_id: str, **kwargs: Any) -> Any:
        raise docker.errors.APIError("engine gone")


def test_sampling_reads_each_node_through_its_own_engine():
    engines = GoneEngine(), GoneEngine()
    nodes = {
        "server": Node(engines[0], SimpleNamespace(id="c-server"), "alpine-1"),  # type: ignore[arg-type]
        "client": Node(engines[1], SimpleNamespace(id="c-client"), "alpine-2"),  # type: ignore[arg-type]
    }
    with FakeLab(SETTINGS).sampling(nodes) as samples:
        pass
    assert [engine.asked for engine in engines] == [["c-server"], ["c-client"]]
    assert set(samples) == {"server", "client"}
    assert all("cannot read the CPU counter" in s.cpu.problem and s.cpu.seconds is None for s in samples.values())
