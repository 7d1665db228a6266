from pathlib import Path

import pytest

from orchestrator.errors import MatrixError
from orchestrator.matrix import expand_tcp, load_matrix, parse_matrix, plan_cells

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
    assert len(matrix.tcp) == 108
    combos = {(c.op, c.volume, c.clients, c.server_workers, c.server_pool) for c in matrix.tcp}
    assert len(combos) == 108
    assert {c.volume for c in matrix.tcp} == {10 * 2**20, 50 * 2**20, 100 * 2**20}
    assert [c.number for c in matrix.tcp] == list(range(1, 109))


def test_quick_matrix_covers_every_axis():
    cells = load_matrix("quick", MATRICES).tcp
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
    from orchestrator.matrix import expand_udp

    cells = expand_udp({"models": ["thread", "broadcast"], "payload_sizes": [1, 1024], "repeats": 2})
    assert len(cells) == 8 and cells[0].id == "001-thread-1B-r1"
    assert expand_udp({"models": "thread", "payload_sizes": 65507, "framing": "raw"})[0].payload == 65507
    with pytest.raises(MatrixError, match="larger than 65491"):
        expand_udp({"models": "thread", "payload_sizes": 65507})
    with pytest.raises(MatrixError, match="models: 'carrier-pigeon'"):
        expand_udp({"models": ["carrier-pigeon"], "payload_sizes": [1]})
