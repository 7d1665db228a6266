"""A submission's descriptor: what it may say, and a clear message for everything it may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.submission import DescriptorError, fill, load_submission, parse_descriptor

ROOT = Path(__file__).resolve().parents[2]
HERE = Path("/tmp/sub")
SERVER = {"command": "python3 server.py --port {port} --workers {workers} --pool {pool} --storage {storage}",
          "protocol": "stream", "pools": ["thread", "process"]}  # fmt: skip


def parse(**top):
    return parse_descriptor({"name": "s", **top}, HERE)


def test_the_issues_example_descriptor():
    sub = parse(server=SERVER, client={"command": "python3 client.py --host {host} --port {port} --op {op} "
                                                  "--file {file} --clients {clients}"})  # fmt: skip
    assert sub.server.pools == ("thread", "process") and sub.server.port == 8889
    assert sub.server_command("process", 5, "/srv/files") == (
        "python3 server.py --port 8889 --workers 5 --pool process --storage /srv/files"
    )
    assert sub.client is not None and "{host}" in sub.client


def test_one_program_per_pool_mode_with_a_fixed_port_storage_and_workers():
    sub = parse(server={"commands": {"thread": "python3 thread_pool.py", "process": "python3 processing_pool.py"},
                        "protocol": "stream", "port": 8889, "storage": "files", "workers": 5})  # fmt: skip
    assert sub.server.pools == ("thread", "process")
    assert (sub.server.port, sub.server.storage, sub.server.workers) == (8889, "files", 5)
    assert sub.server_command("process", 50, "/ignored") == "python3 processing_pool.py"


def test_the_json_protocol_listens_on_6666_by_default():
    sub = parse(server={"command": "python3 s.py {port} {workers} {storage}", "protocol": "json"})
    assert (sub.server.port, sub.server.pools) == (6666, ("thread",))


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        ({"name": "s", "server": SERVER, "colour": "red"}, r"unknown key\(s\) colour"),
        ({"name": "s", "server": {**SERVER, "command": None}}, "command: must be a command line"),
        ({"name": "s", "server": {"protocol": "stream"}}, "give either command .* or commands"),
        ({"name": "s", "server": {**SERVER, "protocol": "http"}}, "protocol: 'http' is not one of stream, json"),
        ({"name": "s", "server": {**SERVER, "command": "python3 s.py --port {prot}"}}, r"unknown placeholder \{prot\}"),
        ({"name": "s", "server": {**SERVER, "command": "python3 s.py {port"}}, "command: .*brace"),
        ({"name": "s", "server": {**SERVER, "pools": ["thread", "fork"]}}, "pools: .* list one or both"),
        ({"name": "s", "server": {**SERVER, "command": "python3 s.py {port} {workers} {storage}"}}, "has no {pool}"),
        (
            {"name": "s", "server": {"command": "python3 s.py {port} {workers}", "protocol": "stream"}},
            "no {storage}: say where",
        ),
        (
            {"name": "s", "server": {"command": "python3 s.py {workers}", "protocol": "stream", "storage": "../x"}},
            "storage: '../x' must be a folder inside",
        ),
        ({"name": "s", "server": {"command": "python3 s.py {storage}", "protocol": "stream"}}, "say how many workers"),
        ({"name": "s", "server": {**SERVER, "port": 9000}}, "command has {port}"),
        ({"name": "../evil", "server": SERVER}, "name: '../evil'"),
        ({"name": "s"}, "missing key 'server'"),
        ({"name": "s", "client": {"command": "python3 c.py {pool}"}}, r"unknown placeholder \{pool\}"),
        ("just text", "must be a mapping"),
    ],
)
def test_bad_descriptors_are_refused_with_the_key_and_the_reason(descriptor, message):
    with pytest.raises(DescriptorError, match=message) as info:
        parse_descriptor(descriptor, HERE)
    assert info.value.exit_code == 2


def test_a_folder_without_a_descriptor_or_with_broken_yaml(tmp_path):
    with pytest.raises(DescriptorError, match=r"no progjar\.yaml"):
        load_submission(tmp_path)
    (tmp_path / "progjar.yaml").write_text("name: [unclosed\n")
    with pytest.raises(DescriptorError, match="not valid YAML"):
        load_submission(tmp_path)
    with pytest.raises(DescriptorError, match="no such folder"):
        load_submission(tmp_path / "missing")


def test_placeholders_are_filled_as_plain_text():
    assert fill("python3 s.py {port} {{literal}}", port=8889, workers=5) == "python3 s.py 8889 {literal}"


@pytest.mark.parametrize("example", sorted(p.parent.name for p in (ROOT / "examples").glob("*/progjar.yaml")))
def test_the_examples_descriptors_are_valid(example):
    sub = load_submission(ROOT / "examples" / example)
    assert sub.server is not None and sub.name == example


def test_a_submissions_cells_are_its_pools_its_protocol_and_its_fixed_workers():
    from orchestrator.experiments.tcp.cells import expand_tcp
    from orchestrator.experiments.tcp.experiment import submission_cells

    cells = expand_tcp({"operations": "upload", "volumes": "1MiB", "clients": [1, 5], "server_workers": [1, 5],
                        "server_pools": ["thread", "process"], "protocols": ["stream", "json"]})  # fmt: skip
    kept, notes = submission_cells(cells, ("thread",), None, "json")
    assert {(c.server_pool, c.protocol) for c in kept} == {("thread", "json")} and len(kept) == 4
    assert any("pool modes (thread)" in n for n in notes) and any("json protocol" in n for n in notes)
    kept, notes = submission_cells(cells, ("thread", "process"), 7, "stream")
    assert {c.server_workers for c in kept} == {7} and len(kept) == 4  # pools x clients, one worker count
    assert len({c.id for c in kept}) == 4 and any("7 workers, not a parameter" in n for n in notes)
