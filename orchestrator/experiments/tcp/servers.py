"""The server a TCP cell measures: the lab's own, or a student's submission standing in for alpine-1.

The lab's server keeps an outcome log, so the server side of a cell is its
own record of every request. A submission keeps none the lab can read, so
its side is measured from outside: after an upload cell each client's stored
file is hashed inside the server's container (intact or not, per client:
the clients upload under their own names), its processes' peak RSS is read
from /proc, and what cannot be measured (the server's view of a download)
is left empty and named in the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from app import contract
from orchestrator.errors import NodeError
from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.lab import Lab, Node
from orchestrator.lab.stand_in import describe_exit
from orchestrator.submission import Submission

STORAGE = "/srv/files"  # the server's storage folder in alpine-1 (a volume)
# Reads every process of the container it runs in: (pids, the highest peak RSS in KiB, open descriptors).
PROCESSES = r"""
import json, os
pids, peak, fds = [], 0, 0
me = os.getpid()
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == me:
        continue
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        fds += len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        continue  # it ended meanwhile
    pids.append(int(pid))
    peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]))
print(json.dumps({"pids": sorted(pids), "peak_rss_kib": peak, "fds": fds}))
"""


class ServerDown(NodeError):
    """A submission's server did not start, or is gone: its cell fails, the run goes on."""


def processes(node: Node) -> dict[str, Any]:
    """The processes of a node's container: ``pids``, ``peak_rss_kib`` (their highest VmHWM) and ``fds``."""
    # -I: isolated, so nothing the submission wrote (a usercustomize, PYTHON* variables) runs in the measurement.
    output = node.check(["python", "-I", "-c", PROCESSES], time_limit=60)
    return json.loads(output.strip().splitlines()[-1])


class ReferenceServer:
    """The lab's own file server (docker-compose.yml's alpine-1), restarted per cell with the cell's pool."""

    name = "lab"
    storage = STORAGE
    keeps_log = True

    def port(self, cell: TcpCell) -> int:
        return contract.PROTOCOL_PORTS[cell.protocol]

    def stress_options(self) -> dict[str, object]:
        return {}

    def start(self, lab: Lab, cell: TcpCell, outcomes: str) -> Node:
        lab.restart_server(cell.server_pool, cell.server_workers, outcomes, cell.server_idle_timeout)
        return lab.node(contract.SERVER_NODE)

    def finish(self, lab: Lab, node: Node, cell: TcpCell) -> tuple[list[dict[str, object]], int | None]:
        """Stop the server (its last outcome rows are written as it stops); the caller reads its log."""
        node.stop()
        return [], None  # its rows, with each request's peak RSS, are in its outcome log

    def restore(self, lab: Lab) -> None:
        lab.restore_server()


class SubmissionServer:
    """A student's server standing in for alpine-1, started per cell with the cell's pool and workers."""

    keeps_log = False

    def __init__(self, submission: Submission) -> None:
        assert submission.server is not None
        self.submission = submission
        self.spec = submission.server
        self.name = submission.name

    @property
    def storage(self) -> str:
        """Where the submission stores files in its container: the lab's folder, or the one it declares."""
        return STORAGE if self.spec.storage is None else f"/submission/{self.spec.storage}"

    def port(self, cell: TcpCell) -> int:
        return self.spec.port

    def stress_options(self) -> dict[str, object]:
        # The course's protocol exactly (no digest word), and a stored file per client to hash afterwards.
        return {"plain": True, "distinct_names": True}

    def start(self, lab: Lab, cell: TcpCell, outcomes: str) -> Node:
        """The submission's server for one cell, listening; ServerDown (the cell fails) if it is not."""
        if cell.server_pool not in self.spec.commands:
            raise NodeError(f"{self.name} has no {cell.server_pool} pool (its descriptor names {self.spec.pools})")
        workers = self.spec.workers or cell.server_workers
        command = self.submission.server_command(cell.server_pool, workers, STORAGE)
        # Time limit: the cell's transfers, the stress client's backstop and room to start and stop.
        node = lab.stand_in(contract.SERVER_NODE, command, self.submission.folder, cell.timeout + 300, {STORAGE: False})
        try:
            lab.wait_listening(contract.SERVER_NODE, self.spec.port, wait=30)
            node.check(["mkdir", "-p", self.storage])  # a fixed storage folder may be made only by an upload
        except NodeError as exc:
            raise ServerDown(str(exc)) from None
        return node

    def finish(self, lab: Lab, node: Node, cell: TcpCell) -> tuple[list[dict[str, object]], int | None]:
        """The server side measured from outside, then the server stopped: each client's stored file hashed,
        and the peak RSS (KiB) of its processes (None if the server is gone)."""
        try:
            peak: int | None = processes(node)["peak_rss_kib"]
        except NodeError:
            peak = None
        rows: list[dict[str, object]] = []
        if cell.op == "upload":
            file = contract.generated_name(cell.volume)
            names = [contract.distinct_name(file, client) for client in range(1, cell.clients + 1)]
            # What every client sent, hashed in the lab's own client node: the submission cannot touch it.
            reference = file_digests(lab.node(contract.CLIENT_NODE), [f"{contract.FILES_DIR}/{file}"])
            try:
                digests = file_digests(node, [f"{self.storage}/{name}" for name in names])
                node.check(["rm", "-f", *(f"{self.storage}/{name}" for name in names)])  # or the disk fills up
                down = ""
            except NodeError:
                digests, down = {}, f"the server is down: {describe_exit(node) or 'its container does not answer'}"
            for name in names:
                found = digests.get(f"{self.storage}/{name}")
                intact = found is not None and found in reference.values()
                stored = "no stored file" if found is None else f"stored file has sha256 {found}"
                why = "" if intact else down or stored
                rows.append({
                    "worker": "measured outside", "command": "UPLOAD", "filename": name,
                    "bytes": cell.volume if intact else "", "status": "ok" if intact else "error",
                    "error": why, "sha256": found or "", "peak_rss_kib": peak or "",
                })  # fmt: skip
        node.stop()
        return rows, peak

    def restore(self, lab: Lab) -> None:
        lab.end_stand_in(contract.SERVER_NODE)  # the lab's own server again


def file_digests(node: Node, paths: Sequence[str]) -> dict[str, str]:
    """SHA-256 of each regular file of ``paths``, computed inside the node's container; absent ones left out."""
    script = (
        "import hashlib, json, os, sys\n"
        "found = {}\n"
        "for path in sys.argv[1:]:\n"
        "    if os.path.isfile(path) and not os.path.islink(path):\n"
        "        digest = hashlib.sha256()\n"
        "        with open(path, 'rb') as f:\n"
        "            while chunk := f.read(1 << 20):\n"
        "                digest.update(chunk)\n"
        "        found[path] = digest.hexdigest()\n"
        "print(json.dumps(found))\n"
    )
    output = node.check(["python", "-I", "-c", script, *paths], time_limit=600)
    return json.loads(output.strip().splitlines()[-1])


Server = ReferenceServer | SubmissionServer
