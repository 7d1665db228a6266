"""Command line of the orchestrator (``python orchestrate.py``).

    python orchestrate.py                      run the quick matrix (default)
    python orchestrate.py --matrix full        the course's full matrix
    python orchestrate.py --matrix my.yaml     your own matrix file
    python orchestrate.py --experiment udp     only the UDP part of the matrix
    python orchestrate.py --repeat 3 --shuffle every cell 3 times, in random order
    python orchestrate.py --resume RUN_ID      continue an interrupted run
    python orchestrate.py --lang id            tables with the course report's Indonesian headers
    python orchestrate.py --server DIR         the TCP cells with a student's own server (DIR has progjar.yaml)
    python orchestrate.py --client DIR         the TCP cells with a student's own stress client in alpine-2
    python orchestrate.py check DIR [DIR ...]  conformance suite against students' servers (check.md, results.json)
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
failed (see the summary), or a check case failed; 2 bad usage, matrix or
descriptor; 1 Docker or the lab failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import docker.errors

from orchestrator import usecases
from orchestrator.errors import LabError
from orchestrator.experiments.registry import in_matrix
from orchestrator.lab.compose_cli import settings_compose_command
from orchestrator.report import ReportError, build_report
from orchestrator.report.catalog import list_runs, render_runs
from orchestrator.report.compare import compare_runs, comparison_blocks, write_comparison
from orchestrator.report.load import find_run, load_run
from orchestrator.report.render import to_text
from orchestrator.settings import load_settings
from orchestrator.store import LANGUAGES, RUN_ID, check_run_id

ROOT = usecases.ROOT
EXIT_FAILED_TRANSFERS = 3


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
    parser.add_argument(
        "targets", nargs="*", metavar="RUN_ID|DIR", help="run ids (report, compare), or submission folders (check)"
    )
    parser.add_argument("--matrix", default="quick", help="quick (default), full, or a YAML file")
    parser.add_argument(
        "--experiment", choices=("all", *in_matrix()), default="all", help="which sections of the matrix run"
    )
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
    parser.add_argument(
        "--server", type=Path, metavar="DIR", help="measure a submission's server (DIR with progjar.yaml) in alpine-1"
    )
    parser.add_argument(
        "--client", type=Path, metavar="DIR", help="run a submission's own stress client (DIR) in alpine-2"
    )
    parser.add_argument("--down", action="store_true", help="stop the lab and remove its volumes")
    parser.add_argument("--quiet", action="store_true", help="print only the final tables and errors")
    return parser


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    if args.quiet:
        return lambda _msg: None
    return lambda msg: print(msg, end="" if msg.endswith("\r") else "\n", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the matrix's cells and print the summaries; exit 3 if any transfer failed."""
    request = usecases.RunRequest(
        results=args.results, matrix=args.matrix, experiment=args.experiment, repeat=args.repeat,
        shuffle=args.shuffle, seed=args.seed, resume=args.resume, run_id=args.run_id, lang=args.lang,
        keep_downloads=args.keep_downloads, server=args.server, client=args.client,
    )  # fmt: skip
    folder = usecases.run_folder(request)
    try:
        outcome = usecases.run(request, folder, _say(args))
    except (KeyboardInterrupt, LabError, docker.errors.DockerException, OSError):
        if (folder.path / "run.json").is_file():  # the run has begun: its finished cells are kept
            print(f"\nresume with: python orchestrate.py --resume {folder.run_id}", file=sys.stderr)
        raise
    for summary in outcome.summaries.values():
        print(f"\n{summary.terminal}")
    print(f"\n{outcome.cells} cells in {outcome.seconds:.0f} s; results in {folder.path}")
    try:
        print(f"report: {build_report(folder, lang=folder.load_state().lang)}")
    except ReportError as exc:
        print(f"warning: no report: {exc}", file=sys.stderr)
    if outcome.failures:
        where = " and ".join(s.where for s in outcome.summaries.values() if s.where)
        print(f"{outcome.failures} transfer(s) failed: see {where}", file=sys.stderr)
        return EXIT_FAILED_TRANSFERS
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The conformance suite against each submission's server; exit 3 if any case failed."""
    outcome = usecases.check([Path(t) for t in args.targets], args.results, args.run_id, _say(args))
    from orchestrator.check.cases import terminal_table

    for result in outcome.results:
        print(f"\n{terminal_table(result)}")
        print(f"  {outcome.folder / result.name / 'check.md'}, results.json (Gradescope) beside it")
    if len(outcome.results) > 1:
        print(f"\nclass table: {outcome.folder / 'class.csv'} and class.html")
    if outcome.failed:
        print(f"{outcome.failed} case(s) failed: see check.md for each transcript", file=sys.stderr)
        return EXIT_FAILED_TRANSFERS
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure the machine's limits and the server's goodput against them."""
    folder, summary = usecases.bench(args.results, args.run_id, _say(args))
    print(summary.terminal)
    print(f"\nfigures in {folder.path / 'bench.json'}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    print(f"node image built on {usecases.lab_of(_say(args)).build()}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    usecases.lab_of(_say(args)).up()
    print(up_hint(settings_compose_command(load_settings(ROOT))))
    return 0


def up_hint(compose: tuple[str, ...]) -> str:
    """What to type next, with the Compose command this machine has (``docker compose`` or ``docker-compose``)."""
    return f"lab is up: try `{' '.join(compose)} exec alpine-2 python -m app.stress_client --op upload --size 1MiB`"


def cmd_down(args: argparse.Namespace) -> int:
    usecases.lab_of(_say(args)).down()
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
    "check": cmd_check,
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
