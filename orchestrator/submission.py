"""A student's submission: a folder with their code and its descriptor, ``progjar.yaml`` (pure, but for reading it).

    name: my-ets-server
    server:
      command: python3 server.py --port {port} --workers {workers} --pool {pool} --storage {storage}
      protocol: stream          # stream | json
      pools: [thread, process]  # the pool modes it supports
    client:                     # optional: the student's own stress client
      command: python3 client.py --host {host} --port {port} --op {op} --file {file} --clients {clients}

Real submissions are less tidy, so a server may instead give one command per
pool mode (``commands: {thread: python3 thread_pool.py, process: python3
processing_pool.py}``), and may declare a fixed ``port`` and ``storage``
(a folder relative to the submission) when its command has no placeholder
for them, and the fixed ``workers`` count of a server whose worker count is
not a parameter (it is then measured at that count). The lab fills the
placeholders; anything else in braces is refused, as are unknown keys.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from app.contract import PROTOCOL_PORTS
from orchestrator.errors import UsageError

DESCRIPTOR = "progjar.yaml"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
POOLS = ("thread", "process")
SERVER_PLACEHOLDERS = {"port", "workers", "pool", "storage"}
CLIENT_PLACEHOLDERS = {"host", "port", "op", "file", "name", "clients", "size"}
SERVER_KEYS = {"command", "commands", "protocol", "pools", "port", "storage", "workers"}
CLIENT_KEYS = {"command"}
TOP_KEYS = {"name", "server", "client", "description"}
SKIPPED = {"__pycache__", ".git", ".venv", "venv"}  # never copied into the node: caches and environments
MAX_FILES = 2000  # files a submission folder may hold
MAX_BYTES = 50 * 2**20  # and bytes in all: a submission is source code, not data


class DescriptorError(UsageError):
    """A submission's descriptor is missing or invalid (exit code 2)."""


@dataclass(frozen=True)
class ServerSpec:
    commands: Mapping[str, str]  # pool mode -> command (with placeholders)
    protocol: str
    port: int  # where it listens: the placeholder's value, or the fixed port it declares
    storage: str | None = None  # a fixed folder relative to the submission, when the command has no {storage}
    workers: int | None = None  # a fixed worker count, when the command has no {workers}

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(self.commands)

    def takes(self, placeholder: str) -> bool:
        return all(placeholder in placeholders(command) for command in self.commands.values())


@dataclass(frozen=True)
class Submission:
    name: str
    folder: Path
    server: ServerSpec | None
    client: str | None = None  # the client's command, with placeholders
    description: str = ""

    def server_command(self, pool: str, workers: int, storage: str) -> str:
        """The server's command for one pool mode and worker count, its placeholders filled."""
        assert self.server is not None
        return fill(self.server.commands[pool], port=self.server.port, workers=workers, pool=pool, storage=storage)


def placeholders(command: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(command) if name is not None}


def fill(command: str, **values: object) -> str:
    """``command`` with its placeholders replaced (only those it has; each value as plain text)."""
    return command.format(**{name: values[name] for name in placeholders(command)})


def _fail(where: str, message: str) -> DescriptorError:
    return DescriptorError(f"{where}: {message}")


