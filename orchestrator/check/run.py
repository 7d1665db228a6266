"""One submission's check on the lab: its server in each pool mode it declares, probed from alpine-2.

For each pool mode the submission's server stands in for alpine-1 (a fresh
copy of its folder, its own storage folder); then, in order:

1. memory: a 10 MiB and a 100 MiB round trip, the server's peak RSS read
   inside its container after each (``resources.memory-flat``);
2. the conformance suite (``app/conformance.py``) from alpine-2, every case
   with its own deadline;
3. leaks: the server's processes and open descriptors after the suite,
   against what it had before it (``resources.no-leaks``).

Then one reference cell of the TCP experiment measures its throughput with
the lab's own stress client. A server that does not start, crashes or hangs
fails its cases with what happened (its exit code and last output); nothing
waits on it beyond its deadlines, and the lab's own server is back at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app import contract
from orchestrator.check.cases import (
    RESOURCE_CASES,
    CaseResult,
    PoolResult,
    SubmissionResult,
    memory_flat,
    no_leaks,
    parse_probe,
    resource_case,
)
from orchestrator.errors import LabError, NodeError
from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.experiments.tcp.experiment import run_tcp_cell
from orchestrator.experiments.tcp.rows import SUMMARY
from orchestrator.experiments.tcp.servers import STORAGE, SubmissionServer, processes
from orchestrator.lab import Lab, Node
from orchestrator.lab.stand_in import describe_exit
from orchestrator.store import RunFolder
from orchestrator.submission import Submission

Say = Callable[[str], None]
WORKERS = 5  # the pool size a check runs a server with, when it takes {workers}
SUITE_LIMIT = 900.0  # seconds the whole suite may take against one server
SERVER_LIMIT = SUITE_LIMIT + 600  # the server's own time limit in its container
CHECK_STORAGE = f"{STORAGE}/check"  # a check's {storage}: its own folder, emptied for each pool mode
LEAK_WAIT = 15.0  # seconds a server may take to close what the suite's clients left


def reference_cell(pool: str, protocol: str) -> TcpCell:
    """The one cell every submission is measured at, for the class table."""
    return TcpCell(1, "upload", 10 * 2**20, 5, WORKERS, pool, timeout=120, server_idle_timeout=60, protocol=protocol)


def probe(lab: Lab, submission: Submission, workers: int, only: list[str] | None = None) -> list[CaseResult]:
    """Run the conformance probe in the client node; its cases (a probe that could not run: a LabError)."""
    spec = submission.server
    assert spec is not None
    command = contract.conformance_command(
        host=lab.address(contract.SERVER_NODE), port=spec.port, protocol=spec.protocol, workers=workers, only=only,
        timeout=SUITE_LIMIT, json_output=True,
    )  # fmt: skip
    result = lab.node(contract.CLIENT_NODE).exec(command, time_limit=SUITE_LIMIT + 60, limit_ok=True)
    cases = parse_probe(result.output)
    if not cases:
        tail = result.output.strip().splitlines()[-3:]
        raise NodeError(f"the conformance probe gave no result (exit {result.exit_code}): {' '.join(tail)[:300]}")
    return cases


def check_pool(lab: Lab, submission: Submission, pool: str, say: Say) -> PoolResult:
    """The check of one pool mode: the server started fresh, memory, the suite, leaks."""
    spec = submission.server
    assert spec is not None
    workers = spec.workers or WORKERS
    result = PoolResult(pool, workers)
    # An empty storage folder of its own, made before the server starts, by the lab's own alpine-1.
    lab.end_stand_in(contract.SERVER_NODE)
    lab.node(contract.SERVER_NODE).check(["sh", "-c", f"rm -rf {CHECK_STORAGE} && mkdir -p {CHECK_STORAGE}"])
    command = submission.server_command(pool, workers, CHECK_STORAGE)
    node = lab.stand_in(contract.SERVER_NODE, command, submission.folder, SERVER_LIMIT, {STORAGE: False})
    try:
        lab.wait_listening(contract.SERVER_NODE, spec.port, wait=30)
    except NodeError as exc:
        return down_from_the_start(lab, submission, result, str(exc), say)
    say(f"  {pool}: memory at 10 and 100 MiB")
    memory = probe(lab, submission, workers, only=["roundtrip.10MiB"])
    peak_10 = peak_100 = peak(node)
    if all(case.passed for case in memory):  # no 100 MiB upload where 10 MiB already fails
        memory += probe(lab, submission, workers, only=["roundtrip.100MiB"])
        peak_100 = peak(node)
    before = measure(node)
    say(f"  {pool}: conformance suite ({workers} workers)")
    cases = probe(lab, submission, workers)
    down = describe_exit(node)  # None while its container runs
    result.cases = [_explained(c, f"the server is down: {down}") if down and not c.passed else c for c in cases]
    if down or peak_10 is None or peak_100 is None:
        result.cases.append(resource_case("resources.memory-flat", False, f"not measured: the server is down: {down}"))
    elif all(case.passed for case in memory):
        result.cases.append(resource_case("resources.memory-flat", *memory_flat(peak_10, peak_100)))
    else:
        result.cases.append(resource_case("resources.memory-flat", False, "a 10 or 100 MiB round trip failed"))
    if down or before is None:
        result.cases.append(resource_case("resources.no-leaks", False, f"not measured: the server is down: {down}"))
    else:
        result.cases.append(resource_case("resources.no-leaks", *leaks(node, before)))
    return result


def down_from_the_start(lab: Lab, submission: Submission, result: PoolResult, why: str, say: Say) -> PoolResult:
    """A server that never listened: ``start.listens`` fails with what happened, and every other case is skipped."""
    say(f"  {result.pool}: the server did not start: {why}")
    cases = probe(lab, submission, result.workers, only=["start.listens"])  # lists every case, skipped
    result.cases = [_explained(c, why) if c.id == "start.listens" else c for c in cases]
    result.cases += [resource_case(case, None, "skipped: the server did not start") for case in RESOURCE_CASES]
    return result


def measure(node: Node) -> dict | None:
    """The server's processes and descriptors, or None if its container no longer answers."""
    try:
        return processes(node)
    except NodeError:
        return None


