"""The one contract between the host (``orchestrator/``) and the programs that run in the nodes.

Everything both sides must agree on lives here, once: the ports, which node
plays which part, the columns of the CSV files the programs write, the
limits the programs enforce (so the host refuses a matrix beyond them before
any cell runs), and how to call each program. The programs import these
names from here instead of defining them; the host imports this module
alone, without loading any node program.

So this module imports nothing from ``app`` but ``app.sizes``, and holds
plain data and pure functions only.

The command builders (``fileserver_command`` ...) write a program's command
line from keyword arguments named like its options: ``json_port=6666`` is
``--json-port 6666``. An argument left as None is not written, so the
program's own default applies; a flag (``quiet=True``) is written bare. Each
program's ``build_parser()`` stays the only definition of its options, and
``tests/unit/test_contract.py`` parses every builder's output with it, so the
two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.sizes import format_size

# --- ports -------------------------------------------------------------------------

STREAM_PORT = 8889  # the file server's streaming dialect (app/protocol.py)
JSON_PORT = 6666  # the course's JSON protocol (app/json_protocol.py)
UDP_PORT = 8888  # the UDP experiment's receivers
SPEEDTEST_PORT = 5201  # the benchmark's raw TCP sink (app/speedtest.py)
PROTOCOL_PORTS = {"stream": STREAM_PORT, "json": JSON_PORT}

# --- the topology the programs default to ------------------------------------------
# Compose's DNS finds the nodes by name on whatever subnet the lab uses;
# NODE_OCTETS gives each one's last address byte within that subnet.

NODE_OCTETS = {"alpine-1": 101, "alpine-2": 102, "alpine-3": 103}
NODES = tuple(NODE_OCTETS)
SERVER_NODE = "alpine-1"  # the file server
CLIENT_NODE = "alpine-2"  # the stress and file clients
SENDER_NODE = CLIENT_NODE  # the UDP sender
RECEIVER_NODES = {"alpine-1": 101, "alpine-3": 103}  # the UDP receivers, with their octets
NODE_USER = "progjar"  # the unprivileged user the programs run as (images/Dockerfile)

# --- the CSV columns the programs write --------------------------------------------

# app.fileserver --outcomes: one row per request (or per connection the waiting room cuts).
OUTCOME_FIELDS = (
    "start", "end", "seconds", "worker", "peer", "peer_port", "command",
    "filename", "bytes", "wire_bytes", "status", "error", "sha256", "peak_rss_kib",
)  # fmt: skip

# app.stress_client --csv: one row per client.
CLIENT_FIELDS = (
    "cell", "client", "op", "volume_bytes", "clients", "client_pool", "server_workers",
    "server_pool", "start", "end", "seconds", "bytes", "wire_bytes", "throughput_bps",
    "status", "error", "local_port", "sha256", "protocol", "peak_rss_kib",
)  # fmt: skip

# app.udp_sender --csv: one row per destination and repeat.
UDP_SENDER_FIELDS = (
    "cell", "repeat", "model", "framing", "payload", "rate", "transfer_id", "destination", "port",
    "datagrams", "end_markers", "bytes", "wire_bytes", "file_bytes", "file_sha256", "start", "end", "seconds",
    "run_start", "run_seconds", "status", "error",
)  # fmt: skip

# app.udp_receiver --csv: one row per transfer.
UDP_RECEIVER_FIELDS = (
    "cell", "receiver", "framing", "transfer_id", "sender", "expected_datagrams", "datagrams",
    "unique_datagrams", "lost", "duplicates", "out_of_order", "end_markers", "malformed", "bytes",
    "expected_bytes", "expected_sha256", "sha256", "intact", "status", "stopped", "start", "end",
    "seconds", "idle_timeout", "rcvbuf", "kernel_drops", "error",
)  # fmt: skip

# --- limits the programs enforce and the host checks against -----------------------

FILES_DIR = "/data/files"  # the nodes' cache of generated test files (a volume shared by all three)


def generated_name(size: int) -> str:
    """The name of the lab's generated test file of ``size`` bytes, e.g. ``file_10MiB.bin`` (app/genfile.py)."""
    return f"file_{format_size(size)}.bin"


def distinct_name(name: str, client: int) -> str:
    """The name client ``client`` uploads under with the stress client's ``--distinct-names``: ``003-<name>``."""
    return f"{client:03d}-{name}"


SAMPLE_IMAGE_SIZE = 12_371  # bytes of app.sample_image's PNG, the course report's test image

UDP_HEADER_SIZE = 16  # bytes of a framed datagram's header (app/udp_framing.py)
MAX_UDP_PAYLOAD = 65_507  # 65,535 - 8 (UDP header) - 20 (IPv4 header)
MAX_FRAMED_PAYLOAD = MAX_UDP_PAYLOAD - UDP_HEADER_SIZE  # 65,491 file bytes in one framed datagram

