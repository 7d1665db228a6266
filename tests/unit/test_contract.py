"""app/contract.py: the host's command builders agree with each program's own parser.

Every builder's output is parsed back with the program's ``build_parser()``:
a value that does not come back as given, or an option a program has and
its builder has not, fails here instead of in a lab run.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app import (
    conformance,
    contract,
    file_client,
    genfile,
    probe,
    speedtest,
    stress_client,
    udp_framing,
    udp_receiver,
    udp_sender,
)
from app.fileserver import cli as fileserver_cli

ROOT = Path(__file__).resolve().parents[2]

# builder, the program's parser, and every option set (values as the parser returns them)
FULL = [
    (
        contract.fileserver_command, fileserver_cli.build_parser,
        dict(pool="process", workers=7, host="127.0.0.2", port=9001, json_port=9002, storage="/srv/x",
             outcomes="/r/o.csv", timeout=12.5, header_timeout=3.25, min_upload_rate=1000, rate_window=1.5,
             max_upload=123456, max_waiting=77, quiet=True),
    ),
    (
        contract.stress_client_command, stress_client.build_parser,
        dict(op="download", size=1048576, name="n.bin", clients=3, pool="process", host="h", protocol="json",
             port=6000, timeout=9.5, files="/f", keep="/k", csv="/c.csv", cell="4", server_workers="5",
             server_pool="thread", plain=True, distinct_names=True, quiet=True),
    ),
    (  # --file instead of --size: the two are exclusive
        contract.stress_client_command, stress_client.build_parser,
        dict(op="upload", file="/photo.jpg", host="h"),
    ),
    (
        contract.udp_sender_command, udp_sender.build_parser,
        dict(model="asyncio", dest=["127.0.0.1:9001", "127.0.0.1:9002"], port=9000, broadcast="10.0.0.255",
             file="/x.png", payload=100, framing="raw", rate=250.5, repeats=3, transfer_id=41, timeout=7.5,
             csv="/s.csv", cell="2", quiet=True),
    ),
    (
        contract.udp_receiver_command, udp_receiver.build_parser,
        dict(host="127.0.0.1", port=9000, framing="raw", expect="sample", payload=100, transfers=2, first_wait=4.5,
             idle_timeout=2.5, max_time=99.5, rcvbuf="4MiB", reuse_port=True, out="/o.png", csv="/r.csv", cell="3",
             label="alpine-3", quiet=True),
    ),
    (contract.genfile_command, genfile.build_parser, dict(size=["1MiB", "2048"], dir="/d", verify=True)),
    (contract.probe_command, probe.build_parser, dict(host="10.0.0.1", port=8000, wait=2.5)),
    (
        contract.conformance_command, conformance.build_parser,
        dict(host="172.16.16.101", port=6666, protocol="json", workers=50, only=["roundtrip.1B", "bad.long-name"],
             timeout=90.5, json_output=True),
    ),
]  # fmt: skip


def parse(parser: argparse.ArgumentParser, command: list[str]) -> argparse.Namespace:
    assert command[:2] == ["python", "-m"]
    return parser.parse_args(command[3:])


def option_dests(parser: argparse.ArgumentParser) -> set[str]:
    """The names of every option of ``parser`` and of its subcommands (``--json-port``: ``json_port``)."""
    dests = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                dests |= option_dests(sub)
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            dests.add(action.dest)
    return dests


def keywords(builder: Callable[..., list[str]]) -> set[str]:
    parameters = inspect.signature(builder).parameters.values()
    return {p.name for p in parameters if p.kind == inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize(("builder", "build_parser", "options"), FULL, ids=lambda x: getattr(x, "__name__", ""))
def test_every_option_comes_back_as_given(builder, build_parser, options):
    command = builder(**options)
    assert command[2] == f"app.{build_parser.__module__.removeprefix('app.').removesuffix('.cli')}"
    args = parse(build_parser(), command)
    assert {key: getattr(args, key) for key in options} == options


def test_the_test_above_sets_every_option_of_each_builder():
    for builder, _, _ in FULL:
        assert set().union(*(options for b, _, options in FULL if b is builder)) == keywords(builder)


BUILDERS = [
    (contract.fileserver_command, fileserver_cli.build_parser),
    (contract.stress_client_command, stress_client.build_parser),
    (contract.file_client_command, file_client.build_parser),
    (contract.udp_sender_command, udp_sender.build_parser),
    (contract.udp_receiver_command, udp_receiver.build_parser),
    (contract.genfile_command, genfile.build_parser),
    (contract.probe_command, probe.build_parser),
    (contract.speedtest_command, speedtest.build_parser),
    (contract.conformance_command, conformance.build_parser),
]


@pytest.mark.parametrize(("builder", "build_parser"), BUILDERS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_option_of_a_program_has_its_keyword_in_the_builder(builder, build_parser):
    assert option_dests(build_parser()) == keywords(builder)


def test_without_optional_arguments_only_the_required_options_are_written():
    assert contract.fileserver_command() == ["python", "-m", "app.fileserver"]
    assert contract.stress_client_command(op="upload", size=1024) == [
        "python", "-m", "app.stress_client", "--op", "upload", "--size", "1024",
    ]  # fmt: skip
    assert contract.stress_client_command(op="upload", file="a.bin")[3:] == ["--op", "upload", "--file", "a.bin"]
    assert contract.udp_sender_command() == ["python", "-m", "app.udp_sender"]
    assert contract.udp_receiver_command() == ["python", "-m", "app.udp_receiver"]
    assert contract.genfile_command(size="10MiB") == ["python", "-m", "app.genfile", "--size", "10MiB"]
    assert contract.probe_command() == ["python", "-m", "app.probe"]
    assert contract.speedtest_command("codec") == ["python", "-m", "app.speedtest", "codec"]
    assert contract.speedtest_command("sink") == ["python", "-m", "app.speedtest", "sink"]
    assert contract.speedtest_command("send", host="h") == ["python", "-m", "app.speedtest", "send", "--host", "h"]
    assert contract.file_client_command("list") == ["python", "-m", "app.file_client", "list"]
    assert contract.file_client_command("get", "a.bin") == ["python", "-m", "app.file_client", "get", "a.bin"]
    assert contract.conformance_command(host="h", port=8889, protocol="stream") == [
        "python", "-m", "app.conformance", "--host", "h", "--port", "8889", "--protocol", "stream",
    ]  # fmt: skip
    minimal = [
        (contract.fileserver_command(), fileserver_cli.build_parser),
        (contract.stress_client_command(op="upload", size=1024), stress_client.build_parser),
        (contract.file_client_command("list"), file_client.build_parser),
        (contract.udp_sender_command(), udp_sender.build_parser),
        (contract.udp_receiver_command(), udp_receiver.build_parser),
        (contract.genfile_command(size=1024), genfile.build_parser),
        (contract.probe_command(), probe.build_parser),
        (contract.speedtest_command("send", host="h"), speedtest.build_parser),
        (contract.conformance_command(host="h", port=8889, protocol="stream"), conformance.build_parser),
    ]
    for command, build_parser in minimal:  # each program accepts its minimal command line
        parse(build_parser(), command)


def test_numbers_are_written_as_the_host_writes_them():
    command = contract.udp_receiver_command(idle_timeout=5.0, max_time=34.9484, first_wait=0.25, payload=1)
    assert command[3:] == ["--payload", "1", "--first-wait", "0.25", "--idle-timeout", "5", "--max-time", "34.9484"]
    assert contract.fileserver_command(min_upload_rate="64KiB", max_upload=1 << 30)[3:] == [
        "--min-upload-rate", "64KiB", "--max-upload", "1073741824",
    ]  # fmt: skip
    assert parse(
        fileserver_cli.build_parser(), contract.fileserver_command(min_upload_rate="64KiB")
    ).min_upload_rate == (65536)
    assert contract.genfile_command(size=4096) == ["python", "-m", "app.genfile", "--size", "4096"]


@pytest.mark.parametrize(
    ("command", "target", "options", "expected"),
    [
        ("list", None, {}, {}),
        ("get", "a.bin", {"dir": "/d", "force": True}, {"name": "a.bin", "dir": "/d", "force": True}),
        ("upload", "/p.bin", {"name": "q.bin"}, {"file": "/p.bin", "name": "q.bin"}),
        ("delete", "a.bin", {}, {"name": "a.bin"}),
    ],
)
def test_file_client_commands_come_back_as_given(command, target, options, expected):
    connection = {"host": "10.0.0.1", "protocol": "json", "port": 7000, "timeout": 5.5}
    line = contract.file_client_command(command, target, **connection, **options)
    args = parse(file_client.build_parser(), line)
    assert args.command == command
    assert {key: getattr(args, key) for key in {**connection, **expected}} == {**connection, **expected}


@pytest.mark.parametrize(
    ("mode", "options"),
    [("codec", {}), ("sink", {"port": 5300, "seconds": 30.5}), ("send", {"host": "h", "port": 5300, "bytes": 2048,
                                                                         "seconds": 1.5})],
)  # fmt: skip
def test_speedtest_commands_come_back_as_given(mode, options):
    args = parse(speedtest.build_parser(), contract.speedtest_command(mode, **options))
    assert args.mode == mode
    assert {key: getattr(args, key) for key in options} == options


def test_speedtest_options_are_those_of_the_mode():
    for mode, sub in speedtest.build_parser()._subparsers._group_actions[0].choices.items():
        for option in keywords(contract.speedtest_command):
            given = {"host": "h"} if mode == "send" else {}
            given[option] = "h" if option == "host" else 1
            if option in option_dests(sub):
                parse(speedtest.build_parser(), contract.speedtest_command(mode, **given))
            else:
                with pytest.raises(ValueError, match=f"{mode} takes no {option}"):
                    contract.speedtest_command(mode, **given)


def test_builders_refuse_what_the_program_would_refuse():
    with pytest.raises(ValueError, match="exactly one of size and file"):
        contract.stress_client_command(op="upload")
    with pytest.raises(ValueError, match="exactly one of size and file"):
        contract.stress_client_command(op="upload", size=1, file="a")
    with pytest.raises(ValueError, match="send needs a host"):
        contract.speedtest_command("send")
    with pytest.raises(ValueError, match="unknown mode"):
        contract.speedtest_command("iperf")
    with pytest.raises(ValueError, match="list takes no target"):
        contract.file_client_command("list", "a.bin")
    with pytest.raises(ValueError, match="get takes NAME"):
        contract.file_client_command("get")
    with pytest.raises(ValueError, match="options of get"):
        contract.file_client_command("upload", "a.bin", force=True)
    with pytest.raises(ValueError, match="option of upload"):
        contract.file_client_command("get", "a.bin", name="b.bin")


def pairs(command: list[str]) -> Counter[tuple[str, str | None]]:
    """A command line's options as (option, value) pairs, in any order (flags have None)."""
    found: Counter[tuple[str, str | None]] = Counter()
    words = command[3:]
    for index, word in enumerate(words):
        if word.startswith("--"):
            value = words[index + 1] if index + 1 < len(words) and not words[index + 1].startswith("--") else None
            found[(word, value)] += 1
    return found


