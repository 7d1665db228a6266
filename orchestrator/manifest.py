"""The environment a run ran in: ``results/<run-id>/manifest.json``.

Written when a run starts and again when it ends (to record the end time):
the lab's facts (``Lab.environment()``: backend, Docker engine and Compose
versions, the host's kernel, CPU and memory, the node image and its base),
the project's git commit, the matrix, the random seed, and the start and
end times. A fact that cannot be read is recorded as ``null`` with the
reason, and never stops a run. The report renders it (report/manifest.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.lab.environment import safely
from orchestrator.report.manifest import iso_time

if TYPE_CHECKING:
    from orchestrator.lab import Lab
    from orchestrator.store import RunFolder, RunState

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "manifest.json"
# The environment's keys in the order manifest.json has always had them (``backend`` came later, first).
ENVIRONMENT_ORDER = ("backend", "docker", "compose", "host", "images", "git", "lab")


def _git(errors: dict[str, str]) -> dict[str, Any]:
    def run(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"git {' '.join(args)} exited {done.returncode}")
        return done.stdout.strip()

    commit = safely(lambda: run("rev-parse", "HEAD"), errors, "git.commit")
    status = safely(lambda: run("status", "--porcelain", "--untracked-files=no"), errors, "git.dirty")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def run_environment(lab: Lab) -> dict[str, Any]:
    """The lab's facts and the code's git commit, with every unreadable fact in ``unavailable`` (never raises)."""
    facts = dict(lab.environment())
    errors = dict(facts.pop("unavailable", None) or {})
    facts["git"] = _git(errors)
    ordered = {key: facts.pop(key) for key in ENVIRONMENT_ORDER if key in facts}
    return {**ordered, **facts, "unavailable": errors}


def build_manifest(
    state: Mapping[str, Any], matrix: object, environment: Mapping[str, Any], now: float | None = None
) -> dict[str, Any]:
    """The manifest of a run from its state (``run.json``), its matrix and its environment (pure)."""
    return {
        "run_id": state.get("run_id"),
        "matrix_name": state.get("matrix"),
        "matrix": matrix,
        "experiment": state.get("experiment"),
        "repeat": state.get("repeat"),
        "shuffle_seed": state.get("shuffle_seed"),
        "status": state.get("status"),
        "started": iso_time(state.get("started")),
        "finished": iso_time(state.get("finished")),
        **environment,
        "written": iso_time(time.time() if now is None else now),
    }


def write_manifest(lab: Lab, folder: RunFolder, state: RunState) -> Path:
    """Write (or rewrite) ``manifest.json`` into the run folder; returns its path."""
    try:
        matrix = folder.matrix_data()
    except (OSError, ValueError) as exc:
        matrix = f"unreadable: {exc}"
    manifest = build_manifest(asdict(state), matrix, run_environment(lab))
    path = folder.path / MANIFEST
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    temp.replace(path)
    return path
