"""Students' own servers and clients in the real lab: check, --server, --client (issue: bring your own server)."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.rows import read_raw
from tests.integration.conftest import ROOT, orchestrate

EXAMPLES = ROOT / "examples"
HERE = Path(__file__).parent
CORRECT, CLASSIC, LAB = EXAMPLES / "stream-thread-pool", EXAMPLES / "json-classic", EXAMPLES / "lab-server"
# What each defect of examples/json-classic breaks (see its README):
#   one recv(32) per command: every upload longer than 32 bytes, and a header sent byte by byte;
#   names lower-cased: a mixed-case name, and (with the base64 lower-cased too) every upload's bytes;
#   no timeouts: idle connections take every worker;
#   truncating writes in place: an upload cut off leaves a partial file.
# None of them leaks a process or a descriptor, so that case passes.
CLASSIC_PASSES = {"start.listens", "start.answers", "resources.no-leaks"}


def cases(folder: Path) -> dict[str, dict]:
    tests = json.loads((folder / "results.json").read_text())["tests"]
    return {test["name"].split("] ", 1)[1]: test for test in tests}


def test_check_scores_the_examples_and_writes_the_class_table(lab, tmp_path):
    done = orchestrate("check", str(CORRECT), str(CLASSIC), str(LAB), "--results", str(tmp_path), "--run-id", "class",
                       timeout=2400)  # fmt: skip
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]  # json-classic fails cases
    assert "Traceback" not in done.stderr
    out = tmp_path / "class"
    correct = cases(out / "stream-thread-pool")
    failed = {name: test["output"] for name, test in correct.items() if test["score"] < test["max_score"]}
    assert not failed, failed  # the correct example passes every case, resources included
    assert {"roundtrip.100MiB", "resources.memory-flat", "resources.no-leaks", "concurrency.same-name"} <= set(correct)
    classic = cases(out / "json-classic")
    passed = {name for name, test in classic.items() if test["score"] == test["max_score"]}
    assert passed == CLASSIC_PASSES, sorted(passed)
    for name in ("roundtrip.mixed-case-name", "robust.idle-connections", "robust.client-leaves"):
        assert classic[name]["score"] == 0, name
    report = (out / "json-classic" / "check.md").read_text()
    assert (
        "## [thread] roundtrip.mixed-case-name: failed" in report and "Reproduce: `python -m app.conformance" in report
    )
    lab_server = json.loads((out / "lab-server" / "results.json").read_text())  # the lab's own server, both pools
    assert lab_server["score"] == lab_server["max_score"] > 0, [t for t in lab_server["tests"] if t["score"] == 0]
    assert len(lab_server["tests"]) == 2 * len(correct)
    table = read_raw(out / "class.csv")
    assert [row["submission"] for row in table] == ["stream-thread-pool", "json-classic", "lab-server"]
    assert table[0]["score"] == table[0]["max_score"] and float(table[0]["throughput_mibps"]) > 0
    assert (out / "class.html").is_file()
    lab.wait_server_ready(wait=30)  # the lab's own server is back


def test_a_server_that_crashes_gets_a_clear_result_not_a_hung_lab(lab, tmp_path):
    done = orchestrate("check", str(HERE / "submissions" / "crashes"), "--results", str(tmp_path), "--run-id", "c",
                       timeout=600)  # fmt: skip
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    listens = cases(tmp_path / "c" / "crashes")["start.listens"]
    assert listens["score"] == 0 and "exited with code 3" in listens["output"]
    assert "cannot start: no such module" in listens["output"]
    lab.wait_server_ready(wait=30)


def test_a_bad_descriptor_is_refused_before_the_lab_is_touched(tmp_path):
    (tmp_path / "progjar.yaml").write_text("name: x\nserver:\n  command: python3 s.py {prot}\n  protocol: stream\n")
    done = orchestrate("check", str(tmp_path), "--results", str(tmp_path / "out"))
    assert done.returncode == 2 and "unknown placeholder {prot}" in done.stderr and "Traceback" not in done.stderr
    done = orchestrate("--server", str(tmp_path / "missing"), "--results", str(tmp_path / "out"))
    assert done.returncode == 2 and "no such folder" in done.stderr


def test_server_runs_the_matrix_measured_from_outside(lab, tmp_path):
    done = orchestrate("--server", str(CORRECT), "--matrix", str(HERE / "submission.yaml"), "--results",
                       str(tmp_path), "--run-id", "mine", timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "stream-thread-pool: runs only its pool modes (thread)" in done.stdout
    run = tmp_path / "mine"
    summary = read_raw(run / "summary.csv")
    assert len(summary) == 8 and {row["server_pool"] for row in summary} == {"thread"}
    for row in summary:
        clients = int(row["client_workers"])
        assert (int(row["clients_ok"]), int(row["clients_failed"])) == (clients, 0), row
        if row["operation"] == "upload":  # every client's stored file hashed in alpine-1: intact
            assert (int(row["server_ok"]), int(row["server_failed"])) == (clients, 0), row
        else:  # a submission's side of a download cannot be measured: left empty, not zero
            assert row["server_ok"] == row["server_failed"] == "", row
        assert row["server_peak_rss_mib"], row  # its processes' peak RSS, read from /proc
    report = (run / "report.md").read_text()
    assert "Server under test: the submission stream-thread-pool" in report and "Not measured for this server" in report
    lab.wait_server_ready(wait=30)


def test_client_runs_a_students_own_client_against_the_labs_server(lab, tmp_path):
    matrix = tmp_path / "m.yaml"
    matrix.write_text("tcp:\n  operations: [upload, download]\n  volumes: [2MiB]\n  clients: [3]\n"
                      "  server_workers: [2]\n  server_pools: [thread]\n  timeout: 60\n")  # fmt: skip
    done = orchestrate("--client", str(CORRECT), "--matrix", str(matrix), "--results", str(tmp_path), "--run-id",
                       "theirs", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "theirs"
    for row in read_raw(run / "summary.csv"):
        assert (row["clients_ok"], row["server_ok"]) == ("3", "3"), row
    outputs = sorted(run.glob("cells/*/client-output.txt"))
    assert len(outputs) == 2 and all("3/3 ok" in path.read_text() for path in outputs)
    assert "What the client stream-thread-pool printed" in (run / "report.md").read_text()
    assert lab.node("alpine-2").check(["true"]) == ""  # alpine-2 itself is back
