"""The clients a TCP cell runs: the lab's stress client, or a student's own standing in for alpine-2.

A student's client writes no rows the lab can read, so with ``--client`` the
lab's server is the truth: its outcome log says which requests arrived,
when, and (for an upload) the SHA-256 of what it stored, which is compared
with the file the client was given. Each client becomes one row from the
server's record of its request; a client whose request never reached the
server is a failed row. What the client printed is kept beside the rows
(``cells/<cell>/client-output.txt``) and shown in the report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from app import contract
from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.experiments.tcp.rows import CLIENT_OUTPUT
from orchestrator.lab import Lab
from orchestrator.lab.stand_in import describe_exit
from orchestrator.submission import Submission, fill


def client_rows_from_server(
    cell: TcpCell, server_rows: Sequence[Mapping[str, str]], expected: str | None, why_missing: str
) -> list[dict[str, object]]:
    """One client row per request the server recorded (at most the cell's clients), failed rows for the rest."""
    command = "UPLOAD" if cell.op == "upload" else "GET"
    requests = [row for row in server_rows if (row.get("command") or "").upper().endswith(command)]
    labels = {
        "cell": cell.number, "op": cell.op, "volume_bytes": cell.volume, "clients": cell.clients,
        "client_pool": "own", "server_workers": cell.server_workers, "server_pool": cell.server_pool,
        "protocol": cell.protocol,
    }  # fmt: skip
    rows: list[dict[str, object]] = []
    for index, request in enumerate(sorted(requests, key=lambda r: r.get("start") or "")[: cell.clients], start=1):
        ok = request.get("status") == "ok" and request.get("bytes") == str(cell.volume)
        if ok and cell.op == "upload" and request.get("sha256") != expected:
            ok, error = False, f"stored bytes have sha256 {request.get('sha256')}, not the file's"
        else:
            error = "" if ok else f"server: {request.get('error') or 'not the whole file'}"
        seconds = float(request.get("seconds") or 0)
        rows.append({
            **labels, "client": index, "start": request.get("start"), "end": request.get("end"),
            "seconds": request.get("seconds"), "bytes": cell.volume if ok else request.get("bytes"),
            "wire_bytes": request.get("wire_bytes"), "status": "ok" if ok else "error", "error": error,
            "local_port": request.get("peer_port"), "sha256": request.get("sha256"),
            "throughput_bps": f"{cell.volume / seconds:.1f}" if ok and seconds > 0 else "",
        })  # fmt: skip
    now = f"{time.time():.6f}"
    for index in range(len(rows) + 1, cell.clients + 1):
        rows.append({**labels, "client": index, "start": now, "end": now, "seconds": "0", "status": "error",
                     "error": why_missing})  # fmt: skip
    return rows


OUTPUT_LINES = 500  # lines of a client's output kept per cell


class SubmissionClient:
    """A student's stress client, run once per cell in place of alpine-2 against the lab's server."""

    def __init__(self, submission: Submission) -> None:
        assert submission.client is not None
        self.submission = submission
        self.name = submission.name

    def command(self, lab: Lab, cell: TcpCell) -> str:
        name = contract.generated_name(cell.volume)
        return fill(
            self.submission.client or "", host=lab.address(contract.SERVER_NODE),
            port=contract.PROTOCOL_PORTS[cell.protocol], op=cell.op, file=f"{contract.FILES_DIR}/{name}", name=name,
            clients=cell.clients, size=cell.volume,
        )  # fmt: skip

    def prepare(self, lab: Lab, cell: TcpCell) -> str:
        """The lab's generated file of the cell's volume, made in alpine-2 (the client's ``{file}``): its SHA-256."""
        output = lab.node(contract.CLIENT_NODE).check(
            contract.genfile_command(size=cell.volume, dir=contract.FILES_DIR)
        )
        return output.split()[0]  # genfile prints "<sha256>  <path>"

    def run(self, lab: Lab, cell: TcpCell, local: Path, time_limit: float) -> tuple[str, str | None]:
        """Run the client for one cell; returns (what it printed, why it failed as a whole, or None)."""
        # The generated files read-only: a client cannot change what it is measured against.
        volumes = {contract.FILES_DIR: True}
        node = lab.stand_in(contract.CLIENT_NODE, self.command(lab, cell), self.submission.folder, time_limit, volumes)
        try:
            status = node.container.wait(timeout=time_limit + 30)
            code = status.get("StatusCode")
        except Exception as exc:  # the engine's wait timed out: the time limit did not stop it
            code = None
            why: str | None = f"the client did not end within {time_limit:g}s ({type(exc).__name__})"
        else:
            why = None if code == 0 else (describe_exit(node) or f"exited with code {code}").splitlines()[0]
        # Its last lines only: a client that prints in a loop must not fill the host's memory or disk.
        output = node.container.logs(stdout=True, stderr=True, tail=OUTPUT_LINES).decode("utf-8", "replace")
        lab.end_stand_in(contract.CLIENT_NODE)
        local.mkdir(parents=True, exist_ok=True)
        (local / CLIENT_OUTPUT).write_text(output, encoding="utf-8")
        return output, why
