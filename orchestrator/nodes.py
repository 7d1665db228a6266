"""The Docker backend: the lab's nodes as Python objects.

Containers are found by the labels Compose puts on them
(``com.docker.compose.project`` and ``com.docker.compose.service``), never
by guessed container names, so the lab works whatever Compose version
named them. Everything the runner needs from Docker goes through ``Lab``.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.networks import Network

from orchestrator.archive import ArchiveError, extract_stream
from orchestrator.compose import Compose, settings_compose_command
from orchestrator.errors import DockerUnavailable, NodeError
from orchestrator.images import build_node_image, resolve_base_image
from orchestrator.settings import CLIENT_NODE, NODE_USER, NODES, SERVER_NODE, SERVER_PORT, Settings, pids_limits

Say = Callable[[str], None]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None: the container stopped before the command ended
    output: str
    timed_out: bool = False  # stopped by its time limit (only when the caller allowed it)


class Node:
    """One running lab container."""

    def __init__(self, client: docker.DockerClient, container: Container, name: str) -> None:
        self._client = client
        self.container = container
        self.name = name

    def exec(
        self,
        command: Sequence[str],
        time_limit: float = 600,
        on_line: Callable[[str], None] | None = None,
        limit_ok: bool = False,
        root: bool = False,
    ) -> ExecResult:
        """Run ``command`` in the node and wait for it; ``on_line`` sees output as it comes.

        The command runs under coreutils ``timeout``, so it stops by itself
        after ``time_limit`` seconds even if the orchestrator is gone. Being
        stopped so is a NodeError, or with ``limit_ok`` a result with ``timed_out``.
        It runs as the node's unprivileged user, or with ``root`` as root (see ``_as_root``).
        """
        bounded = ["timeout", "-k", "5", f"{time_limit:g}", *command]
        started = time.monotonic()
        result = self._as_root(command, bounded, time_limit) if root else self._as_user(command, bounded, on_line)
        # timeout(1) exits 124 when its TERM worked, 128 + 9 when it had to KILL too.
        timed_out = result.exit_code == 124 or (result.exit_code == 137 and time.monotonic() - started >= time_limit)
        if timed_out and not limit_ok:
            raise NodeError(f"{self.name}: `{' '.join(command)}` was stopped after {time_limit:g}s")
        return ExecResult(result.exit_code, result.output, timed_out)

    def _as_user(self, command: Sequence[str], bounded: list[str], on_line: Callable[[str], None] | None) -> ExecResult:
        api = self._client.api
        try:
            exec_id = api.exec_create(self.container.id, bounded, workdir="/opt/progjar")["Id"]
            chunks: list[str] = []
            partial = ""
            for chunk in api.exec_start(exec_id, stream=True):
                text = chunk.decode("utf-8", "replace")
                chunks.append(text)
                if on_line:
                    partial += text
                    *lines, partial = partial.split("\n")
                    for line in lines:
                        on_line(line)
            if on_line and partial:
                on_line(partial)
            exit_code = api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.APIError as exc:
            raise NodeError(f"{self.name}: cannot run {' '.join(command)}: {exc.explanation or exc}") from None
        return ExecResult(exit_code, "".join(chunks))

    def _as_root(self, command: Sequence[str], bounded: list[str], time_limit: float) -> ExecResult:
        return run_as_root(self._client, self.container, bounded, label=" ".join(command), time_limit=time_limit)

    def check(self, command: Sequence[str], time_limit: float = 600, root: bool = False) -> str:
        """Run ``command`` (as root with ``root``); raise NodeError unless it exits 0. Returns its output."""
        result = self.exec(command, time_limit, root=root)
        if result.exit_code != 0:
            tail = "\n".join(result.output.strip().splitlines()[-10:])
            raise NodeError(f"{self.name}: `{' '.join(command)}` exited {result.exit_code}:\n{tail}")
        return result.output

    def fetch(self, path: str, dest: Path) -> None:
        """Copy the folder ``path`` out of the node into ``dest`` (created), as a stream."""
        try:
            stream, _ = self.container.get_archive(path)
            extract_stream(stream, dest)
        except docker.errors.NotFound:
            raise NodeError(f"{self.name}: {path} does not exist") from None
        except docker.errors.APIError as exc:
            raise NodeError(f"{self.name}: cannot copy {path}: {exc.explanation or exc}") from None
        except (ArchiveError, tarfile.TarError) as exc:
            raise NodeError(f"{self.name}: refused to unpack {path}: {exc}") from None
        except OSError as exc:  # the host's disk is full, or the engine went away mid-copy
            raise NodeError(f"{self.name}: cannot copy {path} to {dest}: {exc.strerror or exc}") from None

    def stop(self, timeout: float = 15) -> None:
        """Stop the container (a stopped one stays stopped); NodeError if Docker refuses or it is gone."""
        try:
            self.container.stop(timeout=timeout)
        except docker.errors.NotFound:
            raise NodeError(f"{self.name} was removed while the cell ran (start the lab again to go on)") from None
        except docker.errors.APIError as exc:
            raise NodeError(f"{self.name}: cannot stop it: {exc.explanation or exc}") from None

    def logs(self, lines: int = 20) -> str:
        return self.container.logs(tail=lines).decode("utf-8", "replace")


ROOT_HELPER = "org.progjar-lab.root-helper"  # label of run_as_root's containers: the project they serve


def run_as_root(
    client: docker.DockerClient,
    container: Container,
    command: list[str],
    label: str,
    network: bool = True,
    time_limit: float = 600,
) -> ExecResult:
    """Run ``command`` as root in a short-lived container of the node's image that shares the node's
    volumes (and, with ``network``, its network), with only the rights to change the network and the
    volumes' owner. The helper is removed whatever happens (even on Ctrl-C).

    Not ``docker exec -u root``: in a no-new-privileges container whose user is
    not root, Docker before 24.0.6 gives a root exec no capabilities at all.
    """
    shared = {"network_mode": f"container:{container.id}"} if network else {"network_disabled": True}
    project = container.labels.get("com.docker.compose.project", "")
    try:
        helper = client.containers.run(
            container.image.id, command, user="root", volumes_from=[container.id], cap_drop=["ALL"],
            cap_add=["NET_ADMIN", "CHOWN"], security_opt=["no-new-privileges:true"], read_only=True,
            detach=True, labels={ROOT_HELPER: project}, **shared,
        )  # fmt: skip
    except docker.errors.APIError as exc:
        raise NodeError(f"cannot run {label} as root: {exc.explanation or exc}") from None
    try:
        status = helper.wait(timeout=time_limit + 30)["StatusCode"]
        output = helper.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise NodeError(f"{label} as root did not finish: {exc}") from None
    finally:
        try:
            helper.remove(force=True)
        except docker.errors.APIError:
            pass  # already gone
    return ExecResult(status, output)


def docker_client() -> docker.DockerClient:
    """A client of the local engine, or DockerUnavailable with a clear reason."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker engine ({exc}).\n"
            "Is Docker installed and running, and may this user use it (docker info)?"
        ) from None


