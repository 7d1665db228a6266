"""A stand-in: a student's program run in place of a lab node, with the node's address, volumes and limits.

The node's container is stopped and a new container takes its place on the
lab network, from the same image, with the same fixed address, memory and
process limits, as the same unprivileged user with no capabilities and
``no-new-privileges``. Of the node's volumes it gets only those it is given
(a server: its storage; a client: the generated files, read-only): never the
results volume, where the lab's own records of the measurement are. The submission's folder is copied
in (``/submission``, the program's working folder; never a mount, so the
student's files on the host cannot be touched) and its command runs under
``timeout``, so a hung program ends by itself. A crash is the container's
exit, seen at once. ``remove_stand_in`` removes it, and the backend starts
the node again.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors
from docker.types import Mount

from app.contract import NODE_USER
from orchestrator.errors import NodeError
from orchestrator.lab.node import Node
from orchestrator.submission import SKIPPED

STAND_IN = "org.progjar-lab.stand-in"  # label: the project the stand-in belongs to
NODE_LABEL = "org.progjar-lab.node"  # label: the node it stands in for
WORKDIR = "/submission"
UID = 10001  # the node image's user (images/Dockerfile)


def submission_tar(folder: Path) -> bytes:
    """``folder`` as a tar of ``submission/``, owned by the nodes' user (the program may write in its folder)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:

        def owned(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if SKIPPED & set(Path(info.name).parts) or not (info.isreg() or info.isdir()):
                return None  # links could point anywhere on the host, devices and pipes are not code: never copied
            info.uid = info.gid = UID
            info.uname = info.gname = NODE_USER
            info.mode = (info.mode | 0o600) & 0o755
            return info

        archive.add(str(folder), arcname=WORKDIR.strip("/"), filter=owned)
    return data.getvalue()


def start_stand_in(
    node: Node, project: str, command: str, folder: Path, time_limit: float, volumes: Mapping[str, bool]
) -> Node:
    """Stop ``node`` and start ``command`` (a shell command line) from ``folder`` in its place; returns the stand-in.

    ``volumes``: which of the node's volumes it gets, by where they are mounted, each read-only or not.
    """
    attrs = node.container.attrs
    host = attrs.get("HostConfig") or {}
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    if len(networks) != 1:
        raise NodeError(f"{node.name}: expected one lab network, found {', '.join(networks) or 'none'}")
    ((network, endpoint),) = networks.items()
    address = (endpoint.get("IPAMConfig") or {}).get("IPv4Address") or endpoint.get("IPAddress")
    api = node.client.api
    mounts = [
        Mount(target=m["Destination"], source=m["Name"], type="volume", read_only=volumes[m["Destination"]])
        for m in attrs.get("Mounts") or []
        if m.get("Type") == "volume" and m["Destination"] in volumes
    ]
    bounded = ["timeout", "-k", "5", f"{time_limit:g}", "sh", "-c", f"cd {WORKDIR} && exec {command}"]
    remove_stand_ins(node.client, project, node.name)  # the one before, or one a killed run left, has the address
    node.stop()
    try:
        created = api.create_container(
            attrs["Config"]["Image"], bounded, name=f"{project}-{node.name}-submission", user=NODE_USER,
            working_dir=WORKDIR, hostname=node.name,
            labels={STAND_IN: project, NODE_LABEL: node.name},
            environment={"PYTHONUNBUFFERED": "1", "HOME": "/tmp"},
            host_config=api.create_host_config(
                mounts=mounts, mem_limit=host.get("Memory") or None, memswap_limit=host.get("MemorySwap") or None,
                pids_limit=host.get("PidsLimit") or 512, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
                init=True, tmpfs={"/tmp": "size=64m,mode=1777"},
            ),
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(ipv4_address=address, aliases=[node.name])}
            ),
        )  # fmt: skip
        container = node.client.containers.get(created["Id"])
        container.put_archive("/", submission_tar(folder))
        container.start()
    except docker.errors.APIError as exc:
        remove_stand_ins(node.client, project, node.name)
        raise NodeError(f"cannot start the submission in place of {node.name}: {exc.explanation or exc}") from None
    return Node(node.client, container, node.name)


def remove_stand_ins(client: docker.DockerClient, project: str, node: str | None = None) -> int:
    """Remove the stand-ins of ``project`` (of one ``node``, or all), running or not; how many there were."""
    labels = [f"{STAND_IN}={project}", *([f"{NODE_LABEL}={node}"] if node else [])]
    found = client.containers.list(all=True, filters={"label": labels})
    for container in found:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    return len(found)


def describe_exit(node: Node, lines: int = 15) -> str | None:
    """Why a stand-in is no longer running (its exit code and last output), or None while it runs."""
    try:
        node.container.reload()
    except docker.errors.NotFound:
        return "its container is gone"
    state = node.container.attrs.get("State") or {}
    if state.get("Running"):
        return None
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        why = "it was killed for using more than the node's memory limit"
    elif code == 124:
        why = "it was stopped after its time limit"
    else:
        why = f"it exited with code {code}" + (" (killed)" if code == 137 else "")
    return f"{why}; its last output:\n{node.logs(lines).rstrip() or '(nothing)'}"
