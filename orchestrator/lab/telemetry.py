"""Resource telemetry of lab containers while a cell runs, through the docker SDK.

CPU is exact for every cell, however short: each container's cumulative CPU
counter (its cgroup's, the figure ``docker stats`` is computed from) is read
when the cell starts and when it ends. The difference is the CPU seconds all
the container's processes used; divided by the wall seconds between the two
readings it is the mean CPU % (of one core, so 200 % is both cores of a
2-core machine). The readings come from one small ``sh`` per container,
started before the cell: it reads the counter with shell builtins, waits for
a line on its stdin, and reads it again. It starts no process during the
cell, so the measurement's own cost (a ``docker exec`` costs the container
about 10 ms of CPU) is not in the figure. cgroup v1 has the counter in
``cpuacct.usage`` (nanoseconds), cgroup v2 in the first line of ``cpu.stat``
(``usage_usec``).

Memory comes from the engine's stats stream, one sample a second: memory
without the page cache (a 100 MiB file read or written fills the cache,
which says nothing about the program's own memory). Cells shorter than a
second may have no memory sample; that figure is then left empty rather
than guessed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.utils.socket import STDOUT, SocketError, frames_iter

if TYPE_CHECKING:
    from orchestrator.lab.node import Node

CGROUP_V1_COUNTER = "/sys/fs/cgroup/cpuacct/cpuacct.usage"  # nanoseconds
CGROUP_V2_COUNTER = "/sys/fs/cgroup/cpu.stat"  # first line: usage_usec <microseconds>
# Reads the counter, waits for a line on stdin, reads it again. `[`, `read` and `echo` are
# builtins of sh: nothing is started between the two readings.
COUNTER_SCRIPT = (
    f"f={CGROUP_V1_COUNTER}; [ -r $f ] || f={CGROUP_V2_COUNTER}; "
    'read start < $f; echo "$start"; read go; read end < $f; echo "$end"'
)
READ_TIMEOUT = 30.0  # seconds to wait for a reading before giving up on it


def counter_ns(line: str) -> int | None:
    """A counter reading in nanoseconds, or None if ``line`` is not one.

    cgroup v1's ``cpuacct.usage`` is a bare number of nanoseconds; the first
    line of cgroup v2's ``cpu.stat`` is ``usage_usec <microseconds>``.
    """
    words = line.split()
    if len(words) == 1 and words[0].isdigit():
        return int(words[0])
    if len(words) == 2 and words[0] == "usage_usec" and words[1].isdigit():
        return int(words[1]) * 1000
    return None


@dataclass(frozen=True)
class CpuUsage:
    """CPU used between two readings of a counter, or why there is no figure."""

    seconds: float | None = None
    percent: float | None = None  # of one core
    problem: str = ""


def cpu_usage(start: int | None, end: int | None, wall_seconds: float) -> CpuUsage:
    """CPU seconds and mean CPU % from two counter readings (ns) ``wall_seconds`` apart."""
    if start is None or end is None:
        return CpuUsage(problem="CPU counter not read at the " + ("start" if start is None else "end"))
    if end < start:  # a counter only grows: the container was recreated between the readings
        return CpuUsage(problem="CPU counter went backwards (the container restarted during the cell)")
    seconds = (end - start) / 1e9
    if wall_seconds <= 0:
        return CpuUsage(seconds, problem="no time passed between the CPU readings")
    return CpuUsage(seconds, seconds / wall_seconds * 100)


class CpuCounter:
    """One container's CPU counter, read at ``start()`` and at ``stop()``."""

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        self._api = client.api
        self._container_id = container_id
        self._socket: Any = None  # the exec's attached connection: its stdin and its output
        self._frames: Iterator[tuple[int, bytes]] | None = None
        self._output = ""
        self._start: int | None = None
        self._started_at = 0.0
        self._problem = ""

    def start(self) -> None:
        """Start the reader in the container and take the first reading."""
        try:
            exec_id = self._api.exec_create(self._container_id, ["sh", "-c", COUNTER_SCRIPT], stdin=True)["Id"]
            attached = self._api.exec_start(exec_id, socket=True)
            self._socket = getattr(attached, "_sock", attached)  # the plain socket under docker-py's wrapper
            self._socket.settimeout(READ_TIMEOUT)
            self._frames = frames_iter(self._socket, tty=False)
            self._start = self._read()
        except (docker.errors.APIError, OSError, SocketError) as exc:
            self._problem = f"cannot read the CPU counter: {exc}"
        self._started_at = time.monotonic()

    def stop(self) -> CpuUsage:
        """Take the second reading and return the CPU used since the first."""
        wall = time.monotonic() - self._started_at
        end = None
        if self._socket is not None and self._start is not None:
            try:
                self._socket.sendall(b"\n")
                end = self._read()
            except (OSError, SocketError) as exc:
                self._problem = f"cannot read the CPU counter: {exc}"
        self.close()
        usage = cpu_usage(self._start, end, wall)
        return CpuUsage(usage.seconds, usage.percent, self._problem or usage.problem)

    def close(self) -> None:
        """End the reader (closing its stdin ends it) and free the connection."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _read(self) -> int | None:
        """The next reading: one line of the reader's output, in nanoseconds."""
        assert self._frames is not None
        while "\n" not in self._output:
            stream, data = next(self._frames, (STDOUT, b""))
            if not data:
                self._problem = "the container stopped before the CPU counter was read"
                return None
            text = data.decode("utf-8", "replace")
            if stream != STDOUT:  # sh's own complaint, e.g. neither counter file exists
                self._problem = f"cannot read the CPU counter: {text.strip()[:200]}"
                return None
            self._output += text
        line, self._output = self._output.split("\n", 1)
        reading = counter_ns(line)
        if reading is None:
            self._problem = f"not a CPU counter reading: {line[:100]!r}"
        return reading


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
    """What was measured of one container during a cell (the CPU once the cell is over)."""

    memory: list[int] = field(default_factory=list)
    cpu: CpuUsage = field(default_factory=lambda: CpuUsage(problem="CPU not measured yet"))


