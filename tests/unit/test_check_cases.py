"""A check's results written out: scores, Gradescope's results.json, check.md and the class table (pure)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from orchestrator.check.cases import (
    CaseResult,
    PoolResult,
    ProbeOutputError,
    SubmissionResult,
    check_markdown,
    class_csv,
    class_html,
    gradescope,
    memory_flat,
    no_leaks,
    parse_probe,
    resource_case,
)

LINE = {"id": "roundtrip.1MiB", "category": "roundtrip", "points": 1, "passed": True, "skipped": False,
        "detail": "1048576 bytes back, sha256 equal", "transcript": "", "reproduce": ""}  # fmt: skip


def result() -> SubmissionResult:
    failed = CaseResult(
        "roundtrip.mixed-case-name",
        "roundtrip",
        1,
        False,
        detail="not found",
        transcript="> GET MixedCase.bin\r\n\r\n\n< ERROR File not found",
        reproduce="python -m x",
    )
    pool = PoolResult("thread", 5, [CaseResult(**LINE), failed, resource_case("resources.memory-flat", True, "ok"),
                                    CaseResult("start.listens", "start", 2, True)])  # fmt: skip
    return SubmissionResult("json-classic", "/x", "json", [pool], throughput=12.5, reference_cell="upload 10 MiB")


def test_the_probe_output_is_read_line_by_line():
    output = "starting\n" + json.dumps(LINE) + "\n" + json.dumps({**LINE, "id": "x", "passed": False}) + "\n"
    cases = parse_probe(output)
    assert [(c.id, c.passed) for c in cases] == [("roundtrip.1MiB", True), ("x", False)]
    with pytest.raises(ProbeOutputError):
        parse_probe('{"id": "only an id"}')


def test_scores_and_gradescope_format():
    r = result()
    assert (r.score, r.max_score) == (5, 6)
    assert r.by_category()["roundtrip"] == (1, 2)
    data = gradescope(r)
    assert (data["score"], data["max_score"]) == (5, 6)
    names = [t["name"] for t in data["tests"]]
    assert "[thread] roundtrip.mixed-case-name" in names
    failed = next(t for t in data["tests"] if t["name"].endswith("mixed-case-name"))
    assert failed["score"] == 0 and failed["max_score"] == 1
    assert "ERROR File not found" in failed["output"] and "Reproduce: python -m x" in failed["output"]


def test_check_markdown_has_every_failure_with_its_transcript():
    text = check_markdown(result())
    assert "Score **5/6**" in text and "12.50 MiB/s per client" in text
    assert "## [thread] roundtrip.mixed-case-name: failed" in text and "< ERROR File not found" in text


def test_class_table_rows_per_submission():
    rows = list(csv.DictReader(io.StringIO(class_csv([result(), result()]))))
    assert len(rows) == 2 and rows[0]["score"] == "5" and rows[0]["roundtrip"] == "1/2"
    assert rows[0]["throughput_mibps"] == "12.5" and rows[0]["framing"] == "-"
    assert class_html([result()], "t").count("<tr>") == 2


def test_memory_and_leak_verdicts():
    assert memory_flat(20_000, 30_000)[0] and not memory_flat(20_000, 20_000 + 120 * 1024)[0]
    before = {"pids": [1, 7], "fds": 10}
    assert no_leaks(before, {"pids": [1, 7], "fds": 12})[0]
    assert not no_leaks(before, {"pids": [1, 7, 9], "fds": 10})[0]
    assert not no_leaks(before, {"pids": [1, 7], "fds": 40})[0]
    assert resource_case("resources.no-leaks", None, "not measured").skipped
