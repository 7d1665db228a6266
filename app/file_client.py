"""A plain file client for people: list, download, upload and delete files on the lab's server.

    python -m app.file_client list                          # --protocol json only
    python -m app.file_client get photo.jpg --dir downloads
    python -m app.file_client upload ./photo.jpg
    python -m app.file_client delete photo.jpg              # --protocol json only
    python -m app.file_client --protocol json get photo.jpg

It speaks either protocol of the file server: the streaming dialect
(``--protocol stream``, port 8889, the default), which has only UPLOAD and
GET, or the course's JSON protocol (``--protocol json``, port 6666), which
also has LIST and DELETE. The wire code is the stress client's (one place
per protocol); this program adds what a person needs around it:

* it checks what it can: an upload's SHA-256 travels in the stream header
  (the server refuses bytes that do not match) or comes back in the JSON
  answer (compared here); a download is hashed while it arrives, and in the
  streaming dialect must have exactly the size the server announced;
* a download is written to a hidden temporary file in ``--dir`` and renamed
  into place only when complete, so a failed download leaves no partial file,
  and it never replaces an existing file unless ``--force`` is given;
* memory does not grow with the file: every transfer goes in pieces;
* ``--timeout`` bounds the whole command, not each network operation.

Exit codes: 0 done, 1 the transfer broke (the connection closed in the
middle, an answer that is not the protocol's), 2 bad usage (an option, a
name, a local file, a file that exists), 3 the server answered ERROR,
4 the server could not be reached, 5 timeout, 6 checksum mismatch.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from app import json_protocol, protocol
from app.contract import PROTOCOL_PORTS, SERVER_NODE
from app.genfile import sha256_of
from app.stress_client import (
    TRANSFERS,
    MismatchError,
    ServerError,
    Transfer,
    TransferError,
    check_json_status,
    check_name,
    json_get,
    read_json_answer,
    stream_get,
    until_deadline,
)

EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_SERVER, EXIT_UNREACHABLE, EXIT_TIMEOUT, EXIT_MISMATCH = 0, 1, 2, 3, 4, 5, 6


class UsageError(Exception):
    """Bad local input: reported like a bad option (exit 2), before anything is sent."""


class Unreachable(Exception):
    """No connection could be made to the server."""


class LocalWriteError(Exception):
    """The download could not be written into --dir (e.g. the disk is full)."""


@contextmanager
def connection(host: str, port: int, deadline: float) -> Iterator[socket.socket]:
    """A connection to the server, made before ``deadline``.

    Every call on it then goes through ``until_deadline`` (here and in the
    stress client's transfer functions), so the whole command ends at the
    deadline even when the server sends one byte a minute.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    try:
        sock = socket.create_connection((host, port), timeout=remaining)
    except TimeoutError:
        raise
    except OSError as exc:  # refused, no route, unknown name
        raise Unreachable(f"cannot reach the server at {host}:{port}: {exc.strerror or exc}") from None
    with sock:
        yield sock


def tcp_port(text: str) -> int:
    """A port number from the command line: ASCII digits, 1 to 65535."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}: give a number from 1 to 65535")
    return int(text)


def safe_name(name: str, what: str) -> str:
    """``name`` if it is a plain file name both protocols can carry; UsageError otherwise."""
    try:
        return check_name(name)
    except protocol.ProtocolError as exc:
        raise UsageError(f"{what} {name!r}: {exc}") from None


# --- the four commands -------------------------------------------------------------


def list_files(args: argparse.Namespace, deadline: float) -> int:
    with connection(args.host, args.port, deadline) as sock:
        until_deadline(sock, deadline)
        sock.sendall(json_protocol.request("LIST"))
        answer = read_json_answer(sock, deadline)
    check_json_status(answer)
    names = answer.get("data")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise TransferError(f"bad answer: LIST data is not a list of names: {str(names)[:100]}")
    for name in names:
        try:
            check_name(name)
            fetchable = name.isprintable()  # a hostile server's name must not drive the terminal
        except protocol.ProtocolError:
            fetchable = False
        print(name if fetchable else f"{name!r}  (a name this client cannot fetch)")  # repr() escapes it
    return EXIT_OK


def get_file(args: argparse.Namespace, deadline: float) -> int:
    """Download NAME into ``--dir``: into a temporary file first, renamed into place when verified."""
    name = safe_name(args.name, "file name")  # also keeps the download inside --dir
    target = os.path.join(args.dir, name)
    if os.path.lexists(target) and not args.force:  # checked again, atomically, when the file is placed
        raise UsageError(f"{target} already exists (use --force to replace it)")
    receive = stream_get if args.protocol == "stream" else json_get
    try:
        os.makedirs(args.dir, exist_ok=True)
        # Hidden, in the same folder: the final rename is then atomic, and a leftover is easy to spot.
        temp = tempfile.NamedTemporaryFile(dir=args.dir, prefix=f".{name}.", suffix=".part", delete=False)
    except OSError as exc:
        raise UsageError(f"--dir: cannot write in {args.dir}: {exc.strerror or exc}") from None

    def save(data: bytes | memoryview) -> None:
        try:
            temp.write(data)
        except OSError as exc:  # told apart from the network's errors
            raise LocalWriteError(f"cannot write {temp.name}: {exc.strerror or exc}") from None

    try:
        with temp, connection(args.host, args.port, deadline) as sock:
            size, digest, _ = receive(sock, name, deadline, save)
        place(temp.name, target, args.force)
    except BaseException:  # Ctrl-C included: a failed download leaves nothing behind
        with suppress(FileNotFoundError):
            os.unlink(temp.name)
        raise
    print(f"saved {target} ({size} bytes, sha256 {digest})")
    return EXIT_OK


def place(temp: str, target: str, force: bool) -> None:
    """Move the finished download to ``target``; without ``force`` never replace a file."""
    if force:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)  # unlike a rename, fails if target exists, even if it appeared meanwhile
    except FileExistsError:
        raise UsageError(f"{target} already exists (use --force to replace it)") from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise UsageError(f"{target} already exists (use --force to replace it)") from None
        os.replace(temp, target)
        return
    os.unlink(temp)


def upload_file(args: argparse.Namespace, deadline: float) -> int:
    name = safe_name(args.name or os.path.basename(args.file), "--name" if args.name else "the file's name")
    try:
        size, digest = os.path.getsize(args.file), sha256_of(args.file)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    job = Transfer("upload", args.host, args.port, args.file, name, size, digest, args.timeout, protocol=args.protocol)
    with connection(args.host, args.port, deadline) as sock:
        TRANSFERS[args.protocol, "upload"](sock, job, deadline)  # both check the digest end to end
    print(f"uploaded {args.file} as {name} ({size} bytes, sha256 {digest})")
    return EXIT_OK


def delete_file(args: argparse.Namespace, deadline: float) -> int:
    name = safe_name(args.name, "file name")
    with connection(args.host, args.port, deadline) as sock:
        until_deadline(sock, deadline)
        sock.sendall(json_protocol.request("DELETE", name))
        answer = read_json_answer(sock, deadline)
    check_json_status(answer)
    print(f"deleted {name}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, float], int]] = {
    "list": list_files,
    "get": get_file,
    "upload": upload_file,
    "delete": delete_file,
}
JSON_ONLY = ("list", "delete")  # the streaming dialect has only UPLOAD and GET


def run(args: argparse.Namespace) -> int:
    """Run one command; every failure becomes one line on stderr and its exit code."""
    deadline = time.monotonic() + args.timeout
    try:
        return COMMANDS[args.command](args, deadline)
    except UsageError as exc:
        return fail(EXIT_USAGE, str(exc))
    except Unreachable as exc:
        return fail(EXIT_UNREACHABLE, str(exc))
    except ServerError as exc:
        return fail(EXIT_SERVER, str(exc))
    except MismatchError as exc:
        return fail(EXIT_MISMATCH, str(exc))
    except LocalWriteError as exc:
        return fail(EXIT_BROKEN, str(exc))
    except (TransferError, OSError) as exc:
        if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
            # A socket call ran past the time left, or the deadline passed between calls.
            return fail(EXIT_TIMEOUT, f"timeout: {args.command} did not finish within {args.timeout:g}s")
        if isinstance(exc, TransferError):
            return fail(EXIT_BROKEN, str(exc))
        return fail(EXIT_BROKEN, f"the connection to {args.host}:{args.port} broke: {exc.strerror or exc}")


def fail(code: int, message: str) -> int:
    print(f"file_client: error: {message}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.file_client",
        description="List, download, upload and delete files on the lab's file server.",
        epilog="exit codes: 0 done, 1 transfer broke, 2 bad usage, 3 server answered ERROR, "
        "4 server unreachable, 5 timeout, 6 checksum mismatch",
    )
    add_connection_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The connection options are accepted after the command too ("list --protocol json").
    common = argparse.ArgumentParser(add_help=False)
    add_connection_options(common, argparse.SUPPRESS)
    commands.add_parser("list", parents=[common], help="list the server's files (--protocol json)")
    get = commands.add_parser("get", parents=[common], help="download NAME into --dir")
    get.add_argument("name", metavar="NAME")
    get.add_argument("--dir", default=".", help="folder to save into (default: the current folder)")
    get.add_argument("--force", action="store_true", help="replace the file in --dir if it exists")
    upload = commands.add_parser("upload", parents=[common], help="upload FILE")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--name", help="name on the server (default: FILE's own name)")
    delete = commands.add_parser("delete", parents=[common], help="delete NAME on the server (--protocol json)")
    delete.add_argument("name", metavar="NAME")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in JSON_ONLY and args.protocol == "stream":
        parser.error(f"{args.command}: the streaming dialect has only UPLOAD and GET; use --protocol json")
    if not 0 < args.timeout < float("inf"):  # also refuses "nan"
        parser.error("--timeout must be a positive number of seconds")
    args.port = args.port or PROTOCOL_PORTS[args.protocol]
    return run(args)


def add_connection_options(parser: argparse.ArgumentParser, default: object) -> None:
    """--host, --protocol, --port, --timeout. ``default`` None: the real defaults; SUPPRESS: none.

    The commands' copies have no default, so that a value given before the
    command is not overwritten by a default after it.
    """

    def value(real: object) -> object:
        return real if default is None else default

    parser.add_argument("--host", default=value(SERVER_NODE), help=f"server address (default {SERVER_NODE})")
    parser.add_argument(
        "--protocol", choices=["stream", "json"], default=value("stream"), help="wire protocol (default stream)"
    )
    parser.add_argument(
        "--port", type=tcp_port, default=value(None), help="server port (default 8889, or 6666 with --protocol json)"
    )
    parser.add_argument(
        "--timeout", type=float, default=value(300.0), help="seconds allowed for the whole command (default 300)"
    )


if __name__ == "__main__":
    sys.exit(main())
