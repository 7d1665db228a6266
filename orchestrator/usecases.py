"""What `orchestrate.py` does, one function per command, apart from parsing its command line.

``run`` plans a run (or reloads it for ``--resume``), brings the lab up, runs
each experiment's cells through the one cell loop, writes the summary and
the report, and says whether every transfer succeeded. The other commands
are thin: build, up and down the lab; the benchmark; report, compare and
list stored runs (without Docker).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import LabError, MatrixError, UsageError
from orchestrator.experiments.base import Experiment, Summary
from orchestrator.experiments.loop import run_cells
from orchestrator.experiments.registry import EXPERIMENTS, in_matrix, load_matrix, parse_matrix
from orchestrator.lab import Lab, open_lab
from orchestrator.manifest import write_manifest
from orchestrator.matrix import Matrix, plan
from orchestrator.settings import load_settings
from orchestrator.store import RunFolder, RunState, check_run_id, new_run_id
from orchestrator.submission import DESCRIPTOR, load_submission

ROOT = Path(__file__).resolve().parent.parent
Say = Callable[[str], None]


@dataclass
class RunRequest:
    """A run as asked for on the command line."""

    results: Path
    matrix: str = "quick"
    experiment: str = "all"
    repeat: int = 1
    shuffle: bool = False
    seed: int | None = None
    resume: str | None = None
    run_id: str | None = None
    lang: str | None = None
    keep_downloads: bool = False
    backend: str = "compose"
    server: Path | None = None  # --server DIR: a submission measured instead of the lab's server
    client: Path | None = None  # --client DIR: a submission's own stress client instead of the lab's


@dataclass
class RunOutcome:
    folder: RunFolder
    cells: int  # cells run now
    seconds: float
    summaries: dict[str, Summary] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.summaries.values())


def run_folder(request: RunRequest) -> RunFolder:
    """The run's folder: the one to resume, or a new one that must not exist yet."""
    if request.resume:
        return RunFolder(request.results, check_run_id(request.resume, "--resume"))
    name = check_run_id(request.run_id) if request.run_id else new_run_id(Path(request.matrix).stem)
    folder = RunFolder(request.results, name)
    if folder.path.exists():
        raise LabError(f"{folder.path} already exists; choose another --run-id or --resume {folder.run_id}")
    return folder


def plan_run(request: RunRequest, folder: RunFolder) -> tuple[Matrix, RunState]:
    """The matrix and run state: new from the request, or stored in the run folder for --resume."""
    if request.repeat < 1:
        raise MatrixError("--repeat must be at least 1")
    if request.resume:
        state = folder.load_state()
        if request.lang and request.lang != state.lang:
            raise UsageError(f"--lang {request.lang}: run {folder.run_id} was started with --lang {state.lang}")
        if request.keep_downloads and not state.keep_downloads:
            raise UsageError(f"--keep-downloads: run {folder.run_id} was started without it")
        if state.experiment != "all" and state.experiment not in in_matrix():
            raise LabError(f"{folder.path / 'run.json'} is damaged: experiment {state.experiment!r}")
        return parse_matrix(folder.matrix_data(), state.matrix), state
    matrix = load_matrix(request.matrix, ROOT / "matrices")
    seed = (request.seed if request.seed is not None else random.randrange(2**31)) if request.shuffle else None
    server = client = None
    experiment = request.experiment
    if request.server:
        server = submission_facts(request.server, "server")
        experiment = "tcp"  # a submission is a TCP file server: the UDP cells are the lab's own
    if request.client:
        if request.server:  # the lab's server's records are what a client is measured by
            raise UsageError(
                "--server and --client cannot be used together: each is measured by the lab's own other half"
            )
        client = submission_facts(request.client, "client")
        experiment = "tcp"
    state = RunState(
        folder.run_id, request.matrix, experiment, request.repeat, seed, "running", time.time(),
        lang=request.lang or "en", keep_downloads=request.keep_downloads, server=server, client=client,
    )  # fmt: skip
    return matrix, state


def submission_facts(folder: Path, part: str) -> dict[str, Any]:
    """What run.json keeps of a submission given to --server or --client (its descriptor validated now)."""
    submission = load_submission(folder)  # a bad descriptor is refused before Docker is touched
    if (part == "server" and submission.server is None) or (part == "client" and submission.client is None):
        raise UsageError(f"--{part} {folder}: its {DESCRIPTOR} has no {part}")
    facts: dict[str, Any] = {"name": submission.name, "folder": str(submission.folder)}
    if part == "server" and submission.server is not None:
        spec = submission.server
        facts.update(protocol=spec.protocol, pools=list(spec.pools), workers=spec.workers)
    return facts


def planned_cells(
    matrix: Matrix, state: RunState, experiments: dict[str, Experiment[Any]], say: Say
) -> dict[str, list[Any]]:
    """Each chosen experiment's cells in the order they run (repeats in rounds, shuffled with the seed)."""
    planned = {}
    for name, experiment in experiments.items():
        section = matrix.sections.get(name)
        if section and (cells := experiment.adapt(list(section), say)):
            planned[name] = plan(cells, state.repeat * section.rounds, state.shuffle_seed)
    if not planned:
        raise MatrixError(f"matrix {matrix.name} has no {state.experiment} section to run")
    return planned


def record(lab: Lab, folder: RunFolder, state: RunState, status: str) -> None:
    """Save the run's status in run.json and its environment in manifest.json."""
    state.status = status
    if status == "finished":
        state.finished = time.time()
    folder.save_state(state)
    write_manifest(lab, folder, state)


