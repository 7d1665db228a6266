import pytest

from orchestrator.errors import MatrixError
from orchestrator.experiments.udp.cells import UdpCell, expand_udp
from orchestrator.experiments.udp.experiment import time_limits
from orchestrator.experiments.udp.rows import count_failures, describe_cell, merge_cell, render_udp_table, summarize_udp

DEST = {"alpine-1": "10.0.0.101", "alpine-3": "10.0.0.103"}


def cell(model="thread", payload=1, repeat=1, framing="framed", number=1):
    return UdpCell(number, model, payload, repeat, framing)


def sent(destination, run_seconds=0.6, seconds=0.5, error=""):
    return {"destination": destination, "transfer_id": "9", "run_seconds": str(run_seconds),
            "seconds": str(seconds), "error": error}  # fmt: skip


def received(lost=0, dup=0, reord=0, expected=12371, intact=True, seconds=0.4):
    return {"seconds": str(seconds), "expected_datagrams": str(expected), "datagrams": str(expected - lost + dup),
            "unique_datagrams": str(expected - lost), "lost": str(lost), "duplicates": str(dup),
            "out_of_order": str(reord), "end_markers": "3", "intact": "true" if intact else "false",
            "status": "ok" if intact else "incomplete", "sha256": "ab", "kernel_drops": "0", "error": ""}  # fmt: skip


def rows_of(c, run_seconds=0.6, a1=None, a3=None):
    senders = [sent(DEST["alpine-1"], run_seconds), sent(DEST["alpine-3"], run_seconds)]
    return merge_cell(c, DEST, {"alpine-1": a1 or received(), "alpine-3": a3 or received()}, senders)


def test_merge_cell_one_row_per_receiver_with_both_sides():
    rows = rows_of(cell(), a3=received(lost=10, intact=False))
    assert [r["receiver"] for r in rows] == ["alpine-1", "alpine-3"]
    assert rows[0]["destination"] == "10.0.0.101" and rows[0]["send_seconds"] == "0.5"
    assert rows[0]["receive_seconds"] == "0.4" and rows[0]["run_seconds"] == "0.6"
    assert rows[0]["intact"] == "true" and rows[1]["intact"] == "false" and rows[1]["lost"] == "10"
    assert rows[0]["cell_id"] == "001-thread-1B-r1"
    assert count_failures(rows) == 1


def test_a_receiver_without_a_result_is_a_failure_with_a_reason():
    problems = {"alpine-3": "receiver exited 1: cannot bind"}
    senders = [sent(DEST["alpine-1"]), sent(DEST["alpine-3"])]
    rows = merge_cell(cell(), DEST, {"alpine-1": received(), "alpine-3": None}, senders, problems)
    assert rows[1]["status"] == "no-report" and rows[1]["intact"] == "false"
    assert "cannot bind" in rows[1]["error"] and "wrote no result" in rows[1]["error"]
    assert count_failures(rows) == 1


def test_sender_errors_reach_every_receivers_row():
    rows = merge_cell(cell(), DEST, {"alpine-1": received(), "alpine-3": received()},
                      [sent(DEST["alpine-1"], error="send timed out after 5s"), sent(DEST["alpine-3"])],
                      {"sender": "sender exited 3: x"})  # fmt: skip
    assert "sender: send timed out" in rows[0]["error"] and "sender exited 3" in rows[1]["error"]


def test_broadcast_maps_both_receivers_to_the_one_send():
    bcast = {name: "10.0.0.255" for name in DEST}
    rows = merge_cell(cell("broadcast"), bcast, {"alpine-1": received(), "alpine-3": received()},
                      [sent("10.0.0.255", seconds=0.3)])  # fmt: skip
    assert [r["send_seconds"] for r in rows] == ["0.3", "0.3"] and count_failures(rows) == 0


def test_unverified_is_not_counted_as_intact():
    row = received()
    row["intact"] = ""
    rows = merge_cell(cell(), DEST, {"alpine-1": row, "alpine-3": received()}, [])
    assert rows[0]["intact"] == "false" and count_failures(rows) == 1


def test_summary_over_repeats():
    rows = [*rows_of(cell(repeat=1), 0.5), *rows_of(cell(repeat=2), 0.7, a3=received(lost=100, intact=False))]
    summaries = {s["receiver"]: s for s in summarize_udp(rows)}
    assert summaries["alpine-1"]["runs"] == 2 and summaries["alpine-1"]["intact"] == 2
    assert summaries["alpine-1"]["run_seconds_mean"] == pytest.approx(0.6)
    assert summaries["alpine-1"]["run_seconds_sd"] == pytest.approx(0.1)
    assert summaries["alpine-3"]["lost"] == 100 and summaries["alpine-3"]["failed"] == 1
    assert summaries["alpine-3"]["loss_percent"] == pytest.approx(100 * 100 / (2 * 12371), abs=1e-3)


