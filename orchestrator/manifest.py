"""The environment a run ran in: ``results/<run-id>/manifest.json``.

Written when a run starts and again when it ends (to record the end time):
Docker engine and Compose versions, the host's kernel, CPU and memory, the
node image and its base, the project's git commit, the matrix, the random
seed, and the start and end times. Every fact is gathered defensively: one
that cannot be read is recorded as ``null`` with the reason, and never stops
a run. ``manifest_lines`` (pure) turns a manifest into the report's rows.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.settings import DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE

if TYPE_CHECKING:
    from orchestrator.nodes import Lab
    from orchestrator.results import RunFolder, RunState

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "manifest.json"


def iso_time(stamp: float | None) -> str | None:
    """A Unix time as local ISO 8601 with its UTC offset, e.g. ``2026-11-21T09:32:05+07:00``."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def _safely(gather: Callable[[], Any], errors: dict[str, str], name: str) -> Any:
    try:
        return gather()
    except Exception as exc:  # any failure of a probe is recorded, never raised
        errors[name] = f"{type(exc).__name__}: {exc}"
        return None


def cpu_model(cpuinfo: str) -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` text (x86 ``model name``, ARM ``Model``/``Hardware``)."""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in cpuinfo.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return None


def mem_total_bytes(meminfo: str) -> int | None:
    """``MemTotal`` from ``/proc/meminfo`` text, in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def _host(errors: dict[str, str]) -> dict[str, Any]:
    def read(path: str) -> str:
        return Path(path).read_text(encoding="utf-8", errors="replace")

    cpuinfo = _safely(lambda: read("/proc/cpuinfo"), errors, "host.cpuinfo") or ""
    meminfo = _safely(lambda: read("/proc/meminfo"), errors, "host.meminfo") or ""
    return {
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(cpuinfo) or platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem_total_bytes(meminfo),
    }


def _git(errors: dict[str, str]) -> dict[str, Any]:
    def run(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"git {' '.join(args)} exited {done.returncode}")
        return done.stdout.strip()

    commit = _safely(lambda: run("rev-parse", "HEAD"), errors, "git.commit")
    status = _safely(lambda: run("status", "--porcelain", "--untracked-files=no"), errors, "git.dirty")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _compose(lab: Lab, errors: dict[str, str]) -> dict[str, Any]:
    from orchestrator.compose import settings_compose_command

    command = _safely(lambda: settings_compose_command(lab.settings), errors, "compose.command")
    if not command:
        return {"command": None, "version": None}

    def version() -> str:
        done = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=30)
        return done.stdout.strip() or done.stderr.strip()

    return {"command": " ".join(command), "version": _safely(version, errors, "compose.version")}


def _docker(lab: Lab, errors: dict[str, str]) -> dict[str, Any]:
    version = _safely(lab.client.version, errors, "docker.version") or {}
    info = _safely(lab.client.info, errors, "docker.info") or {}
    return {
        "engine": version.get("Version"),
        "api": version.get("ApiVersion"),
        "os": info.get("OperatingSystem") or version.get("Os"),
        "arch": version.get("Arch"),
        "kernel": version.get("KernelVersion") or info.get("KernelVersion"),
        "cgroup": info.get("CgroupVersion"),
        "storage_driver": info.get("Driver"),
        "cpus": info.get("NCPU"),
        "memory_bytes": info.get("MemTotal"),
    }


def _image(lab: Lab, name: str | None, errors: dict[str, str], label: str) -> dict[str, Any]:
    if not name:
        return {"name": None, "id": None}

    def inspect() -> dict[str, Any]:
        image = lab.client.images.get(name)
        created = image.attrs.get("Created")
        return {"name": name, "id": image.id, "created": created}

    return _safely(inspect, errors, f"images.{label}") or {"name": name, "id": None}


def _present_base(lab: Lab) -> str | None:
    """The base image the lab would choose, if only looking at local images (no pull, no build)."""
    for name in (DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE):
        try:
            lab.client.images.get(name)
            return name
        except Exception:  # absent, or the engine refused: try the next
            continue
    return None


def gather_environment(lab: Lab) -> dict[str, Any]:
    """Facts about the engine, Compose, the host, the images and the code (I/O; never raises)."""
    errors: dict[str, str] = {}
    base = lab.compose.base_image or lab.settings.base_image or _present_base(lab)
    return {
        "docker": _docker(lab, errors),
        "compose": _compose(lab, errors),
        "host": _host(errors),
        "images": {
            "node": _image(lab, lab.settings.image, errors, "node"),
            "base": _image(lab, base, errors, "base"),
        },
        "git": _git(errors),
        "lab": {
            "project": lab.settings.project,
            "network": lab.settings.network,
            "subnet": lab.settings.subnet,
        },
        "unavailable": errors,
    }


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
    from dataclasses import asdict

    try:
        matrix = folder.matrix_data()
    except (OSError, ValueError) as exc:
        matrix = f"unreadable: {exc}"
    manifest = build_manifest(asdict(state), matrix, gather_environment(lab))
    path = folder.path / MANIFEST
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    temp.replace(path)
    return path


def _gib(value: object) -> str:
    return f"{int(value) / 2**30:.1f} GiB" if isinstance(value, int) else "unknown"  # type: ignore[arg-type]


def _or(value: object, unknown: str = "unknown") -> str:
    return unknown if value in (None, "") else str(value)


def manifest_lines(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows of a manifest for the report (pure; missing facts say "unknown")."""
    docker = manifest.get("docker") or {}
    compose = manifest.get("compose") or {}
    host = manifest.get("host") or {}
    images = manifest.get("images") or {}
    node, base = images.get("node") or {}, images.get("base") or {}
    git = manifest.get("git") or {}
    lab = manifest.get("lab") or {}
    seed = manifest.get("shuffle_seed")
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    rows = [
        ("Docker engine", f"{_or(docker.get('engine'))} (API {_or(docker.get('api'))}), {_or(docker.get('os'))}"),
        ("Engine resources", f"{_or(docker.get('cpus'))} CPUs, {_gib(docker.get('memory_bytes'))} memory, "
         f"cgroup v{_or(docker.get('cgroup'), '?')}, storage {_or(docker.get('storage_driver'))}"),
        ("Compose", f"{_or(compose.get('command'))} {_or(compose.get('version'), '')}".strip()),
        ("Kernel", _or(docker.get("kernel") or host.get("kernel"))),
        ("CPU", f"{_or(host.get('cpu_count'))} x {_or(host.get('cpu_model'))}"),
        ("Memory (host)", _gib(host.get("memory_bytes"))),
        ("Host", f"{_or(host.get('platform'))}, Python {_or(host.get('python'))}"),
        ("Node image", f"{_or(node.get('name'))} {_or(node.get('id'), 'id unknown')}"),
        ("Base image", f"{_or(base.get('name'))} {_or(base.get('id'), 'id unknown')}"),
        ("Git commit", f"{_or(git.get('commit'))}{dirty}"),
        ("Lab", f"project {_or(lab.get('project'))}, network {_or(lab.get('network'))} {_or(lab.get('subnet'), '')}"),
        ("Matrix", _or(manifest.get("matrix_name"))),
        ("Experiment, repeats", f"{_or(manifest.get('experiment'))}, {_or(manifest.get('repeat'))}"),
        ("Random seed", "none (cells in matrix order)" if seed is None else str(seed)),
        ("Started", _or(manifest.get("started"))),
        ("Finished", _or(manifest.get("finished"), "not finished")),
    ]  # fmt: skip
    unavailable = manifest.get("unavailable") or {}
    if unavailable:
        rows.append(("Not recorded", "; ".join(f"{k}: {v}" for k, v in sorted(unavailable.items()))))
    return rows
