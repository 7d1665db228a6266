"""A run's manifest.json as the report's rows (pure: nothing here probes Docker or the host)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def iso_time(stamp: float | None) -> str | None:
    """A Unix time as local ISO 8601 with its UTC offset, e.g. ``2026-11-21T09:32:05+07:00``."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


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
    # Runs from before the lab had backends have no "backend" key: their report stays as it was.
    rows = [("Backend", _or(manifest["backend"]))] if "backend" in manifest else []
    rows += [
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
