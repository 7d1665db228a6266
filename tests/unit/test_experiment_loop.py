"""The one cell loop, driven through a toy experiment that is one new module plus its registration.

Plan (repeats in rounds, shuffled by a recorded seed), run, interrupt,
resume without redoing finished cells, and summarize: what every experiment
gets from the loop without writing any of it.
"""

from __future__ import annotations

import pytest

from orchestrator.experiments import registry
from orchestrator.experiments.loop import remaining, run_cells
from orchestrator.experiments.registry import parse_matrix
from orchestrator.matrix import plan
from orchestrator.rows import read_raw
from orchestrator.store import RunFolder, RunState
from tests.unit.toy_experiment import TOY, ToyExperiment


@pytest.fixture
def registered(monkeypatch):
    """Register the toy: the one line a new experiment adds (registry.EXPERIMENTS)."""
    monkeypatch.setitem(registry.EXPERIMENTS, ToyExperiment.name, ToyExperiment)


def test_a_registered_experiment_brings_its_matrix_section(registered):
    matrix = parse_matrix({"toy": {"sizes": [16, 4096]}}, "m")
    assert [cell.id for cell in matrix.cells("toy")] == ["001-toy-16B-r1", "002-toy-4096B-r1"]
    with pytest.raises(Exception, match=r"m: toy: unknown key\(s\) colour"):
        parse_matrix({"toy": {"sizes": [1], "colour": "red"}}, "m")


def test_an_unregistered_section_is_refused():
    with pytest.raises(Exception, match="unknown section"):
        parse_matrix({"toy": {"sizes": [16]}}, "m")


def test_plan_run_interrupt_resume_and_summarize(registered, tmp_path):
    matrix = parse_matrix({"toy": {"sizes": [16, 4096, 65536]}}, "m")
    planned = plan(matrix.cells("toy"), repeat=2, shuffle_seed=5)
    assert planned == plan(matrix.cells("toy"), repeat=2, shuffle_seed=5)  # the seed is the order
    assert sorted(c.id for c in planned) == sorted(f"{n:03d}-toy-{s}B-r{r}" for n, s in
                                                   ((1, 16), (2, 4096), (3, 65536)) for r in (1, 2))  # fmt: skip
    folder = RunFolder(tmp_path, "toy-run")
    folder.create(matrix, RunState("toy-run", "m", "toy", 2, 5, "running", 0.0))
    said: list[str] = []

    first = ToyExperiment()
    first.interrupt_at = planned[3].id
    with pytest.raises(KeyboardInterrupt):
        run_cells(first, None, folder, planned, said.append)
    assert first.ran == [c.id for c in planned[:3]]
    assert (first.stopped, first.cleaned) == (1, 1)  # its programs stopped, then cleaned up
    assert [row["cell_id"] for row in read_raw(folder.path / TOY.file)] == first.ran
    assert any(line.startswith("[  3/6] ") and "sha256" in line for line in said)

    # a killed run may leave a cell's rows half-written: nothing of them survives the resume
    with (folder.path / TOY.file).open("a") as f:
        f.write(f"{planned[3].id},")
    second = ToyExperiment()
    assert [c.id for c in remaining(second, folder, planned, resume=True)] == [c.id for c in planned[3:]]
    assert run_cells(second, None, folder, planned, said.append, resume=True) == 3
    assert second.ran == [c.id for c in planned[3:]]  # finished cells were not run again
    assert "3 of 6 TOY cells already done" in said
    rows = TOY.read(folder.path)
    assert [row["cell_id"] for row in rows] == [c.id for c in planned]

    summary = second.summarize(folder)
    digests = {16: "374708fff771", 4096: "ad7facb2586f", 65536: "de2f256064a0"}  # SHA-256 of that many zeros
    assert summary.markdown.splitlines() == [f"{size} B: 2 runs, {digest}" for size, digest in digests.items()]
    assert run_cells(ToyExperiment(), None, folder, planned, said.append, resume=True) == 0  # nothing left


def test_a_run_plans_every_registered_experiment_of_its_matrix(tmp_path):
    """What `orchestrate.py` plans: each experiment's section, repeats in rounds (a UDP section's own too)."""
    from orchestrator.experiments.registry import in_matrix
    from orchestrator.usecases import planned_cells

    matrix = parse_matrix(
        {"tcp": {"operations": "upload", "volumes": "1MiB", "clients": [1, 5], "server_workers": 1,
                 "server_pools": "thread"},
         "udp": {"models": ["thread"], "payload_sizes": [1], "repeats": 2}},
        "m",
    )  # fmt: skip
    state = RunState("r", "m", "all", 3, 9, "running", 0.0)
    planned = planned_cells(matrix, state, {name: kind(state) for name, kind in in_matrix().items()}, print)
    assert [len(planned["tcp"]), len(planned["udp"])] == [2 * 3, 1 * 2 * 3]
    assert sorted(c.id for c in planned["udp"]) == [f"001-thread-1B-r{r}" for r in range(1, 7)]
