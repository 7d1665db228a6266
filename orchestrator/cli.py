"""Command line of the orchestrator (``python orchestrate.py``).

    python orchestrate.py                      run the quick matrix (default)
    python orchestrate.py --matrix full        the course's full matrix
    python orchestrate.py --matrix my.yaml     your own matrix file
    python orchestrate.py --experiment udp     only the UDP part of the matrix
    python orchestrate.py build                build the node image (and its base if needed)
    python orchestrate.py up                   build and start the lab, then exit
    python orchestrate.py down  (or --down)    stop the lab and remove its volumes

Exit codes: 0 all transfers succeeded; 3 the run finished but some transfers
failed (see the summary); 2 bad usage or matrix; 1 Docker or the lab failed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import LabError, MatrixError
from orchestrator.matrix import load_matrix
from orchestrator.nodes import Lab
from orchestrator.results import RunFolder, new_run_id
from orchestrator.runner import run_tcp
from orchestrator.settings import load_settings
from orchestrator.summary import render_table

ROOT = Path(__file__).resolve().parent.parent
EXIT_FAILED_TRANSFERS = 3
EXPERIMENTS = ("all", "tcp", "udp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate.py",
        description="Run progjar-lab experiments on the three-node Docker lab.",
        epilog="Exit codes: 0 all ok, 3 some transfers failed, 2 bad usage or matrix, 1 lab error, 130 interrupted.",
    )
    parser.add_argument("command", nargs="?", default="run", choices=sorted(COMMANDS), help="default: run")
    parser.add_argument("--matrix", default="quick", help="quick (default), full, or a YAML file")
    parser.add_argument("--experiment", choices=EXPERIMENTS, default="all", help="which sections of the matrix run")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results folder (default ./results)")
    parser.add_argument("--run-id", help="name of this run's folder (default: date-time-matrix)")
    parser.add_argument("--down", action="store_true", help="stop the lab and remove its volumes")
    parser.add_argument("--quiet", action="store_true", help="print only the final tables and errors")
    return parser


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda _msg: None) if args.quiet else (lambda msg: print(msg, flush=True))


def cmd_run(args: argparse.Namespace) -> int:
    """Load the matrix, bring the lab up, run its cells, print the summaries."""
    say = _say(args)
    matrix = load_matrix(args.matrix, ROOT / "matrices")  # validate before touching Docker
    tcp_cells = matrix.tcp if args.experiment in ("all", "tcp") else []
    udp_cells = matrix.udp if args.experiment in ("all", "udp") else []
    if not tcp_cells and not udp_cells:
        raise MatrixError(f"matrix {matrix.name} has no {args.experiment} section to run")
    lab = Lab(load_settings(ROOT), say)
    folder = RunFolder(args.results, args.run_id or new_run_id(matrix.name))
    if folder.path.exists():
        raise LabError(f"{folder.path} already exists; choose another --run-id")
    started = time.monotonic()
    lab.up()
    folder.create(matrix)
    say(f"run {folder.run_id}: matrix {matrix.name}, {len(tcp_cells)} TCP and {len(udp_cells)} UDP cells")
    failed = 0
    report = [f"# Run {folder.run_id}: matrix {matrix.name}\n"]
    if tcp_cells:
        summaries = run_tcp(lab, folder, tcp_cells, say)
        table = render_table(summaries)
        report.append(f"## TCP file server\n\n{table}\n")
        print(table)
        failed += sum(int(s["clients_failed"]) + int(s["server_failed"]) for s in summaries)  # type: ignore[call-overload]
    if udp_cells:
        from orchestrator.udp_runner import run_udp
        from orchestrator.udp_summary import count_failures, render_udp_table

        udp_rows = run_udp(lab, folder, udp_cells, say)
        table = render_udp_table(udp_rows)
        report.append(f"## UDP sender to two receivers\n\n{table}\n")
        print(f"\n{table}")
        failed += count_failures(udp_rows)
    (folder.path / "summary.md").write_text("\n".join(report))
    wall = time.monotonic() - started
    print(f"\n{len(tcp_cells) + len(udp_cells)} cells in {wall:.0f} s; results in {folder.path}")
    if failed:
        print(f"{failed} transfer(s) failed: see the errors column of {folder.path / 'summary.csv'}", file=sys.stderr)
        return EXIT_FAILED_TRANSFERS
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    image = Lab(load_settings(ROOT), _say(args)).build()
    print(f"node image built on {image}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    Lab(load_settings(ROOT), _say(args)).up()
    print("lab is up: try `docker compose exec alpine-2 python -m app.stress_client --op upload --size 1MiB`")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    Lab(load_settings(ROOT), _say(args)).down()
    print("lab stopped and its volumes removed")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "build": cmd_build,
    "up": cmd_up,
    "down": cmd_down,
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
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