def _command(where: str, value: Any, allowed: set[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be a command line (text)")
    try:
        found = placeholders(value)
    except ValueError as exc:
        raise _fail(where, f"{exc} (write a literal brace as {{{{ or }}}})") from None
    unknown = {name for name in found if name not in allowed}
    if unknown or any(not name for name in found):
        names = ", ".join(sorted(f"{{{n}}}" for n in unknown)) or "{}"
        raise _fail(where, f"unknown placeholder {names}; known: {', '.join(f'{{{n}}}' for n in sorted(allowed))}")
    return value.strip()


def _keys(where: str, section: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise _fail(where, "must be a mapping")
    unknown = set(section) - known
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(sorted(known))}")
    return section


def _positive(where: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise _fail(where, f"{value!r} is not a whole number from 1 to {limit}")
    return value


def parse_server(section: Any, where: str) -> ServerSpec:
    section = _keys(where, section, SERVER_KEYS)
    if ("command" in section) == ("commands" in section):
        raise _fail(where, "give either command (one for every pool mode) or commands (one per pool mode)")
    protocol = section.get("protocol")
    if protocol not in PROTOCOL_PORTS:
        raise _fail(f"{where}: protocol", f"{protocol!r} is not one of {', '.join(PROTOCOL_PORTS)}")
    if "commands" in section:
        given = _keys(f"{where}: commands", section["commands"], set(POOLS))
        if not given:
            raise _fail(f"{where}: commands", "name at least one pool mode: thread, process")
        commands = {pool: _command(f"{where}: commands: {pool}", c, SERVER_PLACEHOLDERS) for pool, c in given.items()}
        if "pools" in section and sorted(section["pools"] or []) != sorted(commands):
            raise _fail(f"{where}: pools", "with commands, the pool modes are the commands' keys; leave pools out")
    else:
        command = _command(f"{where}: command", section["command"], SERVER_PLACEHOLDERS)
        pools = section.get("pools", ["thread"])
        pools = pools if isinstance(pools, list) else [pools]
        if not pools or any(p not in POOLS for p in pools) or len(set(pools)) != len(pools):
            raise _fail(f"{where}: pools", f"{section.get('pools')!r}: list one or both of thread, process")
        if len(pools) > 1 and "pool" not in placeholders(command):
            raise _fail(f"{where}: command", "serves two pool modes but has no {pool}: give commands per pool mode")
        commands = dict.fromkeys(pools, command)
    every = set.intersection(*(placeholders(c) for c in commands.values()))
    some = set.union(*(placeholders(c) for c in commands.values()))
    if some != every:
        raise _fail(where, f"the pool modes' commands must take the same placeholders ({', '.join(sorted(some))})")
    port = PROTOCOL_PORTS[protocol]
    if "port" in section:
        port = _positive(f"{where}: port", section["port"], 65535)
        if "port" in every:
            raise _fail(f"{where}: port", "the command has {port}: the lab chooses the port; leave port out")
    storage = section.get("storage")
    if "storage" in every and storage is not None:
        raise _fail(f"{where}: storage", "the command has {storage}: the lab chooses the folder; leave storage out")
    if "storage" not in every:
        if not isinstance(storage, str) or not storage.strip():
            raise _fail(where, "the command has no {storage}: say where it stores files (storage: files)")
        relative = PurePosixPath(storage)
        if relative.is_absolute() or ".." in relative.parts:
            raise _fail(f"{where}: storage", f"{storage!r} must be a folder inside the submission, like files")
    workers = section.get("workers")
    if "workers" in every and workers is not None:
        raise _fail(f"{where}: workers", "the command has {workers}: the lab chooses the count; leave workers out")
    if "workers" not in every:
        if workers is None:
            raise _fail(where, "the command has no {workers}: say how many workers it has (workers: 5)")
        workers = _positive(f"{where}: workers", workers, 500)
    return ServerSpec(commands, protocol, port, storage, workers)


def parse_descriptor(data: Any, folder: Path, where: str = DESCRIPTOR) -> Submission:
    """Validate a parsed descriptor; every problem is one DescriptorError naming the key."""
    section = _keys(where, data, TOP_KEYS)
    name = section.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(f"{where}: name", f"{name!r}: 1-64 letters, digits, '.', '_' or '-', a letter or digit first")
    server = parse_server(section["server"], f"{where}: server") if "server" in section else None
    client = None
    if "client" in section:
        client = _command(f"{where}: client: command", _keys(f"{where}: client", section["client"], CLIENT_KEYS)
                          .get("command"), CLIENT_PLACEHOLDERS)  # fmt: skip
    if server is None and client is None:
        raise _fail(where, "missing key 'server' (and no client either): nothing to run")
    return Submission(name, folder, server, client, str(section.get("description", "")))


def load_submission(folder: Path) -> Submission:
    """The submission in ``folder``: its descriptor read and validated, its size checked."""
    if not folder.is_dir():
        raise DescriptorError(f"{folder}: no such folder (a submission is a folder with a {DESCRIPTOR})")
    path = folder / DESCRIPTOR
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DescriptorError(f"{folder}: no {DESCRIPTOR} (see examples/ for one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DescriptorError(f"{path}: cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise DescriptorError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    submission = parse_descriptor(data, folder.resolve(), str(path))
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and not SKIPPED & set(p.parts)]
    size = sum(p.stat().st_size for p in files)
    if len(files) > MAX_FILES or size > MAX_BYTES:
        raise DescriptorError(
            f"{folder}: {len(files)} files, {size / 2**20:.1f} MiB: a submission is source code "
            f"(at most {MAX_FILES} files and {MAX_BYTES // 2**20} MiB)"
        )
    return submission