def test_summary_has_the_mean_cpu_seconds_of_the_sender_and_each_receiver():
    rows = [*rows_of(cell(repeat=1), 0.5), *rows_of(cell(repeat=2), 0.7)]
    for row, (sender, receiver) in zip(rows, [(0.1, 0.02), (0.1, 0.04), (0.3, 0.02), (0.3, 0.04)], strict=True):
        row.update(sender_cpu_seconds=sender, receiver_cpu_seconds=receiver)
    rows[3]["receiver_cpu_seconds"] = None  # a figure that could not be had is not counted as 0
    summaries = {s["receiver"]: s for s in summarize_udp(rows)}
    assert summaries["alpine-1"]["sender_cpu_seconds_mean"] == pytest.approx(0.2)
    assert summaries["alpine-1"]["receiver_cpu_seconds_mean"] == pytest.approx(0.02)
    assert summaries["alpine-3"]["receiver_cpu_seconds_mean"] == pytest.approx(0.04)


def test_table_is_the_courses_conclusion_with_receivers_beside_it():
    rows = []
    for number, (model, payload) in enumerate([("process", 1), ("thread", 1), ("thread", 1024), ("broadcast", 1)]):
        expected = 12371 if payload == 1 else 13
        rows += rows_of(cell(model, payload, number=number + 1), 0.25,
                        a3=received(lost=5, expected=expected, intact=False))  # fmt: skip
    table = render_udp_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + 4
    for header in ["Model", "Payload (B)", "Total time (s)", "Course report (s)", "alpine-1 lost", "alpine-3 intact"]:
        assert header in lines[0]
    assert "0.885" in lines[2] and "0.621" in lines[3]  # the report's figures at one byte per datagram
    assert "0.621" not in lines[4] and "broadcast" in lines[5]
    assert "5 (0.04%)" in lines[2] and "0/1" in lines[2] and "1/1" in lines[2] and "0.2500" in lines[2]


def test_table_marks_raw_framing_and_unknown_counts():
    row = received()
    row.update(duplicates="", out_of_order="")
    rows = merge_cell(cell(framing="raw"), DEST, {"alpine-1": row, "alpine-3": row}, [])
    header, _, line = render_udp_table(rows).splitlines()
    cells = dict(zip([h.strip() for h in header.split("|")], [c.strip() for c in line.split("|")], strict=True))
    assert cells["Model"] == "thread (raw)"
    assert cells["alpine-1 dup/reord"] == "-" and cells["alpine-1 lost"] == "0 (0.00%)"


def test_progress_line():
    line = describe_cell(rows_of(cell(), a3=received(lost=3, intact=False)))
    assert line.startswith("total 0.6000 s")
    assert "alpine-1 12371/12371 lost 0 dup 0 reord 0 0.4000 s intact" in line
    assert "alpine-3 12368/12371 lost 3" in line and "NOT intact (incomplete)" in line


def test_cells_that_cannot_be_framed_are_refused_before_running():
    expand_udp({"models": ["thread"], "payload_sizes": [65_491]})
    expand_udp({"models": ["thread"], "payload_sizes": [65_507], "framing": "raw"})
    with pytest.raises(MatrixError, match="65491"):
        expand_udp({"models": ["thread"], "payload_sizes": [65_492]})


def test_sender_budget_grows_with_pacing():
    assert time_limits(cell())[0] < 60
    slow = UdpCell(1, "thread", 1, 1, "framed", rate=1000)
    assert time_limits(slow)[0] > 2 * 12.371


def test_terminal_table_fits_120_columns_and_keeps_every_column():
    rows = []
    for number, model in enumerate(["process", "thread-pool", "broadcast"], start=1):
        rows += rows_of(cell(model, 1, number=number), 0.25, a3=received(lost=5, intact=False))
    wide = render_udp_table(rows, tablefmt="simple")
    assert max(len(line) for line in wide.splitlines()) > 120  # what the terminal used to get
    text = render_udp_table(rows, tablefmt="simple", width=120)
    assert max(len(line) for line in text.splitlines()) <= 120
    header_lines = [line for part in text.split("\n\n") for line in part.splitlines()[:2]]
    header_words = " ".join(header_lines).split()
    assert header_words.count("alpine-3") == 4 and header_words.count("alpine-1") == 4  # time, lost, dup, intact
    for word in ["Model", "Course", "lost", "intact", "dup/reord"]:
        assert word in header_words
