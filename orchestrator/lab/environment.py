"""What a lab runs on, for manifest.json: engine, Compose, host, images and the lab's network.

Every fact is gathered defensively: one that cannot be read is recorded as
``None`` with the reason in ``unavailable``, and never stops a run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from orchestrator.lab.compose_cli import settings_compose_command
from orchestrator.settings import DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE, Settings


def safely(gather: Callable[[], Any], errors: dict[str, str], name: str) -> Any:
    """``gather()``, or None with its failure recorded in ``errors[name]``."""
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


def host_facts(errors: dict[str, str]) -> dict[str, Any]:
    """The machine the orchestrator runs on."""

    def read(path: str) -> str:
        return Path(path).read_text(encoding="utf-8", errors="replace")

    cpuinfo = safely(lambda: read("/proc/cpuinfo"), errors, "host.cpuinfo") or ""
    meminfo = safely(lambda: read("/proc/meminfo"), errors, "host.meminfo") or ""
    return {
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(cpuinfo) or platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem_total_bytes(meminfo),
    }


def compose_facts(settings: Settings, errors: dict[str, str]) -> dict[str, Any]:
    """The Compose CLI the settings choose, and its version."""
    command = safely(lambda: settings_compose_command(settings), errors, "compose.command")
    if not command:
        return {"command": None, "version": None}

    def version() -> str:
        done = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=30)
        return done.stdout.strip() or done.stderr.strip()

    return {"command": " ".join(command), "version": safely(version, errors, "compose.version")}


def engine_facts(client: docker.DockerClient, errors: dict[str, str]) -> dict[str, Any]:
    """One Docker engine: version, OS, kernel, cgroup, storage driver, CPUs and memory."""
    version = safely(client.version, errors, "docker.version") or {}
    info = safely(client.info, errors, "docker.info") or {}
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


def image_facts(client: docker.DockerClient, name: str | None, errors: dict[str, str], label: str) -> dict[str, Any]:
    """An image's name, id and creation time on the engine of ``client``."""
    if not name:
        return {"name": None, "id": None}

    def inspect() -> dict[str, Any]:
        image = client.images.get(name)
        created = image.attrs.get("Created")
        return {"name": name, "id": image.id, "created": created}

    return safely(inspect, errors, f"images.{label}") or {"name": name, "id": None}


def present_base(client: docker.DockerClient) -> str | None:
    """The base image the lab would choose, if only looking at local images (no pull, no build)."""
    for name in (DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE):
        try:
            client.images.get(name)
            return name
        except Exception:  # absent, or the engine refused: try the next
            continue
    return None


def gather_environment(client: docker.DockerClient, settings: Settings, base_image: str | None) -> dict[str, Any]:
    """Facts of a lab on one engine driven by Compose (I/O; never raises); ``base_image``: the one built on."""
    errors: dict[str, str] = {}
    base = base_image or settings.base_image or present_base(client)
    return {
        "docker": engine_facts(client, errors),
        "compose": compose_facts(settings, errors),
        "host": host_facts(errors),
        "images": {
            "node": image_facts(client, settings.image, errors, "node"),
            "base": image_facts(client, base, errors, "base"),
        },
        "lab": {"project": settings.project, "network": settings.network, "subnet": settings.subnet},
        "unavailable": errors,
    }
