"""One lab node: a container reached through the Docker SDK of the engine it runs on.

Every backend uses this class: a node carries its own engine client, so the
nodes of one lab may live on different engines.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests
from docker.models.containers import Container

from orchestrator.errors import DockerUnavailable, NodeError
from orchestrator.lab.archive import ArchiveError, extract_stream

ROOT_HELPER = "org.progjar-lab.root-helper"  # label of run_as_root's containers: the project they serve


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

    @property
    def client(self) -> docker.DockerClient:
        """The client of the engine this node runs on."""
        return self._client

    @property
    def id(self) -> str:
        """The container's id on its engine."""
        return str(self.container.id)

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
