"""The results of a check, and every way they are written out (pure: results in, text out).

Protocol cases come from ``app/conformance.py``, run in alpine-2 against
the submission's server (one JSON line per case). The resource cases are
measured by the host inside the server's container (``RESOURCE_CASES``).
Each case has a stable id, a category and points; a submission's score is
the sum over the pool modes it declares.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

CATEGORIES = ("start", "roundtrip", "framing", "bad", "robust", "concurrency", "resources")
# The host's own cases: (id, points, what passes).
RESOURCE_CASES = {
    "resources.memory-flat": (2, "peak RSS grows by less than 32 MiB from a 10 MiB to a 100 MiB round trip"),
    "resources.no-leaks": (1, "after the suite, no more processes and at most 4 more descriptors than before it"),
}
MEMORY_SLACK_KIB = 32 * 1024
FD_SLACK = 4


class ProbeOutputError(ValueError):
    """The probe's output is not what app/conformance.py writes."""


@dataclass(frozen=True)
class CaseResult:
    id: str
    category: str
    points: int
    passed: bool
    skipped: bool = False
    detail: str = ""
    transcript: str = ""
    reproduce: str = ""

    @property
    def score(self) -> int:
        return self.points if self.passed and not self.skipped else 0

    @property
    def verdict(self) -> str:
        return "skipped" if self.skipped else "pass" if self.passed else "FAIL"


@dataclass
class PoolResult:
    """A submission's server in one pool mode: its cases."""

    pool: str
    workers: int
    cases: list[CaseResult] = field(default_factory=list)


@dataclass
class SubmissionResult:
    name: str
    folder: str
    protocol: str
    pools: list[PoolResult] = field(default_factory=list)
    throughput: float | None = None  # MiB/s per client at the reference cell, if it ran
    reference_cell: str = ""
    problem: str = ""  # why the reference cell has no figure, if it has none

    @property
    def cases(self) -> list[tuple[str, CaseResult]]:
        return [(pool.pool, case) for pool in self.pools for case in pool.cases]

    @property
    def score(self) -> int:
        return sum(case.score for _, case in self.cases)

    @property
    def max_score(self) -> int:
        return sum(case.points for _, case in self.cases)

    @property
    def failed(self) -> list[tuple[str, CaseResult]]:
        return [(pool, case) for pool, case in self.cases if not case.passed and not case.skipped]

    def by_category(self) -> dict[str, tuple[int, int]]:
        """(score, max score) per category, over the pool modes."""
        totals = {category: (0, 0) for category in CATEGORIES}
        for _, case in self.cases:
            score, most = totals.get(case.category, (0, 0))
            totals[case.category] = (score + case.score, most + case.points)
        return totals


def parse_probe(output: str) -> list[CaseResult]:
    """The cases of the probe's ``--json`` output (one object per line; other lines are ignored)."""
    cases = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
            cases.append(CaseResult(
                str(data["id"]), str(data["category"]), int(data["points"]), bool(data["passed"]),
                bool(data.get("skipped")), str(data.get("detail", "")), str(data.get("transcript", "")),
                str(data.get("reproduce", "")),
            ))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise ProbeOutputError(f"not a case line ({exc}): {line[:200]}") from None
    return cases


def resource_case(case_id: str, passed: bool | None, detail: str) -> CaseResult:
    """A host-measured case; ``passed`` None means it could not be measured (skipped, with why)."""
    points, _ = RESOURCE_CASES[case_id]
    return CaseResult(case_id, "resources", points, bool(passed), passed is None, detail)


def memory_flat(peak_10: int, peak_100: int) -> tuple[bool, str]:
    grown = peak_100 - peak_10
    text = f"peak RSS {peak_10 / 1024:.1f} MiB after 10 MiB, {peak_100 / 1024:.1f} MiB after 100 MiB"
    return grown < MEMORY_SLACK_KIB, f"{text} (+{grown / 1024:.1f} MiB; less than {MEMORY_SLACK_KIB // 1024} passes)"