class Lab:
    """The running three-node lab of one Compose project."""

    def __init__(self, settings: Settings, say: Say = print) -> None:
        self.settings = settings
        self.say = say
        pids_limits(settings.env)  # a bad limit or Compose choice is refused before anything starts
        settings_compose_command(settings)
        self.client = docker_client()
        self.compose = Compose(settings, after_up=self.limit_processes)

    # --- finding nodes -------------------------------------------------
    def _containers(self, service: str | None = None) -> list[Container]:
        labels = [f"com.docker.compose.project={self.settings.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client.containers.list(all=True, filters={"label": labels})

    def node(self, service: str) -> Node:
        """The running container of ``service``, or NodeError."""
        found = [c for c in self._containers(service) if c.status == "running"]
        if not found:
            raise NodeError(f"node {service} is not running (start the lab: python orchestrate.py up)")
        return Node(self.client, found[0], service)

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
        self.say("starting alpine-1, alpine-2, alpine-3")
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
        helpers = self.client.containers.list(all=True, filters={"label": f"{ROOT_HELPER}={self.settings.project}"})
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
        for service in NODES:
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
            url = f"{api.base_url}/v{api.api_version}/containers/{node.container.id}/update"
            response = api.post(url, json={"PidsLimit": limit})
            if not response.ok:
                raise NodeError(f"{service}: cannot set its process limit to {limit}: {response.text.strip()}")

    def restart_server(self, pool: str, workers: int, outcomes: str, idle_timeout: float) -> None:
        """Recreate alpine-1 with a new pool mode and size, then wait until it accepts."""
        env = {
            "PROGJAR_SERVER_POOL": pool,
            "PROGJAR_SERVER_WORKERS": str(workers),
            "PROGJAR_OUTCOMES": outcomes,
            "PROGJAR_SERVER_TIMEOUT": f"{idle_timeout:g}",
        }
        self.compose.up([SERVER_NODE], env=env, recreate=True)
        self.wait_server_ready()

    def wait_server_ready(self, wait: float = 60) -> None:
        """Readiness check: poll the server's port from a client node."""
        probe = ["python", "-m", "app.probe", "--host", self.settings.server_ip, "--port", str(SERVER_PORT)]
        result = self.node(CLIENT_NODE).exec([*probe, "--wait", f"{wait:g}"], time_limit=wait + 10)
        if result.exit_code != 0:
            logs = self._server_logs()
            raise NodeError(f"the file server on {SERVER_NODE} did not become ready in {wait:g}s.\n{logs}")

    def _server_logs(self) -> str:
        containers = self._containers(SERVER_NODE)
        if not containers:
            return f"{SERVER_NODE} does not exist."
        return f"Last lines of its log:\n{Node(self.client, containers[0], SERVER_NODE).logs()}"


@contextmanager
def running_lab(settings: Settings, say: Say = print, keep: bool = False) -> Iterator[Lab]:
    """Bring the lab up for the ``with`` block; tear it down after unless ``keep``."""
    lab = Lab(settings, say)
    try:
        lab.up()
        yield lab
    finally:
        if not keep:
            lab.down()
