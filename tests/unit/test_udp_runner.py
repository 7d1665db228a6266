"""The UDP experiment's pure parts: the patterns that find its programs, and the time limits of cells.

That an interrupted run really stops the programs in the nodes is tested
against the real lab in tests/integration/test_udp_lab.py.
"""

from __future__ import annotations

import re

import pytest

from app import contract
from app.udp_framing import MAX_SECONDS
from orchestrator.errors import MatrixError
from orchestrator.experiments.udp import experiment as udp_runner
from orchestrator.experiments.udp.cells import UdpCell, expand_udp


def test_the_pkill_patterns_match_the_programs_but_not_the_pkill_command_line():
    for node, pattern in udp_runner.UDP_PROGRAMS.items():
        program = "sender" if node == contract.SENDER_NODE else "receiver"
        assert re.search(pattern, f"timeout -k 5 65 python -m app.udp_{program} --port 8888 --quiet")
        pkill = ["timeout", "-k", "5", "30", "pkill", "-TERM", "-f", pattern]
        assert not re.search(pattern, " ".join(pkill))
    assert not re.search(udp_runner.UDP_PROGRAMS["alpine-1"], "python -m app.fileserver --port 8889")


def test_cells_whose_time_limits_the_programs_refuse_are_refused_in_the_matrix():
    """The limits are checked once, where the matrix is read, with the function the runner uses."""
    slow = UdpCell(1, "thread", 1, 1, rate=0.01)
    assert udp_runner.time_limits(slow)[1] > MAX_SECONDS
    with pytest.raises(MatrixError, match=r"rate: 0\.01 .* too slow"):
        expand_udp({"models": ["thread"], "payload_sizes": [1024, 1], "rate": 0.01})
    sender, receiver = udp_runner.time_limits(UdpCell(1, "thread", 1, 1, rate=1000, idle_timeout=5))
    assert receiver == sender + 5 + udp_runner.READY_WAIT


def test_orchestrated_receivers_wait_a_bounded_time_for_the_first_datagram():
    """By hand a receiver waits for its sender without limit; in a cell it must not."""
    cell = UdpCell(3, "thread", 1, 1, idle_timeout=4)
    command = udp_runner.receiver_command(cell, "alpine-3", "/results/run/udp-cells/x", 99)
    options = dict(zip(command[3::2], command[4::2], strict=False))
    assert command[:3] == ["python", "-m", "app.udp_receiver"]
    assert options["--first-wait"] == "4" and options["--idle-timeout"] == "4" and options["--max-time"] == "99"
