from pathlib import Path

import pytest

from orchestrator.errors import MatrixError
from orchestrator.experiments.registry import load_matrix, parse_matrix
from orchestrator.experiments.tcp.cells import expand_tcp
from orchestrator.matrix import plan
from orchestrator.matrix import plan as plan_cells

MATRICES = Path(__file__).resolve().parents[2] / "matrices"

BASE = {
    "operations": ["upload", "download"],
    "volumes": ["1MiB"],
    "clients": [1, 5],
    "server_workers": [1],
    "server_pools": ["thread", "process"],
}


def test_full_matrix_is_the_courses_108_cells():
    matrix = load_matrix("full", MATRICES)
    assert len(matrix.cells("tcp")) == 108
    combos = {(c.op, c.volume, c.clients, c.server_workers, c.server_pool) for c in matrix.cells("tcp")}
    assert len(combos) == 108
    assert {c.volume for c in matrix.cells("tcp")} == {10 * 2**20, 50 * 2**20, 100 * 2**20}
    assert [c.number for c in matrix.cells("tcp")] == list(range(1, 109))


def test_quick_matrix_covers_every_axis():
    cells = load_matrix("quick", MATRICES).cells("tcp")
    assert {c.op for c in cells} == {"upload", "download"}
    assert {c.server_pool for c in cells} == {"thread", "process"}
    assert {c.clients for c in cells} == {1, 5}
    assert {c.server_workers for c in cells} == {1, 5}


def test_expansion_order_and_ids():
    cells = expand_tcp(BASE)
    assert len(cells) == 8
    assert cells[0].id == "001-upload-1MiB-c1-thread1-r1"
    assert cells[-1].id == "008-download-1MiB-c5-process1-r1"
    assert len({c.id for c in cells}) == 8


def test_scalars_are_accepted_as_one_element_lists():
    cells = expand_tcp({**BASE, "operations": "upload", "server_pools": "thread", "clients": 3})
    assert [(c.op, c.server_pool, c.clients) for c in cells] == [("upload", "thread", 3)]


def test_timeouts_are_carried_into_cells():
    cells = expand_tcp({**BASE, "timeout": 42, "server_idle_timeout": 7})
    assert {(c.timeout, c.server_idle_timeout) for c in cells} == {(42.0, 7.0)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"operations": ["delete"]}, "operations: 'delete' is not one of"),
        ({"volumes": ["ten"]}, "volumes: not a size"),
        ({"volumes": []}, "volumes must not be empty"),
        ({"clients": [0]}, "clients: 0 is not a whole number"),
        ({"clients": ["5"]}, "clients: '5' is not a whole number"),
        ({"server_workers": [True]}, "server_workers: True"),
        ({"server_pools": ["fork"]}, "server_pools: 'fork'"),
        ({"timeout": -1}, "timeout"),
        ({"volume": ["1MiB"]}, "unknown key"),
    ],
)
def test_invalid_tcp_sections_are_refused_with_the_reason(change, message):
    with pytest.raises(MatrixError, match=message):
        expand_tcp({**BASE, **change})


def test_missing_key():
    section = dict(BASE)
    del section["clients"]
    with pytest.raises(MatrixError, match="missing key 'clients'"):
        expand_tcp(section)


@pytest.mark.parametrize(
    ("data", "message"),
    [([1, 2], "must be a YAML mapping"), ({"udpp": {}}, "unknown section"), ({"name": "x"}, "nothing to run")],
)
def test_invalid_files(data, message):
    with pytest.raises(MatrixError, match=message):
        parse_matrix(data, "my.yaml")


