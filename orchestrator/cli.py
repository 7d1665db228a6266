"""Command line of the orchestrator (``python orchestrate.py``).

    python orchestrate.py                      run the quick matrix (default)
    python orchestrate.py --matrix full        the course's full matrix
    python orchestrate.py --matrix my.yaml     your own matrix file
    python orchestrate.py --experiment udp     only the UDP part of the matrix
    python orchestrate.py --repeat 3 --shuffle every cell 3 times, in random order
    python orchestrate.py --resume RUN_ID      continue an interrupted run
    python orchestrate.py --lang id            tables with the course report's Indonesian headers
    python orchestrate.py bench                throughput against the machine's limits
    python orchestrate.py build                build the node image (and its base if needed)
    python orchestrate.py up                   build and start the lab, then exit
    python orchestrate.py down  (or --down)    stop the lab and remove its volumes
    python orchestrate.py report RUN_ID        rebuild a stored run's report.html from its CSV files
    python orchestrate.py report RUN_ID --pdf  ... and print it to report.pdf (needs Chromium)
    python orchestrate.py report RUN_ID --lang id   ... and the course's laporan-*.csv and laporan.html
    python orchestrate.py compare RUN_A RUN_B  cell-by-cell differences of two stored runs
    python orchestrate.py list                 the stored runs, with matrix, date and status

Exit codes: 0 all transfers succeeded; 3 the run finished but some transfers
failed (see the summary); 2 bad usage or matrix; 1 Docker or the lab failed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker.errors

from orchestrator.bench import render_bench, run_bench
from orchestrator.compare import compare_runs, comparison_blocks, write_comparison
from orchestrator.compose import settings_compose_command
from orchestrator.errors import LabError, MatrixError, UsageError
from orchestrator.manifest import write_manifest
from orchestrator.matrix import Matrix, load_matrix, parse_matrix, plan_cells
from orchestrator.nodes import Lab
from orchestrator.report import ReportError, build_report
from orchestrator.report.build import write_laporan
from orchestrator.report.catalog import list_runs, render_runs
from orchestrator.report.load import find_run, load_run
from orchestrator.report.render import to_text
from orchestrator.results import (
    EXPERIMENTS,
    LANGUAGES,
    RUN_ID,
    RunFolder,
    RunState,
    check_run_id,
    new_run_id,
)
from orchestrator.runner import run_tcp
from orchestrator.settings import load_settings
from orchestrator.summary import TERMINAL_WIDTH, render_table
from orchestrator.udp_runner import run_udp
from orchestrator.udp_summary import count_failures, render_udp_table

ROOT = Path(__file__).resolve().parent.parent
EXIT_FAILED_TRANSFERS = 3


# What can stop a run midway: the lab's own errors, the Docker engine's, and the host's
# (OSError covers a full disk and a lost connection to the engine, which the docker SDK raises as OSError).
RUN_ERRORS = (LabError, docker.errors.DockerException, OSError)


def one_line(exc: BaseException) -> str:
    """An unexpected error as one line: what failed and why, no traceback."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, LabError) else f"{type(exc).__name__}: {text}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate.py",
        description="Run progjar-lab experiments on the three-node Docker lab.",
        epilog="Exit codes: 0 all ok, 3 some transfers failed, 2 bad usage or matrix, 1 lab error, 130 interrupted.",
    )
    parser.add_argument("command", nargs="?", default="run", choices=sorted(COMMANDS), help="default: run")
    parser.add_argument("targets", nargs="*", metavar="RUN_ID", help="run ids, for commands that take them")
    parser.add_argument("--matrix", default="quick", help="quick (default), full, or a YAML file")
    parser.add_argument("--experiment", choices=EXPERIMENTS, default="all", help="which sections of the matrix run")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run every cell N times (mean ± sd)")
    parser.add_argument("--shuffle", action="store_true", help="run the cells in random order (seed is recorded)")
    parser.add_argument("--seed", type=int, help="seed for --shuffle (default: random)")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run without redoing its cells")
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        help="id: also the course report's columns in Indonesian (laporan-*.csv, laporan.html); "
        "for runs (kept by --resume) and report",
    )
    parser.add_argument("--pdf", action="store_true", help="report: also print report.pdf (needs Chromium)")
    parser.add_argument(
        "--keep-downloads", action="store_true", help="keep downloaded files (default: verify, discard)"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results folder (default ./results)")
    parser.add_argument("--run-id", help="name of this run's folder (default: date-time-matrix)")
    parser.add_argument("--down", action="store_true", help="stop the lab and remove its volumes")
    parser.add_argument("--quiet", action="store_true", help="print only the final tables and errors")
    return parser


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    if args.quiet:
        return lambda _msg: None
    return lambda msg: print(msg, end="" if msg.endswith("\r") else "\n", flush=True)


def _plan(args: argparse.Namespace, folder: RunFolder) -> tuple[Matrix, RunState]:
    """The matrix and run state: new from the arguments, or stored in the run folder for --resume."""
    if args.resume:
        state = folder.load_state()
        if args.lang and args.lang != state.lang:
            raise UsageError(f"--lang {args.lang}: run {folder.run_id} was started with --lang {state.lang}")
        if args.keep_downloads and not state.keep_downloads:
            raise UsageError(f"--keep-downloads: run {folder.run_id} was started without it")
        matrix = parse_matrix(folder.matrix_data(), state.matrix)
        return matrix, state
    matrix = load_matrix(args.matrix, ROOT / "matrices")
    seed = (args.seed if args.seed is not None else random.randrange(2**31)) if args.shuffle else None
    state = RunState(
        folder.run_id, args.matrix, args.experiment, args.repeat, seed, "running", time.time(),
        lang=args.lang or "en", keep_downloads=args.keep_downloads,
    )  # fmt: skip
    return matrix, state


def _record(lab: Lab, folder: RunFolder, state: RunState, status: str) -> None:
    """Save the run's status in run.json and its environment in manifest.json."""
    state.status = status
    if status == "finished":
        state.finished = time.time()
    folder.save_state(state)
    write_manifest(lab, folder, state)


def cmd_run(args: argparse.Namespace) -> int:
    """Load the matrix, bring the lab up, run its cells, print the summaries."""
    say = _say(args)
    if args.repeat < 1:
        raise MatrixError("--repeat must be at least 1")
    if args.resume:
        folder = RunFolder(args.results, check_run_id(args.resume, "--resume"))
    else:
        folder = RunFolder(
            args.results, check_run_id(args.run_id) if args.run_id else new_run_id(Path(args.matrix).stem)
        )
    if not args.resume and folder.path.exists():
        raise LabError(f"{folder.path} already exists; choose another --run-id or --resume {folder.run_id}")
    matrix, state = _plan(args, folder)  # the matrix is validated before Docker is touched
    tcp_cells = plan_cells(matrix.tcp, state.repeat, state.shuffle_seed) if state.experiment != "udp" else []
    udp_cells = matrix.udp if state.experiment != "tcp" else []
    if not tcp_cells and not udp_cells:
        raise MatrixError(f"matrix {matrix.name} has no {state.experiment} section to run")
    finished = folder.finished_cells() if args.resume else []
    done_ids = {row["cell_id"] for row in finished}
    todo = [cell for cell in tcp_cells if cell.id not in done_ids]
    lab = Lab(load_settings(ROOT), say)
    started = time.monotonic()
    lab.up()
    if args.resume:
        folder.drop_unfinished()
        say(f"resuming run {folder.run_id}: {len(done_ids)} of {len(tcp_cells)} TCP cells already done")
    else:
        folder.create(matrix, state)
        seed = f", shuffled with seed {state.shuffle_seed}" if state.shuffle_seed is not None else ""
        say(f"run {folder.run_id}: matrix {matrix.name}, {len(tcp_cells)} TCP and {len(udp_cells)} UDP cells{seed}")
    _record(lab, folder, state, "running")
    failed = 0
    report = [f"# Run {folder.run_id}: matrix {matrix.name}\n"]
    try:
        if tcp_cells:
            new = run_tcp(lab, folder, todo, say, finished=len(done_ids), keep_downloads=state.keep_downloads)
            summaries = [*finished, *new]
            report.append(f"## TCP file server\n\n{render_table(summaries, lang=state.lang)}\n")
            print(render_table(summaries, tablefmt="simple", lang=state.lang, width=TERMINAL_WIDTH))
            if state.lang == "id":
                write_laporan(folder.path, summaries)
            failed += sum(int(s["clients_failed"]) + int(s["server_failed"]) for s in summaries)  # type: ignore[call-overload]
        if udp_cells:
            udp_rows = run_udp(lab, folder, udp_cells, say)
            report.append(f"## UDP sender to two receivers\n\n{render_udp_table(udp_rows)}\n")
            print(f"\n{render_udp_table(udp_rows, tablefmt='simple', width=TERMINAL_WIDTH)}")
            failed += count_failures(udp_rows)
        (folder.path / "summary.md").write_text("\n".join(report))
        _record(lab, folder, state, "finished")
    except KeyboardInterrupt:
        _record(lab, folder, state, "interrupted")
        print(f"\nresume with: python orchestrate.py --resume {folder.run_id}", file=sys.stderr)
        raise
    except RUN_ERRORS:
        try:
            _record(lab, folder, state, "failed")
        except RUN_ERRORS as exc:  # e.g. the host's disk is full: the error that stopped the run comes first
            print(f"warning: could not record the run's status: {one_line(exc)}", file=sys.stderr)
        print(f"resume with: python orchestrate.py --resume {folder.run_id}", file=sys.stderr)
        raise
    wall = time.monotonic() - started
    print(f"\n{len(todo) + len(udp_cells)} cells in {wall:.0f} s; results in {folder.path}")
    try:
        print(f"report: {build_report(folder, lang=state.lang)}")
    except ReportError as exc:
        print(f"warning: no report: {exc}", file=sys.stderr)
    if failed:
        where = " and ".join(
            f"{folder.path / name} ({column})"
            for name, column, cells in (("summary.csv", "errors", tcp_cells), ("udp.csv", "status/error", udp_cells))
            if cells
        )
        print(f"{failed} transfer(s) failed: see {where}", file=sys.stderr)
        return EXIT_FAILED_TRANSFERS
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure the machine's limits and the server's goodput against them."""
    say = _say(args)
    folder = RunFolder(args.results, check_run_id(args.run_id) if args.run_id else new_run_id("bench"))
    if folder.path.exists():
        raise LabError(f"{folder.path} already exists; choose another --run-id")
    lab = Lab(load_settings(ROOT), say)
    lab.up()
    state = RunState(folder.run_id, "bench", "tcp", 1, None, "running", time.time())
    folder.create(Matrix("bench", "benchmark", source={"bench": "see orchestrator/bench.py"}), state)
    write_manifest(lab, folder, state)
    figures = run_bench(lab, folder, say)
    _record(lab, folder, state, "finished")
    print(render_bench(figures))
    print(f"\nfigures in {folder.path / 'bench.json'}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    image = Lab(load_settings(ROOT), _say(args)).build()
    print(f"node image built on {image}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings(ROOT)
    Lab(settings, _say(args)).up()
    print(up_hint(settings_compose_command(settings)))
    return 0


def up_hint(compose: tuple[str, ...]) -> str:
    """What to type next, with the Compose command this machine has (``docker compose`` or ``docker-compose``)."""
    return f"lab is up: try `{' '.join(compose)} exec alpine-2 python -m app.stress_client --op upload --size 1MiB`"


def cmd_down(args: argparse.Namespace) -> int:
    Lab(load_settings(ROOT), _say(args)).down()
    print("lab stopped and its volumes removed")
    return 0


def _check_targets(targets: list[str]) -> None:
    """Each stored run is given by id (a safe name) or by the path of a run folder; else bad usage."""
    for target in targets:
        given = Path(target)
        if not RUN_ID.fullmatch(target) and not ((given / "run.json").is_file() or (given / "summary.csv").is_file()):
            check_run_id(target, "RUN_ID")  # neither: say what a run id may be


def cmd_report(args: argparse.Namespace) -> int:
    """Regenerate report.md, report.html and charts of stored runs from their CSV files (no Docker)."""
    if not args.targets:
        raise ReportError("report needs a run id: python orchestrate.py report RUN_ID (list shows the runs)")
    _check_targets(args.targets)
    for run_id in args.targets:
        folder = find_run(args.results, run_id)
        page = build_report(folder, lang=args.lang or "en", pdf=args.pdf)
        print(f"report: {page}")
        stems = ["report", "laporan"] if args.lang == "id" else ["report"]
        made = [f"{stem}.pdf" for stem in stems if args.pdf]
        if args.lang == "id":
            made += ["laporan.html", *sorted(p.name for p in folder.glob("laporan-*.csv"))]
        made = [name for name in made if (folder / name).is_file()]
        if made:
            print(f"  also in {folder}: {', '.join(made)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Cell-by-cell differences of two stored runs: a table, a chart and a CSV file."""
    if len(args.targets) != 2:
        raise ReportError("compare needs two run ids: python orchestrate.py compare RUN_A RUN_B")
    _check_targets(args.targets)
    run_a, run_b = (load_run(find_run(args.results, run_id)) for run_id in args.targets)
    comparison = compare_runs(run_a, run_b)
    path = write_comparison(comparison, run_a.path / f"compare-{run_b.run_id}")
    print(to_text(comparison_blocks(comparison)))
    print(f"comparison in {path} (with compare.csv and compare.png)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """The stored runs with their matrix, date and status."""
    runs = list_runs(args.results)
    print(render_runs(runs) if runs else f"no runs in {args.results}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "bench": cmd_bench,
    "build": cmd_build,
    "up": cmd_up,
    "down": cmd_down,
    "report": cmd_report,
    "compare": cmd_compare,
    "list": cmd_list,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.down:
        args.command = "down"
    try:
        return COMMANDS[args.command](args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (docker.errors.DockerException, OSError) as exc:  # the engine or the host failed under us
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