def test_the_builders_write_what_the_host_wrote_by_hand():
    # The host's lists before the contract (orchestrator/runner.py, udp_runner.py), for one cell.
    stress = [
        "python", "-m", "app.stress_client", "--op", "upload", "--size", "10485760",
        "--clients", "5", "--pool", "thread",
        "--host", "172.16.16.101", "--port", "6666", "--timeout", "600",
        "--csv", "/results/r/c/clients.csv", "--cell", "3",
        "--server-workers", "5", "--server-pool", "process", "--quiet", "--protocol", "json",
    ]  # fmt: skip
    built = contract.stress_client_command(
        op="upload", size=10485760, clients=5, pool="thread", host="172.16.16.101", port=6666, timeout=600.0,
        csv="/results/r/c/clients.csv", cell=3, server_workers=5, server_pool="process", quiet=True, protocol="json",
    )  # fmt: skip
    assert built[:3] == stress[:3] and pairs(built) == pairs(stress)
    sender = [
        "python", "-m", "app.udp_sender", "--model", "thread", "--port", "8888",
        "--broadcast", "172.16.16.255", "--payload", "1", "--framing", "framed",
        "--rate", "0", "--transfer-id", "7", "--timeout", "79.484", "--csv", "/r/sender.csv", "--cell", "7", "--quiet",
        "--dest", "172.16.16.101", "--dest", "172.16.16.103",
    ]  # fmt: skip
    built = contract.udp_sender_command(
        model="thread", port=contract.UDP_PORT, broadcast="172.16.16.255", payload=1, framing="framed", rate=0.0,
        transfer_id=7, timeout=79.484, csv="/r/sender.csv", cell=7, quiet=True,
        dest=[f"172.16.16.{octet}" for octet in contract.RECEIVER_NODES.values()],
    )  # fmt: skip
    assert built[:3] == sender[:3] and pairs(built) == pairs(sender)
    probe_line = ["python", "-m", "app.probe", "--host", "172.16.16.101", "--port", "8889", "--wait", "60"]
    assert contract.probe_command(host="172.16.16.101", port=contract.STREAM_PORT, wait=60.0) == probe_line