def test_load_errors(tmp_path):
    with pytest.raises(MatrixError, match="cannot read matrix"):
        load_matrix(str(tmp_path / "absent.yaml"), MATRICES)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tcp: [unclosed")
    with pytest.raises(MatrixError, match="not valid YAML"):
        load_matrix(str(bad), MATRICES)


def test_protocol_axis():
    cells = expand_tcp({**BASE, "protocols": ["stream", "json"]})
    assert len(cells) == 16
    assert {c.protocol for c in cells} == {"stream", "json"}
    assert any(c.id.endswith("-json-r1") for c in cells)
    with pytest.raises(MatrixError, match="protocols: 'http'"):
        expand_tcp({**BASE, "protocols": ["http"]})


def test_plan_repeats_in_rounds_and_shuffles_reproducibly():
    cells = expand_tcp(BASE)
    planned = plan_cells(cells, repeat=3)
    assert len(planned) == 24
    assert [c.repeat for c in planned[:8]] == [1] * 8 and planned[8].number == 1 and planned[8].repeat == 2
    assert len({c.id for c in planned}) == 24
    shuffled = plan_cells(cells, repeat=3, shuffle_seed=42)
    assert shuffled == plan_cells(cells, repeat=3, shuffle_seed=42)
    assert shuffled != planned and sorted(c.id for c in shuffled) == sorted(c.id for c in planned)
    with pytest.raises(MatrixError, match="--repeat"):
        plan_cells(cells, repeat=0)


def test_udp_section_expands_and_checks_payload_limits():
    from orchestrator.experiments.udp.cells import expand_udp

    cells = expand_udp({"models": ["thread", "broadcast"], "payload_sizes": [1, 1024], "repeats": 2})
    assert len(cells) == 4 and cells.rounds == 2 and cells[0].id == "001-thread-1B-r1"
    planned = plan(cells, 1 * cells.rounds)  # `repeats` runs every cell that many times, as --repeat does
    assert [c.id for c in planned[:5]] == [
        "001-thread-1B-r1", "002-thread-1024B-r1", "003-broadcast-1B-r1", "004-broadcast-1024B-r1", "001-thread-1B-r2"
    ]  # fmt: skip
    assert expand_udp({"models": "thread", "payload_sizes": 65507, "framing": "raw"})[0].payload == 65507
    with pytest.raises(MatrixError, match="larger than 65491"):
        expand_udp({"models": "thread", "payload_sizes": 65507})
    with pytest.raises(MatrixError, match="models: 'carrier-pigeon'"):
        expand_udp({"models": ["carrier-pigeon"], "payload_sizes": [1]})


UDP = {"models": ["thread"], "payload_sizes": [1, 1024]}


@pytest.mark.parametrize("idle", [3600.5, 86400, 0, -1, "5", True])
def test_udp_idle_timeout_beyond_what_the_receiver_accepts_is_refused(idle):
    from orchestrator.experiments.udp.cells import expand_udp

    with pytest.raises(MatrixError, match=r"udp: idle_timeout: .* from 0 to 3600"):
        expand_udp({**UDP, "idle_timeout": idle})


def test_udp_idle_timeout_limit_is_the_receivers_own():
    from app import udp_receiver
    from app.udp_framing import MAX_IDLE_TIMEOUT
    from orchestrator.experiments.udp.cells import expand_udp

    assert expand_udp({**UDP, "idle_timeout": MAX_IDLE_TIMEOUT})[0].idle_timeout == MAX_IDLE_TIMEOUT
    with pytest.raises(SystemExit) as refused:  # argparse: refused before any socket is opened
        udp_receiver.main(["--idle-timeout", str(MAX_IDLE_TIMEOUT + 0.5)])
    assert refused.value.code == 2
    with pytest.raises(MatrixError, match="idle_timeout"):
        expand_udp({**UDP, "idle_timeout": MAX_IDLE_TIMEOUT + 0.5})


@pytest.mark.parametrize("rate", [0.01, 0.2, 1e-300, 5e-324])
def test_udp_rate_too_slow_for_the_programs_time_limits_is_refused(rate):
    from orchestrator.experiments.udp.cells import expand_udp

    with pytest.raises(MatrixError, match=r"udp: rate: .* too slow for payload_sizes 1: .* more than the 86400 s"):
        expand_udp({**UDP, "rate": rate})


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -0.5, 10_000_001, "fast"])
def test_udp_rate_that_is_not_a_rate_is_refused(rate):
    from orchestrator.experiments.udp.cells import expand_udp

    with pytest.raises(MatrixError, match=r"udp: rate: .* from 0 to 10000000"):
        expand_udp({**UDP, "rate": rate})


@pytest.mark.parametrize("rate", [0, 0.2, 0.25, 0.29, 0.3, 0.5, 1, 1000, 10_000_000])
@pytest.mark.parametrize("idle", [0.1, 5, 3600])
def test_every_accepted_udp_cell_gets_time_limits_the_programs_accept(rate, idle):
    """The matrix checks with the runner's own function: what it accepts, the sender and receivers accept."""
    from app.udp_framing import MAX_SECONDS
    from orchestrator.experiments.udp.cells import expand_udp
    from orchestrator.experiments.udp.experiment import time_limits

    try:
        cells = expand_udp({**UDP, "rate": rate, "idle_timeout": idle})
    except MatrixError as exc:
        assert "too slow" in str(exc)
        return

    for cell in cells:
        sender, receiver = time_limits(cell)
        assert 0 < sender < receiver <= MAX_SECONDS


def test_udp_slow_rate_boundary_follows_the_payload_size():
    from orchestrator.experiments.udp.cells import expand_udp

    # 12,371 one-byte datagrams at 0.2 per second is days; 13 datagrams of 1024 bytes is a minute.
    assert len(expand_udp({"models": ["thread"], "payload_sizes": [1024], "rate": 0.2})) == 1
    with pytest.raises(MatrixError, match="payload_sizes 1:"):
        expand_udp({"models": ["thread"], "payload_sizes": [1024, 1], "rate": 0.2})