def summarize(folder: RunFolder, experiments: Sequence[Experiment[Any]], lang: str, heading: str) -> dict[str, Summary]:
    """Each experiment's tables from its stored rows, into summary.md."""
    summaries = {e.name: e.summarize(folder, lang) for e in experiments}
    text = [heading, *(f"## {e.title}\n\n{summaries[e.name].markdown}\n" for e in experiments)]
    (folder.path / "summary.md").write_text("\n".join(text))
    return summaries


def run(request: RunRequest, folder: RunFolder, say: Say) -> RunOutcome:
    """Plan, bring the lab up, run every chosen experiment's cells, summarize. Errors propagate as they are."""
    matrix, state = plan_run(request, folder)  # the matrix is validated before Docker is touched
    chosen = in_matrix() if state.experiment == "all" else {state.experiment: in_matrix()[state.experiment]}
    instances = {name: kind(state) for name, kind in chosen.items()}
    planned = planned_cells(matrix, state, instances, say)
    experiments = [instances[name] for name in planned]
    lab = open_lab(load_settings(ROOT), say, request.backend)
    started = time.monotonic()
    lab.up()
    if request.resume:
        say(f"resuming run {folder.run_id}")
    else:
        folder.create(matrix, state)
        counts = " and ".join(f"{len(cells)} {name.upper()}" for name, cells in planned.items())
        seed = f", shuffled with seed {state.shuffle_seed}" if state.shuffle_seed is not None else ""
        say(f"run {folder.run_id}: matrix {matrix.name}, {counts} cells{seed}")
    record(lab, folder, state, "running")
    ran = 0
    try:
        for experiment in experiments:
            ran += run_cells(experiment, lab, folder, planned[experiment.name], say, resume=bool(request.resume))
        summaries = summarize(folder, experiments, state.lang, f"# Run {folder.run_id}: matrix {matrix.name}\n")
        record(lab, folder, state, "finished")
    except KeyboardInterrupt:
        record(lab, folder, state, "interrupted")
        raise
    except Exception:
        try:
            record(lab, folder, state, "failed")
        except Exception as exc:  # e.g. the host's disk is full: the error that stopped the run comes first
            say(f"warning: could not record the run's status: {exc}")
        raise
    return RunOutcome(folder, ran, time.monotonic() - started, summaries)


def bench(results: Path, run_id: str | None, say: Say, backend: str = "compose") -> tuple[RunFolder, Summary]:
    """Measure the machine's limits and the server's goodput against them."""
    folder = RunFolder(results, check_run_id(run_id) if run_id else new_run_id("bench"))
    if folder.path.exists():
        raise LabError(f"{folder.path} already exists; choose another --run-id")
    experiment = EXPERIMENTS["bench"]()
    lab = open_lab(load_settings(ROOT), say, backend)
    lab.up()
    state = RunState(folder.run_id, "bench", "bench", 1, None, "running", time.time())
    folder.create(Matrix("bench", "benchmark", source={"bench": "see orchestrator/experiments/bench.py"}), state)
    record(lab, folder, state, "running")
    run_cells(experiment, lab, folder, experiment.parse(None, "bench"), say)
    summary = experiment.summarize(folder)
    record(lab, folder, state, "finished")
    return folder, summary


def lab_of(say: Say, backend: str = "compose") -> Lab:
    return open_lab(load_settings(ROOT), say, backend)


@dataclass
class CheckOutcome:
    folder: Path
    results: list[Any]  # check.cases.SubmissionResult, one per submission

    @property
    def failed(self) -> int:
        return sum(len(result.failed) for result in self.results)


def check(
    folders: Sequence[Path], results: Path, run_id: str | None, say: Say, backend: str = "compose"
) -> CheckOutcome:
    """The conformance suite against each submission's server, in the lab; check.md and results.json each,
    and with several submissions a class table (class.csv, class.html)."""
    from orchestrator.check import cases
    from orchestrator.check.run import check_submission

    if not folders:
        raise UsageError("check needs a submission folder: python orchestrate.py check DIR [DIR ...]")
    submissions = [load_submission(folder) for folder in folders]  # every descriptor checked before Docker
    for submission in submissions:
        if submission.server is None:
            raise UsageError(f"{submission.folder}: its {DESCRIPTOR} has no server to check")
    out = results / (check_run_id(run_id) if run_id else new_run_id("check"))
    if out.exists():
        raise LabError(f"{out} already exists; choose another --run-id")
    lab = open_lab(load_settings(ROOT), say, backend)
    lab.up()
    out.mkdir(parents=True)
    checked = []
    names: set[str] = set()
    for submission in submissions:
        name = submission.name
        while name in names:  # two submissions may give themselves one name
            name += "_"
        names.add(name)
        result = check_submission(lab, submission, out / name, say)
        result.name = name  # the folder its files are in, when two submissions share a name
        (out / name).mkdir(parents=True, exist_ok=True)
        (out / name / "check.md").write_text(cases.check_markdown(result), encoding="utf-8")
        (out / name / "results.json").write_text(json.dumps(cases.gradescope(result), indent=2) + "\n")
        checked.append(result)
    if len(checked) > 1:
        (out / "class.csv").write_text(cases.class_csv(checked), encoding="utf-8")
        (out / "class.html").write_text(cases.class_html(checked, f"progjar-lab check {out.name}"), encoding="utf-8")
    return CheckOutcome(out, checked)
