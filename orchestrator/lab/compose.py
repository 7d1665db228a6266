"""The Compose backend: the lab as one Compose project on the local engine.

Containers are found by the labels Compose puts on them
(``com.docker.compose.project`` and ``com.docker.compose.service``), never
by guessed container names, so the lab works whatever Compose version
named them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from app.contract import NODE_USER
from orchestrator.errors import NodeError
from orchestrator.lab.base import Lab, Say
from orchestrator.lab.compose_cli import Compose, settings_compose_command
from orchestrator.lab.environment import gather_environment
from orchestrator.lab.images import build_node_image, resolve_base_image
from orchestrator.lab.node import ROOT_HELPER, Node, docker_client, run_as_root
from orchestrator.lab.stand_in import STAND_IN, remove_stand_ins
from orchestrator.settings import Settings, pids_limits


class ComposeLab(Lab):
    """The running three-node lab of one Compose project."""

    backend = "compose"

    def __init__(self, settings: Settings, say: Say = print) -> None:
        super().__init__(settings, say)
        pids_limits(settings.env)  # a bad limit or Compose choice is refused before anything starts
        settings_compose_command(settings)
        self.client = docker_client()
        self.compose = Compose(settings, after_up=self.limit_processes)

    # --- finding nodes -------------------------------------------------
    def _containers(self, service: str | None = None) -> list[Container]:
        labels = [f"com.docker.compose.project={self.settings.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        for _ in range(3):  # bounded: a container removed between listing and inspecting (Compose recreating it)
            try:
                return self.client.containers.list(all=True, filters={"label": labels})
            except docker.errors.NotFound:
                continue
        return self.client.containers.list(all=True, filters={"label": labels})

    def _node(self, name: str) -> Node:
        """The running container of service ``name``, or NodeError."""
        found = [c for c in self._containers(name) if c.status == "running"]
        if not found:
            raise NodeError(f"node {name} is not running (start the lab: python orchestrate.py up)")
        return Node(self.client, found[0], name)

    # --- lifecycle -----------------------------------------------------
    def build(self) -> str:
        """Build the node image (cached layers make a rebuild quick); return its base."""
        self.compose.base_image = resolve_base_image(self.client, self.settings, self.say)
        self.say(f"building the node image on {self.compose.base_image}")
        build_node_image(self.client, self.settings, self.compose.base_image)
        return self.compose.base_image

    def up(self) -> None:
        """Build the node image and start (or update) every node, then wait for the server."""
        self.build()
        changed = self.changed_settings()
        if changed:
            # Compose cannot move running containers to another subnet; it fails
            # halfway and leaves renamed containers. Start from a clean slate
            # (the volumes, with the results, stay).
            self.say(f"the lab's settings changed ({changed}): recreating the lab")
            self.remove_containers_and_networks()
        if remove_stand_ins(self.client, self.settings.project):  # a killed run's: it holds a node's address
            self.say("removed a submission's program left in place of a node by an interrupted run")
        self.say(f"starting {', '.join(self.nodes)}")
        self.compose.up()
        if self.adopt_volumes():
            self.compose.up()  # starts again a node that stopped on an unwritable volume
        self.wait_server_ready()

    def _project_networks(self) -> list[Network]:
        return self.client.networks.list(filters={"label": f"com.docker.compose.project={self.settings.project}"})

    def changed_settings(self) -> str | None:
        """How the existing lab differs from the settings (network name, subnet, node image), or None."""
        settings = self.settings
        for network in self._project_networks():
            subnets = [config.get("Subnet") for config in (network.attrs.get("IPAM") or {}).get("Config") or []]
            if network.name != settings.network:
                return f"its network is {network.name}, the settings say {settings.network}"
            if subnets != [settings.subnet]:
                return f"network {network.name} is {', '.join(map(str, subnets))}, the settings say {settings.subnet}"
        for container in self._containers():
            image = container.attrs.get("Config", {}).get("Image")
            if image != settings.image:
                return f"{container.name} runs {image}, the settings say {settings.image}"
        foreign = self.client.networks.list(names=[settings.network])
        for network in foreign:
            owner = (network.attrs.get("Labels") or {}).get("com.docker.compose.project")
            if network.name == settings.network and owner != settings.project:
                raise NodeError(
                    f"a network named {settings.network} already exists and is not this lab's "
                    f"(project {owner or 'none'}); set PROGJAR_NETWORK to another name"
                )
        return None

    def remove_containers_and_networks(self) -> None:
        """Remove the project's containers (renamed leftovers and root helpers too) and networks; keep its volumes."""
        helpers = [
            *self.client.containers.list(all=True, filters={"label": f"{ROOT_HELPER}={self.settings.project}"}),
            *self.client.containers.list(all=True, filters={"label": f"{STAND_IN}={self.settings.project}"}),
        ]
        try:
            for container in [*helpers, *self._containers()]:
                container.remove(force=True)
            for network in self._project_networks():
                network.remove()
        except docker.errors.APIError as exc:
            raise NodeError(
                f"cannot remove the old lab: {exc.explanation or exc}. Run `python orchestrate.py down` and try again"
            ) from None

    def down(self) -> None:
        self.remove_containers_and_networks()  # first: a root helper left behind would hold the volumes
        self.compose.down()  # left over from other settings, which Compose no longer sees

    def adopt_volumes(self) -> bool:
        """Make every node's volumes belong to the nodes' user; True if any did not.

        Volumes made by a version of the lab whose programs ran as root are
        owned by root; they are handed to the unprivileged user here, once,
        so nothing stored in them is lost. This works on stopped nodes too (a
        server that could not write its log has exited).
        """
        # Any file not the user's, not only the top folder: a chown cut short must be finished next time.
        adopt = f'for place; do [ -z "$(find "$place" ! -user {NODE_USER} -print -quit)" ] && continue; echo "$place"; '
        adopt += f'chown -R {NODE_USER}:{NODE_USER} "$place"; done'
        adopted = False
        for service in self.nodes:
            for container in self._containers(service):
                places = [m["Destination"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"]
                command = ["timeout", "-k", "5", "600", "sh", "-c", adopt, "sh", *places]
                result = run_as_root(self.client, container, command, label="chown", network=False)
                if result.exit_code != 0:
                    raise NodeError(f"{service}: cannot give its volumes to {NODE_USER}: {result.output.strip()}")
                if result.output.split():
                    adopted = True
                    self.say(f"{service}: {', '.join(result.output.split())} belonged to root (an older lab): "
                             f"given to {NODE_USER}")  # fmt: skip
        return adopted

    def limit_processes(self, services: Sequence[str] = ()) -> None:
        """Give each started node its process-count limit from the settings.

        Compose v1 cannot read a number for ``pids_limit`` from ``.env`` (it
        passes a string that the Docker library refuses), so the limit is set
        here, through the Docker API, after every start or recreation.
        """
        api = self.client.api
        for service, limit in pids_limits(self.settings.env).items():
            if services and service not in services:
                continue
            node = self.node(service)
            url = f"{api.base_url}/v{api.api_version}/containers/{node.id}/update"
            response = api.post(url, json={"PidsLimit": limit})
            if not response.ok:
                raise NodeError(f"{service}: cannot set its process limit to {limit}: {response.text.strip()}")

    def restart_server(self, pool: str, workers: int, outcomes: str, idle_timeout: float) -> None:
        """Recreate the server with a new pool mode and size, then wait until it accepts."""
        env = {
            "PROGJAR_SERVER_POOL": pool,
            "PROGJAR_SERVER_WORKERS": str(workers),
            "PROGJAR_OUTCOMES": outcomes,
            "PROGJAR_SERVER_TIMEOUT": f"{idle_timeout:g}",
        }
        self.compose.up([self.roles.server], env=env, recreate=True)
        self.wait_server_ready()

    def _start_node(self, name: str) -> None:
        self.compose.up([name])  # starts the stopped container again, unchanged

    def restore_server(self) -> None:
        """The server of docker-compose.yml again (Compose recreates it only if its settings differ)."""
        self.compose.up([self.roles.server])

    def environment(self) -> dict[str, Any]:
        return {"backend": self.backend, **gather_environment(self.client, self.settings, self.compose.base_image)}

    def _server_logs(self) -> str:
        server = self.roles.server
        containers = self._containers(server)
        if not containers:
            return f"{server} does not exist."
        return f"Last lines of its log:\n{Node(self.client, containers[0], server).logs()}"
