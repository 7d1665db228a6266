"""CPU figures from the real containers' cgroup counters, for cells of any length."""

from __future__ import annotations

import time

from orchestrator.lab import Node

BUSY = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n    pass\n"


def test_a_short_busy_exec_gets_its_cpu_seconds(lab):
    node = lab.node("alpine-2")
    with lab.sampling({"client": node}) as samples:
        node.check(["python", "-c", BUSY])  # 0.3 s of CPU, plus Python's start-up
    cpu = samples["client"].cpu
    assert cpu.problem == ""
    assert 0.3 <= cpu.seconds < 1.5, cpu
    assert 0 < cpu.percent <= 100 * 4, cpu  # one busy thread: at most one core, with some slack for noise


def test_the_readings_cost_the_container_nothing(lab):
    idle = lab.node("alpine-3")  # runs nothing but its idle main process
    with lab.sampling({"idle": idle}) as samples:
        time.sleep(0.3)
    cpu = samples["idle"].cpu
    assert cpu.problem == ""
    assert cpu.seconds < 0.005, f"an idle container was charged {cpu.seconds} s: the reading is not free"
    assert 0.3 <= cpu.seconds / cpu.percent * 100 < 1.0  # the wall seconds between the two readings


def test_a_container_gone_mid_cell_gives_no_figure_and_a_reason(lab):
    image = lab.node("alpine-3").container.image.id
    doomed = lab.client.containers.run(image, ["sleep", "120"], detach=True, network_mode="none")
    try:
        with lab.sampling({"doomed": Node(lab.client, doomed, "doomed")}) as samples:
            doomed.kill()
        cpu = samples["doomed"].cpu
        assert cpu.seconds is None and cpu.percent is None
        assert "stopped" in cpu.problem or "cannot read" in cpu.problem, cpu
    finally:
        doomed.remove(force=True)