def figures(measured: Mapping[str, Samples]) -> dict[str, object]:
    """The CSV columns of each container (by role, e.g. ``server``), and why any CPU figure is missing.

    ``<role>_cpu_seconds``, ``<role>_cpu_percent`` (of one core) and
    ``<role>_memory_peak_mib`` for every role, then ``cpu_problems``.
    """
    columns: dict[str, object] = {}
    for role, samples in measured.items():
        cpu = samples.cpu
        columns[f"{role}_cpu_seconds"] = None if cpu.seconds is None else round(cpu.seconds, 3)
        columns[f"{role}_cpu_percent"] = None if cpu.percent is None else round(cpu.percent, 1)
        peak = max(samples.memory) / 2**20 if samples.memory else None
        columns[f"{role}_memory_peak_mib"] = None if peak is None else round(peak, 1)
    problems = [f"{role}: {samples.cpu.problem}" for role, samples in measured.items() if samples.cpu.problem]
    columns["cpu_problems"] = "; ".join(problems)
    return columns


def _sample_memory(client: docker.DockerClient, container_id: str, stop: threading.Event, into: Samples) -> None:
    try:
        for sample in client.api.stats(container_id, stream=True, decode=True):
            if stop.is_set():
                return
            memory = memory_bytes(sample)
            if memory is not None:
                into.memory.append(memory)
    except (docker.errors.APIError, OSError, ValueError):
        return  # the container stopped: the stream ends


@contextmanager
def sampling(nodes: Mapping[str, Node]) -> Iterator[dict[str, Samples]]:
    """Measure each node (by role, e.g. ``{"server": node}``) over the ``with`` block.

    Each node is read through its own engine's client, so the nodes may be on
    different engines. The block starts only once every CPU counter has its
    first reading; the second is taken as the block ends, and each
    ``Samples.cpu`` is filled then.
    """
    stop = threading.Event()
    results = {role: Samples() for role in nodes}
    counters = {role: CpuCounter(node.client, node.id) for role, node in nodes.items()}
    threads = [
        threading.Thread(target=_sample_memory, args=(node.client, node.id, stop, results[role]), daemon=True)
        for role, node in nodes.items()
    ]
    for thread in threads:
        thread.start()
    try:
        for counter in counters.values():
            counter.start()
        yield results
        for role, counter in counters.items():
            results[role].cpu = counter.stop()
    finally:
        for counter in counters.values():
            counter.close()
        stop.set()  # each memory thread leaves at its next sample (at most a second); they are daemons
