"""Changing the lab's settings while it runs: the lab is recreated, nothing is left behind."""

from __future__ import annotations

import ipaddress
import os

import docker
import pytest

from tests.integration.conftest import TEST_ENV, TEST_PROJECT, orchestrate


def alternative_prefix() -> str:
    """A second /24 for the test lab: the one in PROGJAR_NET_PREFIX (this machine's lab), if it is free."""
    prefix = os.environ.get("PROGJAR_TEST_ALT_NET_PREFIX") or os.environ.get("PROGJAR_NET_PREFIX") or "172.16.18"
    if prefix == TEST_ENV["PROGJAR_NET_PREFIX"]:
        pytest.skip("set PROGJAR_TEST_ALT_NET_PREFIX to a free /24 other than the test lab's")
    wanted = ipaddress.ip_network(f"{prefix}.0/24")
    for network in docker.from_env().networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = config.get("Subnet")
            if subnet and ":" not in subnet and ipaddress.ip_network(subnet).overlaps(wanted):
                pytest.skip(f"{wanted} is in use by network {network.name}: set PROGJAR_TEST_ALT_NET_PREFIX")
    return prefix


def project_state(client: docker.DockerClient) -> tuple[list[str], dict[str, list[str]]]:
    """The test project's containers (name, status, address) and its networks with their subnets."""
    label = f"com.docker.compose.project={TEST_PROJECT}"
    containers = sorted(
        f"{c.labels['com.docker.compose.service']} {c.status} "
        + ",".join(n["IPAddress"] for n in c.attrs["NetworkSettings"]["Networks"].values())
        for c in client.containers.list(all=True, filters={"label": label})
    )
    networks = {
        n.name: [config["Subnet"] for config in n.attrs["IPAM"]["Config"]]
        for n in client.networks.list(filters={"label": label})
    }
    return containers, networks


def expected(prefix: str) -> tuple[list[str], dict[str, list[str]]]:
    nodes = [f"alpine-{i} running {prefix}.{100 + i}" for i in (1, 2, 3)]
    return nodes, {TEST_ENV["PROGJAR_NETWORK"]: [f"{prefix}.0/24"]}


def test_a_running_lab_moves_to_a_new_subnet_and_back(lab, tmp_path):
    client = docker.from_env()
    old, new = TEST_ENV["PROGJAR_NET_PREFIX"], alternative_prefix()
    assert project_state(client) == expected(old)
    try:
        moved = orchestrate("up", env={"PROGJAR_NET_PREFIX": new}, timeout=600)
        assert moved.returncode == 0, moved.stdout[-2000:] + moved.stderr[-2000:]
        assert "the lab's settings changed" in moved.stdout and f"the settings say {new}.0/24" in moved.stdout
        assert project_state(client) == expected(new)  # nothing renamed or half-made is left
    finally:
        back = orchestrate("up", timeout=600)
    assert back.returncode == 0, back.stdout[-2000:] + back.stderr[-2000:]
    assert project_state(client) == expected(old)
    lab.wait_server_ready(wait=30)