def test_the_programs_default_to_the_contracts_ports_and_nodes():
    assert fileserver_cli.build_parser().get_default("port") == contract.STREAM_PORT
    assert probe.build_parser().get_default("port") == contract.STREAM_PORT
    assert udp_sender.build_parser().get_default("port") == contract.UDP_PORT
    assert udp_receiver.build_parser().get_default("port") == contract.UDP_PORT
    for sub in speedtest.build_parser()._subparsers._group_actions[0].choices.values():
        assert sub.get_default("port") in (None, contract.SPEEDTEST_PORT)
    assert stress_client.build_parser().get_default("host") == contract.SERVER_NODE
    assert file_client.build_parser().get_default("host") == contract.SERVER_NODE
    assert tuple(contract.RECEIVER_NODES) == udp_sender.DEFAULT_DESTINATIONS
    assert udp_framing.HEADER.size == contract.UDP_HEADER_SIZE


def test_the_topology_is_consistent():
    assert contract.NODES == ("alpine-1", "alpine-2", "alpine-3")
    assert {contract.SERVER_NODE, contract.CLIENT_NODE, contract.SENDER_NODE} <= set(contract.NODES)
    assert contract.RECEIVER_NODES.items() <= contract.NODE_OCTETS.items()
    assert contract.SENDER_NODE not in contract.RECEIVER_NODES


def test_the_contract_imports_no_node_program():
    tree = ast.parse((ROOT / "app" / "contract.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name for name in imported if name == "app" or name.startswith("app.")} <= {"app.sizes"}
    # And at run time: importing it loads no other app module.
    script = "import sys, app.contract; print(*(name for name in sys.modules if name.startswith('app')))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert set(loaded) <= {"app", "app.contract", "app.sizes"}


def test_the_conformance_command_replays_one_case_as_its_report_says():
    # The suite's "reproduce" command is this builder's line, so a student can paste it.
    line = contract.conformance_command(host="alpine-1", port=8889, protocol="stream", only=["roundtrip.1B"])
    assert line == [
        "python", "-m", "app.conformance", "--host", "alpine-1", "--port", "8889", "--protocol", "stream",
        "--only", "roundtrip.1B",
    ]  # fmt: skip
    args = parse(conformance.build_parser(), [*line, "--only", "bad.long-name", "--json"])
    assert (args.only, args.json_output) == (["roundtrip.1B", "bad.long-name"], True)
    assert conformance.build_parser().get_default("host") == contract.SERVER_NODE