def peak(node: Node) -> int | None:
    found = measure(node)
    return None if found is None else found["peak_rss_kib"]


def leaks(node: Node, before: dict) -> tuple[bool, str]:
    """Whether the server holds more processes or descriptors than before the suite, once it has had time to close."""
    deadline = time.monotonic() + LEAK_WAIT
    while True:  # bounded: until it is back to where it was, or LEAK_WAIT has passed
        after = measure(node)
        if after is None:
            gone = describe_exit(node) or "its container does not answer"
            return False, f"cannot read the server's processes: {gone}"
        passed, text = no_leaks(before, after)
        if passed or time.monotonic() > deadline:
            return passed, text
        time.sleep(1)


def _explained(case: CaseResult, why: str) -> CaseResult:
    return replace(case, detail=f"{case.detail} ({why})" if case.detail else why)


def check_submission(lab: Lab, submission: Submission, out: Path, say: Say) -> SubmissionResult:
    """Check every pool mode the submission declares, then its throughput at the reference cell."""
    spec = submission.server
    assert spec is not None
    result = SubmissionResult(submission.name, str(submission.folder), spec.protocol)
    server = SubmissionServer(submission)
    try:
        for pool in spec.pools:
            say(f"{submission.name}: {pool} pool")
            try:
                result.pools.append(check_pool(lab, submission, pool, say))
            except NodeError as exc:  # e.g. the probe itself could not run: this pool is failed, the rest go on
                failed = PoolResult(pool, spec.workers or WORKERS)
                result.pools.append(
                    down_from_the_start(lab, submission, failed, f"the check could not go on: {exc}", say)
                )
        cell = reference_cell(spec.pools[0], spec.protocol)
        result.reference_cell = f"upload 10 MiB, 5 clients, {cell.server_pool} pool of {spec.workers or WORKERS}"
        passed = {c.id for c in result.pools[0].cases if c.passed}
        if "start.listens" not in passed:
            result.problem = "the server did not start"
            return result
        if "roundtrip.10MiB" not in passed:  # the reference cell is 10 MiB uploads: they would only time out
            result.problem = "its 10 MiB round trip fails the check"
            return result
        say(f"{submission.name}: reference cell ({result.reference_cell})")
        folder = RunFolder(out, "reference-cell")
        folder.path.mkdir(parents=True, exist_ok=True)
        try:
            rows = run_tcp_cell(lab, folder, cell, server=server)
        except LabError as exc:
            result.problem = str(exc)
            return result
        summary = rows[SUMMARY][0]
        SUMMARY.write(folder.path, [summary])
        result.throughput = summary["throughput_per_client_mibps"]  # type: ignore[assignment]
        if result.throughput is None:
            result.problem = f"no upload succeeded: {summary['errors']}"
        return result
    finally:
        server.restore(lab)
