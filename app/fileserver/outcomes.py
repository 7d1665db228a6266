"""The outcome log: one CSV row per request, so "server workers succeeded/failed" is measured, not guessed."""

from __future__ import annotations

import logging
import multiprocessing
import resource
import threading
import time

from app.fileserver.common import ServerContext

log = logging.getLogger("fileserver")


def new_outcome(peer: tuple[str, int]) -> dict[str, object]:
    """The outcome row of a request, failed until it succeeds."""
    worker = f"{multiprocessing.current_process().name}/{threading.current_thread().name}"
    return {"peer": peer[0], "peer_port": peer[1], "status": "error", "worker": worker}


_outcome_errors_seen: set[int | None] = set()  # errnos already reported by record_outcome


def record_outcome(ctx: ServerContext, outcome: dict[str, object], started: float, clock: float, wire: int) -> None:
    """Append one request's row to the outcome CSV and log one line."""
    seconds = time.perf_counter() - clock
    outcome.update(start=f"{started:.6f}", end=f"{started + seconds:.6f}", seconds=f"{seconds:.6f}")
    outcome["wire_bytes"] = wire
    # Peak memory of the process serving (in process mode: this worker; in
    # thread mode: the whole server), to show it does not grow with file size.
    outcome["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if ctx.outcomes:
        try:
            ctx.outcomes.write(outcome)
        except OSError as exc:
            # A full or broken disk costs the log its rows, never a client its
            # connection or the server its life: warn once per kind of error.
            if exc.errno not in _outcome_errors_seen:
                _outcome_errors_seen.add(exc.errno)
                log.error("cannot write the outcome log %s: %s", ctx.outcomes.path, exc.strerror or exc)
    log.info(
        "%s %s from %s:%s %s%s %.3fs",
        outcome.get("command", "-"), outcome.get("filename", "-"), outcome["peer"], outcome["peer_port"],
        outcome["status"], f" ({outcome['error']})" if outcome.get("error") else "", seconds,
    )  # fmt: skip
