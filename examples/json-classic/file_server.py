"""A file server for the course's JSON protocol (port 6666), WITH THE CLASSIC DEFECTS.

    python3 file_server.py --port 6666 --workers 5 --storage /tmp/files

This is how the course's reference server is usually built, and it keeps four
of its well-known defects on purpose, so that you can see what the lab's checks
find. Each one is marked in the code with a comment starting "DEFECT:". Apart
from those four, the server works: compare it with the lab's rules and fix it.

The protocol: a request is "COMMAND PARAM1 PARAM2 ..."; every answer is one
JSON object followed by b"\\r\\n\\r\\n". The connection stays open for the next
request until the client closes it.

    LIST                     {"status": "OK", "data": ["a.jpg", "b.pdf"]}
    GET <name>               {"status": "OK", "data_namafile": "<name>", "data_file": "<base64>"}
    UPLOAD <name> <base64>   {"status": "OK", "data": "<name> stored (<n> bytes)"}
    DELETE <name>  (HAPUS)   {"status": "OK", "data": "<name> deleted"}
    anything wrong           {"status": "ERROR", "data": "<message>"}
    an unknown request       {"status": "ERROR", "data": "request tidak dikenali"}
"""

import argparse
import base64
import binascii
import concurrent.futures
import json
import os
import signal
import socket
import stat
import threading
import time

TERMINATOR = b"\r\n\r\n"
CHUNK = 3 * 256 * 1024  # GET: read and encode the file 768 KiB at a time (a multiple of 3)


class RequestError(Exception):
    """A problem we answer with {"status": "ERROR", "data": <message>}."""


def check_name(name):
    """Refuse names that could point outside the storage folder."""
    if (
        not name
        or len(name.encode("utf-8", "surrogateescape")) > 255
        or name.startswith(".")  # also "." and ".."
        or "/" in name
        or "\\" in name
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)  # NUL and other control characters
    ):
        raise RequestError("Invalid filename")
    return name


