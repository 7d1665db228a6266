"""Benchmark: how close the lab's file server comes to the limits of the machine.

Measured in one run, between the same two containers (alpine-2 -> alpine-1):

* raw TCP throughput (``app.speedtest`` sink and sender, no protocol);
* the server node's base64 decode speed and SHA-256 speed;
* single-client 100 MiB upload and download goodput through the lab server
  (median of several runs);
* 50 clients x 100 MiB aggregate goodput, for each server pool mode.

The limit of an upload is the slowest of raw TCP (counted in file bytes:
base64 makes the wire 4/3 larger), base64 decoding and SHA-256; the limit
of a download is the slower of raw TCP and SHA-256 (the client hashes).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median

from tabulate import tabulate

from orchestrator.errors import NodeError
from orchestrator.matrix import TcpCell
from orchestrator.nodes import Lab
from orchestrator.results import RunFolder
from orchestrator.runner import run_tcp_cell
from orchestrator.settings import CLIENT_NODE, SERVER_NODE

MIB = 2**20
VOLUME = 100 * MIB
SPEEDTEST_PORT = 5201


@dataclass(frozen=True)
class Limits:
    raw_tcp_mibps: float
    base64_decode_mibps: float
    sha256_mibps: float

    @property
    def upload(self) -> float:
        return min(self.raw_tcp_mibps * 3 / 4, self.base64_decode_mibps, self.sha256_mibps)

    @property
    def download(self) -> float:
        return min(self.raw_tcp_mibps, self.sha256_mibps)


def _last_json(output: str) -> dict[str, float]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise NodeError(f"no result in speedtest output: {output[-300:]!r}")


def measure_raw_tcp(lab: Lab, seconds: float = 10) -> float:
    """MiB/s of one plain TCP stream from alpine-2 to alpine-1."""
    server, client = lab.node(SERVER_NODE), lab.node(CLIENT_NODE)
    ready = threading.Event()
    outcome: dict[str, str] = {}

    def run_sink() -> None:
        sink = ["python", "-m", "app.speedtest", "sink", "--port", str(SPEEDTEST_PORT), "--seconds", "60"]
        result = server.exec(sink, time_limit=90, on_line=lambda line: line == "listening" and ready.set())
        outcome["sink"] = result.output
        ready.set()

    thread = threading.Thread(target=run_sink, daemon=True)
    thread.start()
    if not ready.wait(30):
        raise NodeError("the speedtest sink on alpine-1 did not start")
    send = ["python", "-m", "app.speedtest", "send", "--host", lab.settings.server_ip,
            "--port", str(SPEEDTEST_PORT), "--bytes", "8GiB", "--seconds", f"{seconds:g}"]  # fmt: skip
    result = _last_json(client.check(send, time_limit=seconds + 60))
    thread.join(timeout=60)
    return result["mibps"]


def run_bench(lab: Lab, folder: RunFolder, say: Callable[[str], None], singles: int = 3) -> dict[str, object]:
    """Run every measurement; write ``bench.json`` and ``bench.md``; return the figures."""
    lab.wait_server_ready()
    say("measuring base64 and SHA-256 speed on alpine-1")
    codec = _last_json(lab.node(SERVER_NODE).check(["python", "-m", "app.speedtest", "codec"]))
    say("measuring raw TCP alpine-2 -> alpine-1")
    limits = Limits(measure_raw_tcp(lab), codec["base64_decode_mibps"], codec["sha256_mibps"])
    number = 0

    def goodput(op: str, clients: int, workers: int, pool: str, repeat: int) -> dict[str, object]:
        nonlocal number
        number += 1
        cell = TcpCell(number, op, VOLUME, clients, workers, pool, timeout=900, server_idle_timeout=120, repeat=repeat)
        summary = run_tcp_cell(lab, folder, cell)
        ok = f"{summary['clients_ok']}/{clients}"
        say(f"  {cell.id}: {summary['throughput_per_client_mibps']} MiB/s per client, "
            f"{summary['aggregate_mibps']} MiB/s aggregate, {ok} ok")  # fmt: skip
        if summary["clients_failed"] or summary["server_failed"]:
            raise NodeError(f"benchmark cell {cell.id} had failed transfers: {summary['errors']}")
        return summary

    figures: dict[str, object] = {"limits": {**limits.__dict__, "upload": limits.upload, "download": limits.download}}
    for op in ("upload", "download"):
        say(f"single-client 100 MiB {op}, {singles} times")
        runs = [goodput(op, 1, 1, "thread", r) for r in range(1, singles + 1)]
        single = median(float(s["throughput_per_client_mibps"]) for s in runs)  # type: ignore[arg-type]
        figures[f"single_{op}_mibps"] = single
        for pool in ("thread", "process"):
            say(f"50 clients x 100 MiB {op}, server {pool} pool of 50")
            summary = goodput(op, 50, 50, pool, 1)
            figures[f"many_{op}_{pool}_aggregate_mibps"] = summary["aggregate_mibps"]
            figures[f"many_{op}_{pool}_server_cpu_percent"] = summary["server_cpu_percent"]
            figures[f"many_{op}_{pool}_server_peak_rss_mib"] = summary["server_peak_rss_mib"]
    lab.compose.up([SERVER_NODE])  # the default server again
    (folder.path / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    (folder.path / "bench.md").write_text(render_bench(figures) + "\n")
    return figures


def render_bench(figures: dict[str, object]) -> str:
    """The figures and their ratios to each operation's limit, as a table."""
    limits = figures["limits"]
    assert isinstance(limits, dict)
    up, down = limits["upload"], limits["download"]
    rows = [
        ["raw TCP, one stream", limits["raw_tcp_mibps"], "", ""],
        ["base64 decode (file bytes)", limits["base64_decode_mibps"], "", ""],
        ["SHA-256", limits["sha256_mibps"], "", ""],
        ["upload limit: min(raw TCP x 3/4, decode, SHA-256)", up, "", ""],
        ["download limit: min(raw TCP, SHA-256)", down, "", ""],
        ["1 client x 100 MiB upload (median)", figures["single_upload_mibps"], up, "target >= 0.6"],
        ["1 client x 100 MiB download (median)", figures["single_download_mibps"], down, "target >= 0.8"],
    ]
    for op, limit in (("upload", up), ("download", down)):
        single = figures[f"single_{op}_mibps"]
        for pool in ("thread", "process"):
            aggregate = figures[f"many_{op}_{pool}_aggregate_mibps"]
            note = f"{float(aggregate) / float(single):.2f}x single client"  # type: ignore[arg-type]
            rows.append([f"50 x 100 MiB {op}, {pool} pool: aggregate", aggregate, limit, note])
    body = [
        [name, f"{float(value):.1f}", f"{float(value) / float(limit):.2f}" if limit else "", note]  # type: ignore[arg-type]
        for name, value, limit, note in rows
    ]
    return tabulate(body, headers=["measure", "MiB/s", "ratio to limit", "note"], tablefmt="github")