MAX_RATE = 10_000_000  # sender --rate: datagrams per second per destination
MAX_SECONDS = 86_400  # sender --timeout and receiver --max-time, --first-wait: one day
MAX_IDLE_TIMEOUT = 3_600  # receiver --idle-timeout: an hour without a datagram is long enough to give up
START_WAIT = 30.0  # seconds receivers may take to start listening before the sender starts
SEND_SLACK = 30.0  # seconds added to every send budget: starting Python, forking the pools
UNPACED_PACE = 5_000  # datagrams per second assumed of an unpaced sender (a slow machine) for its budget


def max_payload(framing: str) -> int:
    """The most file bytes one datagram can carry in ``framing`` ("framed" or "raw")."""
    return MAX_FRAMED_PAYLOAD if framing == "framed" else MAX_UDP_PAYLOAD


def count_datagrams(size: int, payload: int) -> int:
    """Data datagrams needed for ``size`` bytes, ``payload`` bytes each (0 for an empty file)."""
    return -(-size // payload)


def transfer_time_limits(size: int, payload: int, rate: float, idle_timeout: float) -> tuple[float, float]:
    """(sender timeout, receiver max-time) in seconds for one transfer of ``size`` bytes: generous, but bounded.

    The sender gets twice the time its datagrams should take, at ``rate`` per
    second (or ``UNPACED_PACE`` when unpaced, ``rate`` 0), plus ``SEND_SLACK``.
    A receiver starts first and waits ``idle_timeout`` after the last datagram,
    so it gets the sender's time plus both of those.
    """
    datagrams = count_datagrams(size, payload)
    expected = datagrams / (rate if rate > 0 else UNPACED_PACE)
    sender = SEND_SLACK + 2 * expected
    return sender, sender + idle_timeout + START_WAIT


# --- command lines -----------------------------------------------------------------
# Options are written in the order of each program's --help.


def _text(value: object) -> str:
    # Floats as the host has always written them: 2.5 -> "2.5", 60.0 -> "60" (6 significant digits).
    return f"{value:g}" if isinstance(value, float) else str(value)


def _options(**options: object) -> list[str]:
    """``--option value`` for each option given, in the order given."""
    words: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue  # not given: the program's default
        if value is True:
            words.append(flag)
        elif isinstance(value, str | int | float):
            words += [flag, _text(value)]
        else:  # a repeatable option: once per value
            assert isinstance(value, Iterable)
            for item in value:
                words += [flag, _text(item)]
    return words


def _command(program: str, *arguments: str, **options: object) -> list[str]:
    """``python -m app.<program>``, its positional ``arguments``, then its options."""
    return ["python", "-m", f"app.{program}", *arguments, *_options(**options)]


def fileserver_command(
    *,
    pool: str | None = None,
    workers: int | None = None,
    host: str | None = None,
    port: int | None = None,
    json_port: int | None = None,
    storage: str | None = None,
    outcomes: str | None = None,
    timeout: float | None = None,
    header_timeout: float | None = None,
    min_upload_rate: int | str | None = None,
    rate_window: float | None = None,
    max_upload: int | str | None = None,
    max_waiting: int | None = None,
    quiet: bool = False,
) -> list[str]:
    """``python -m app.fileserver``; sizes as bytes or as text like ``"64KiB"``."""
    return _command(
        "fileserver", pool=pool, workers=workers, host=host, port=port, json_port=json_port, storage=storage,
        outcomes=outcomes, timeout=timeout, header_timeout=header_timeout, min_upload_rate=min_upload_rate,
        rate_window=rate_window, max_upload=max_upload, max_waiting=max_waiting, quiet=quiet,
    )  # fmt: skip


def stress_client_command(
    *,
    op: str,
    size: int | str | None = None,
    file: str | None = None,
    name: str | None = None,
    clients: int | None = None,
    pool: str | None = None,
    host: str | None = None,
    protocol: str | None = None,
    port: int | None = None,
    timeout: float | None = None,
    files: str | None = None,
    keep: str | None = None,
    csv: str | None = None,
    cell: int | str | None = None,
    server_workers: int | str | None = None,
    server_pool: str | None = None,
    plain: bool = False,
    distinct_names: bool = False,
    quiet: bool = False,
) -> list[str]:
    """``python -m app.stress_client``: ``op`` and exactly one of ``size`` and ``file`` are required."""
    if (size is None) == (file is None):
        raise ValueError("stress_client_command: give exactly one of size and file")
    return _command(
        "stress_client", op=op, size=size, file=file, name=name, clients=clients, pool=pool, host=host,
        protocol=protocol, port=port, timeout=timeout, files=files, keep=keep, csv=csv, cell=cell,
        server_workers=server_workers, server_pool=server_pool, plain=plain, distinct_names=distinct_names,
        quiet=quiet,
    )  # fmt: skip


_FILE_CLIENT_TARGETS = {"list": None, "get": "NAME", "upload": "FILE", "delete": "NAME"}


def file_client_command(
    command: str,
    target: str | None = None,
    *,
    host: str | None = None,
    protocol: str | None = None,
    port: int | None = None,
    timeout: float | None = None,
    dir: str | None = None,
    force: bool = False,
    name: str | None = None,
) -> list[str]:
    """``python -m app.file_client [connection options] COMMAND [TARGET] [its options]``.

    ``target`` is the NAME of ``get`` and ``delete``, the FILE of ``upload``,
    nothing for ``list``; ``dir`` and ``force`` belong to ``get``, ``name`` to ``upload``.
    """
    if command not in _FILE_CLIENT_TARGETS:
        raise ValueError(f"file_client_command: unknown command {command!r}")
    if (target is None) != (_FILE_CLIENT_TARGETS[command] is None):
        raise ValueError(f"file_client_command: {command} takes {_FILE_CLIENT_TARGETS[command] or 'no target'}")
    if command != "get" and (dir is not None or force):
        raise ValueError("file_client_command: dir and force are options of get")
    if command != "upload" and name is not None:
        raise ValueError("file_client_command: name is an option of upload")
    # The connection options go before the command, the command's own after it.
    return [
        *_command("file_client", host=host, protocol=protocol, port=port, timeout=timeout),
        command,
        *([] if target is None else [target]),
        *_options(dir=dir, force=force, name=name),
    ]


def udp_sender_command(
    *,
    model: str | None = None,
    dest: Iterable[str] | None = None,
    port: int | None = None,
    broadcast: str | None = None,
    file: str | None = None,
    payload: int | None = None,
    framing: str | None = None,
    rate: float | None = None,
    repeats: int | None = None,
    transfer_id: int | None = None,
    timeout: float | None = None,
    csv: str | None = None,
    cell: int | str | None = None,
    quiet: bool = False,
) -> list[str]:
    """``python -m app.udp_sender``; ``dest`` is one ``--dest`` per receiver (``"host"`` or ``"host:port"``)."""
    return _command(
        "udp_sender", model=model, dest=dest, port=port, broadcast=broadcast, file=file, payload=payload,
        framing=framing, rate=rate, repeats=repeats, transfer_id=transfer_id, timeout=timeout, csv=csv, cell=cell,
        quiet=quiet,
    )  # fmt: skip


def udp_receiver_command(
    *,
    host: str | None = None,
    port: int | None = None,
    framing: str | None = None,
    expect: str | None = None,
    payload: int | None = None,
    transfers: int | None = None,
    first_wait: float | None = None,
    idle_timeout: float | None = None,
    max_time: float | None = None,
    rcvbuf: int | str | None = None,
    reuse_port: bool = False,
    out: str | None = None,
    csv: str | None = None,
    cell: int | str | None = None,
    label: str | None = None,
    quiet: bool = False,
) -> list[str]:
    """``python -m app.udp_receiver``; ``rcvbuf`` as bytes or as text like ``"4MiB"``."""
    return _command(
        "udp_receiver", host=host, port=port, framing=framing, expect=expect, payload=payload, transfers=transfers,
        first_wait=first_wait, idle_timeout=idle_timeout, max_time=max_time, rcvbuf=rcvbuf, reuse_port=reuse_port,
        out=out, csv=csv, cell=cell, label=label, quiet=quiet,
    )  # fmt: skip


def conformance_command(
    *,
    host: str,
    port: int,
    protocol: str,
    workers: int | None = None,
    only: Iterable[str] | None = None,
    timeout: float | None = None,
    json_output: bool = False,
) -> list[str]:
    """``python -m app.conformance``: the conformance suite against a server; ``only`` is one ``--only`` per case id.

    ``json_output`` is the program's ``--json`` (one JSON object per case and line).
    """
    return _command(
        "conformance", host=host, port=port, protocol=protocol, workers=workers, only=only, timeout=timeout,
        json=json_output,
    )  # fmt: skip


def genfile_command(
    *, size: int | str | Iterable[int | str], dir: str | None = None, verify: bool = False
) -> list[str]:
    """``python -m app.genfile``: one ``--size`` per size (bytes, or text like ``"10MiB"``)."""
    return _command("genfile", size=size, dir=dir, verify=verify)


def probe_command(*, host: str | None = None, port: int | None = None, wait: float | None = None) -> list[str]:
    """``python -m app.probe``: succeeds once ``host:port`` accepts a connection, within ``wait`` seconds."""
    return _command("probe", host=host, port=port, wait=wait)


_SPEEDTEST_OPTIONS = {"codec": (), "sink": ("port", "seconds"), "send": ("host", "port", "bytes", "seconds")}


def speedtest_command(
    mode: str,
    *,
    host: str | None = None,
    port: int | None = None,
    bytes: int | str | None = None,
    seconds: float | None = None,
) -> list[str]:
    """``python -m app.speedtest MODE``: ``sink`` takes port and seconds; ``send`` needs a host, takes
    port, bytes (a size) and seconds; ``codec`` takes nothing."""
    options = {"host": host, "port": port, "bytes": bytes, "seconds": seconds}
    if mode not in _SPEEDTEST_OPTIONS:
        raise ValueError(f"speedtest_command: unknown mode {mode!r}")
    extra = [name for name, value in options.items() if value is not None and name not in _SPEEDTEST_OPTIONS[mode]]
    if extra:
        raise ValueError(f"speedtest_command: {mode} takes no {', '.join(extra)}")
    if mode == "send" and host is None:
        raise ValueError("speedtest_command: send needs a host")
    return _command("speedtest", mode, **options)