def no_leaks(before: dict[str, Any], after: dict[str, Any]) -> tuple[bool, str]:
    processes, fds = len(after["pids"]) - len(before["pids"]), after["fds"] - before["fds"]
    text = f"{len(before['pids'])} -> {len(after['pids'])} processes, {before['fds']} -> {after['fds']} descriptors"
    return processes <= 0 and fds <= FD_SLACK, text


# --- written out ------------------------------------------------------------------------------


def gradescope(result: SubmissionResult) -> dict[str, Any]:
    """Gradescope's autograder results.json: score, max_score, and one test per case and pool mode."""
    tests = []
    for pool, case in result.cases:
        output = case.detail
        if not case.passed and not case.skipped:
            output += f"\n\n{case.transcript}\n\nReproduce: {case.reproduce}".rstrip()
        tests.append({
            "name": f"[{pool}] {case.id}", "score": case.score, "max_score": case.points,
            "output": output.strip(), "tags": [case.category],
        })  # fmt: skip
    return {"score": result.score, "max_score": result.max_score, "tests": tests}


def case_rows(result: SubmissionResult) -> list[list[object]]:
    return [[pool, case.id, case.category, f"{case.score}/{case.points}", case.verdict, case.detail]
            for pool, case in result.cases]  # fmt: skip


def terminal_table(result: SubmissionResult) -> str:
    header = f"{result.name}: {result.score}/{result.max_score} points ({result.protocol} protocol)"
    rows = [
        [pool, case.id, f"{case.score}/{case.points}", case.verdict, case.detail[:70]] for pool, case in result.cases
    ]
    table = tabulate(rows, headers=["Pool", "Case", "Points", "Result", "Detail"], tablefmt="simple")
    return f"{header}\n\n{table}"


def check_markdown(result: SubmissionResult) -> str:
    """check.md: the score, every case, and for each failure its transcript and how to reproduce it."""
    lines = [
        f"# Check of {result.name}",
        "",
        f"Score **{result.score}/{result.max_score}** ({result.protocol} protocol; pool modes: "
        f"{', '.join(f'{p.pool} ({p.workers} workers)' for p in result.pools)}). Folder: `{result.folder}`.",
        "",
    ]
    if result.throughput is not None:
        lines += [
            f"Throughput at the reference cell ({result.reference_cell}): {result.throughput:.2f} MiB/s per client.",
            "",
        ]
    elif result.problem:
        lines += [f"No throughput at the reference cell: {result.problem}", ""]
    lines += ["| Category | Points |", "|---|---|"]
    lines += [f"| {c} | {s}/{m} |" for c, (s, m) in result.by_category().items() if m]
    lines += ["", tabulate(case_rows(result), headers=["Pool", "Case", "Category", "Points", "Result", "Detail"],
                          tablefmt="github"), ""]  # fmt: skip
    for pool, case in result.failed:
        lines += [f"## [{pool}] {case.id}: failed", "", case.detail, ""]
        if case.transcript:
            lines += ["```", case.transcript.rstrip(), "```", ""]
        if case.reproduce:
            lines += [f"Reproduce: `{case.reproduce}`", ""]
    return "\n".join(lines)


CLASS_FIELDS = ["submission", "protocol", "score", "max_score", *CATEGORIES, "throughput_mibps", "reference_cell"]


def class_rows(results: Sequence[SubmissionResult]) -> list[dict[str, object]]:
    rows = []
    for r in results:
        categories = {c: f"{s}/{m}" if m else "-" for c, (s, m) in r.by_category().items()}
        throughput = "" if r.throughput is None else round(r.throughput, 2)
        rows.append({"submission": r.name, "protocol": r.protocol, "score": r.score, "max_score": r.max_score,
                     **categories, "throughput_mibps": throughput, "reference_cell": r.reference_cell})  # fmt: skip
    return rows


def class_csv(results: Sequence[SubmissionResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CLASS_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(class_rows(results))
    return buffer.getvalue()


def class_html(results: Sequence[SubmissionResult], title: str) -> str:
    """One self-contained page: a row per submission, its score per category and its throughput."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in CLASS_FIELDS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row[n]))}</td>" for n in CLASS_FIELDS) + "</tr>"
        for row in class_rows(results)
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style><h1>{html.escape(title)}</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></html>\n"
    )
