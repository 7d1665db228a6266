"""The UDP experiment's cells: a matrix's ``udp`` section in, numbered cells out (pure).

    udp:
      models: [process, thread, process-pool, thread-pool, asyncio, broadcast]
      payload_sizes: [1, 1024]    # bytes of file data per datagram (1 as in the course)
      framing: framed             # framed (sequence numbers, end marker) or raw (the original's bare bytes)
      repeats: 3                  # optional, default 1: runs of every cell, as --repeat does
      rate: 0                     # optional: datagrams per second per destination, 0 = unpaced
      idle_timeout: 5             # optional: seconds a receiver waits for more before it reports

Its cells are numbered in the order model, payload size; ``repeats`` runs
each of them that many times (``-r1``, ``-r2``, ...), like ``--repeat``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from app.contract import MAX_IDLE_TIMEOUT, MAX_RATE, MAX_SECONDS, SAMPLE_IMAGE_SIZE, max_payload, transfer_time_limits
from orchestrator.matrix import Section, check_keys, choices, fail, positive_ints

UDP_MODELS = ("process", "thread", "process-pool", "thread-pool", "asyncio", "broadcast")
UDP_FRAMINGS = ("framed", "raw")
UDP_KEYS = {"models", "payload_sizes", "framing", "repeats", "rate", "idle_timeout"}
MAX_UDP_PAYLOAD = 65507  # largest UDP payload over IPv4


@dataclass(frozen=True)
class UdpCell:
    """One run of the UDP experiment: one model, one payload size, one repeat."""

    number: int
    model: str  # one of UDP_MODELS
    payload: int  # bytes of file data per datagram
    repeat: int = 1  # 1-based: which run of the cell this is
    framing: str = "framed"
    rate: float = 0.0  # datagrams per second per destination; 0 = as fast as possible
    idle_timeout: float = 5.0

    @property
    def id(self) -> str:
        """Stable folder name, e.g. ``003-thread-1B-r1``."""
        return f"{self.number:03d}-{self.model}-{self.payload}B-r{self.repeat}"


def expand_udp(section: Any, where: str = "udp") -> Section:
    """Validate a ``udp`` section: its numbered cells, and how many times each runs (``repeats``)."""
    check_keys(where, section, UDP_KEYS, ("models", "payload_sizes"))
    models = choices(where, "models", section["models"], UDP_MODELS)
    payloads = positive_ints(where, "payload_sizes", section["payload_sizes"], MAX_UDP_PAYLOAD)
    framing = choices(where, "framing", section.get("framing", "framed"), UDP_FRAMINGS)
    if len(framing) != 1:
        raise fail(where, "framing: give one of framed, raw")
    limit = max_payload(framing[0])
    too_big = [p for p in payloads if p > limit]
    if too_big:
        raise fail(where, f"payload_sizes: {too_big[0]} is larger than {limit}, the most one datagram holds")
    repeats = positive_ints(where, "repeats", section.get("repeats", 1), 1000)
    if len(repeats) != 1:
        raise fail(where, "repeats: give one number")
    rate = section.get("rate", 0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= MAX_RATE:
        raise fail(where, f"rate: {rate!r} is not a number of datagrams per second from 0 to {MAX_RATE}")
    idle = section.get("idle_timeout", 5)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or not 0 < idle <= MAX_IDLE_TIMEOUT:
        raise fail(where, f"idle_timeout: {idle!r} is not a number of seconds from 0 to {MAX_IDLE_TIMEOUT}")
    # The runner gives each program a time limit from these same numbers; refuse a cell whose limit
    # the programs would refuse (a slow rate: 0.01 datagrams per second is days for 12,371 datagrams).
    for payload in payloads:
        _, needed = transfer_time_limits(SAMPLE_IMAGE_SIZE, payload, rate, idle)
        if needed > MAX_SECONDS:
            raise fail(
                where,
                f"rate: {rate:g} datagrams per second is too slow for payload_sizes {payload}: a cell would need "
                f"up to {needed:.0f} s, more than the {MAX_SECONDS} s the sender and receivers allow; "
                f"use a higher rate, or 0 (unpaced)",
            )
    combos = itertools.product(models, payloads)
    cells = [
        UdpCell(number, model, payload, 1, framing[0], float(rate), float(idle))
        for number, (model, payload) in enumerate(combos, start=1)
    ]
    return Section(cells, rounds=repeats[0])