def open_regular(storage, name):
    """Open a regular file in storage for reading, never through a symbolic link."""
    try:
        fd = os.open(os.path.join(storage, check_name(name)), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise RequestError("File not found") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a device...: not a file we serve
        os.close(fd)
        raise RequestError("File not found")
    return open(fd, "rb")


# --- the commands ------------------------------------------------------------------
# Each one returns the dict to send as JSON, or raises RequestError.


def do_list(storage, params):
    names = []
    for name in sorted(os.listdir(storage)):
        if name.startswith("."):
            continue  # hidden files are never served
        try:
            mode = os.lstat(os.path.join(storage, name)).st_mode  # lstat: a symbolic link is not followed
        except FileNotFoundError:
            continue  # deleted meanwhile
        if stat.S_ISREG(mode):  # only regular files: no folders, no links
            names.append(name)
    return {"status": "OK", "data": names}


def do_upload(storage, params):
    if len(params) != 2:
        raise RequestError("Usage: UPLOAD <name> <base64>")
    name, data = check_name(params[0]), params[1]
    # DEFECT: truncating write in place. open(..., "wb") empties the old file
    # first, and the data is written straight into it: if decoding fails or the
    # data is cut, the previous version is already gone, and a concurrent GET or
    # a second UPLOAD of the same name sees a half-written file. (The fix: write
    # to a hidden temporary file and os.replace() it onto the name when complete.)
    with open(os.path.join(storage, name), "wb") as file:
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("Invalid base64 data") from None
        file.write(content)
    return {"status": "OK", "data": f"{name} stored ({len(content)} bytes)"}


def do_delete(storage, params):
    if len(params) != 1:
        raise RequestError("Usage: DELETE <name>")
    path = os.path.join(storage, check_name(params[0]))
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise RequestError("File not found")
        os.remove(path)
    except FileNotFoundError:
        raise RequestError("File not found") from None
    return {"status": "OK", "data": f"{params[0]} deleted"}


COMMANDS = {"list": do_list, "upload": do_upload, "delete": do_delete, "hapus": do_delete}


def send_get(conn, storage, params):
    """GET: the answer is built while it is sent, so the file is never in memory whole.

    The bytes are exactly those of json.dumps({"status": "OK", "data_namafile":
    name, "data_file": base64}) + TERMINATOR, sent in pieces.
    """
    if len(params) != 1:
        raise RequestError("Usage: GET <name>")
    name = params[0]
    with open_regular(storage, name) as file:  # errors are raised before anything is sent
        conn.sendall(f'{{"status": "OK", "data_namafile": {json.dumps(name)}, "data_file": "'.encode())
        while piece := file.read(CHUNK):
            conn.sendall(base64.b64encode(piece))  # 3*k bytes: no "=" until the last piece
        conn.sendall(b'"}' + TERMINATOR)


def send_json(conn, answer):
    conn.sendall(json.dumps(answer).encode() + TERMINATOR)


# --- one connection ----------------------------------------------------------------


def handle(conn, address, storage, open_connections, lock):
    """Serve requests on one connection until the client closes it."""
    client = f"{address[0]}:{address[1]}"
    # DEFECT: no timeout. There is no conn.settimeout(...), so recv() waits
    # forever: a client that connects and sends nothing (or stops half way)
    # holds this worker until it closes, and with --workers of them idle, nobody
    # else is served. (The fix: conn.settimeout(60) and catch TimeoutError.)
    try:
        while True:
            # DEFECT: one small recv per command. Whatever arrives in this one
            # recv(32) is taken as the whole request: a longer request (an UPLOAD
            # with its base64, a long name) is cut at 32 bytes, and the rest is
            # read later as if it were more requests. (The fix: read until the
            # b"\r\n\r\n" that ends a request, in bounded memory.)
            data = conn.recv(32)
            if not data:
                break  # the client closed the connection
            started = time.monotonic()
            try:
                # DEFECT: names lower-cased. The whole request is lower-cased
                # before it is parsed, so "GET MyFile.bin" looks for "myfile.bin",
                # an UPLOAD stores under the lower-cased name (and lower-cases its
                # base64 too, which changes the data). (The fix: lower-case only
                # the command word.)
                text = data.decode().lower()
            except UnicodeDecodeError:
                text = ""  # not text: answered "request tidak dikenali" below
            words = text.split()
            command, params = (words[0], words[1:]) if words else ("", [])
            try:
                if command == "get":
                    send_get(conn, storage, params)
                    result = "OK"
                elif command in COMMANDS:
                    answer = COMMANDS[command](storage, params)
                    send_json(conn, answer)
                    result = "OK"
                else:
                    raise RequestError("request tidak dikenali")
            except RequestError as error:
                send_json(conn, {"status": "ERROR", "data": str(error)})
                result = f"ERROR {error}"
            except ConnectionError:
                raise  # the client left in the middle of an answer
            except OSError as error:  # the storage folder failed us (disk full...): this request only
                send_json(conn, {"status": "ERROR", "data": f"Server storage error: {error.strerror}"})
                result = f"ERROR storage: {error}"
            print(f"{client} {text.strip()[:60]!r}: {result} ({time.monotonic() - started:.3f} s)", flush=True)
    except Exception as error:  # the client vanished, or a bug: only this connection ends
        print(f"{client} connection failed: {type(error).__name__}: {error}", flush=True)
    finally:
        with lock:  # under the lock: main() may be shutting this connection down right now
            open_connections.discard(conn)
            conn.close()
        print(f"{client} closed", flush=True)


# --- main --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="The course's JSON file server, with its classic defects.")
    parser.add_argument("--port", type=int, default=6666)
    parser.add_argument("--workers", type=int, default=5, help="threads in the pool")
    parser.add_argument("--storage", default="files", help="folder where files are stored")
    args = parser.parse_args()
    storage = os.path.abspath(args.storage)
    os.makedirs(storage, exist_ok=True)

    # Ctrl-C (SIGINT) and `docker stop` / the lab (SIGTERM) both just set this flag.
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", args.port))
    listener.listen(128)
    listener.settimeout(0.5)  # wake up twice a second to look at the stop flag (accepted sockets stay blocking)
    print(f"serving {storage} on port {args.port} with {args.workers} threads", flush=True)

    open_connections = set()  # so that a stop can wake up the workers
    lock = threading.Lock()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
    while not stopping.is_set():
        try:
            conn, address = listener.accept()
        except TimeoutError:
            continue
        except OSError as error:  # e.g. too many open files: wait a little, keep serving
            print(f"accept failed: {error}", flush=True)
            time.sleep(0.1)
            continue
        with lock:
            open_connections.add(conn)
        pool.submit(handle, conn, address, storage, open_connections, lock)

    print("stopping", flush=True)
    listener.close()
    with lock:
        for conn in list(open_connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)  # a worker waiting in recv() sees the end and finishes
            except OSError:
                pass
    pool.shutdown(wait=True)
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
