"""Resource telemetry of lab containers while a cell runs, through the docker SDK.

The engine's stats stream gives one sample a second per container: CPU use
(as % of one core, so 200 % is both cores of a 2-core machine) and memory
without the page cache (a 100 MiB file read or written fills the cache, which
says nothing about the program's own memory). Cells shorter than a second
may have no sample; their figures are then left empty rather than guessed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import docker
import docker.errors


def cpu_percent(sample: Mapping[str, Any]) -> float | None:
    """CPU use between this sample and the engine's previous one, in % of one core."""
    try:
        cpu, pre = sample["cpu_stats"], sample["precpu_stats"]
        used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
        cores = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])
    except (KeyError, TypeError):
        return None
    return used / system * cores * 100 if system > 0 and used >= 0 else None


def memory_bytes(sample: Mapping[str, Any]) -> int | None:
    """Memory in use without the page cache (cgroup v1 ``cache``, v2 ``inactive_file``)."""
    try:
        memory = sample["memory_stats"]
        stats = memory.get("stats", {})
        cache = stats.get("total_inactive_file", stats.get("cache", stats.get("inactive_file", 0)))
        return int(memory["usage"]) - int(cache)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Samples:
    cpu: list[float] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)

    def summary(self, prefix: str) -> dict[str, float | None]:
        return {
            f"{prefix}_cpu_percent": fmean(self.cpu) if self.cpu else None,
            f"{prefix}_memory_peak_mib": max(self.memory) / 2**20 if self.memory else None,
        }


def _sample(client: docker.DockerClient, container_id: str, stop: threading.Event, into: Samples) -> None:
    try:
        for sample in client.api.stats(container_id, stream=True, decode=True):
            if stop.is_set():
                return
            cpu, memory = cpu_percent(sample), memory_bytes(sample)
            if cpu is not None:
                into.cpu.append(cpu)
            if memory is not None:
                into.memory.append(memory)
    except (docker.errors.APIError, docker.errors.NotFound, OSError, ValueError):
        return  # the container stopped: the stream ends


@contextmanager
def sampling(client: docker.DockerClient, containers: Mapping[str, str]) -> Iterator[dict[str, Samples]]:
    """Sample each container (name -> id) for the ``with`` block; the dict fills as it runs."""
    stop = threading.Event()
    results = {name: Samples() for name in containers}
    threads = [
        threading.Thread(target=_sample, args=(client, cid, stop, results[name]), daemon=True)
        for name, cid in containers.items()
    ]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        stop.set()  # each thread leaves at its next sample (at most a second); they are daemons
