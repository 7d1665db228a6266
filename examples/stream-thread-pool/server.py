"""A small, correct file server in the lab's streaming dialect (TCP port 8889).

    python3 server.py --port 8889 --workers 5 --storage /tmp/files

One request per connection. The client sends a header of ASCII words ended by
a blank line (b"\\r\\n\\r\\n", at most 8192 bytes, command in any case):

    UPLOAD <name> <n> [<sha256>]   then exactly n base64 characters
        -> OK Ready to receive      (right after the header)
        -> OK Upload complete       (once the file is stored)
    GET <name>
        -> OK <size>                then exactly <size> raw bytes
    anything wrong
        -> ERROR <message>

Every answer line ends with b"\\r\\n\\r\\n". The main thread accepts connections
and hands each one to a ThreadPoolExecutor of --workers threads.

What makes it robust (the lab's conformance check tests each point):
  * memory does not grow with the file: uploads are decoded and written to disk
    1 MiB at a time, downloads are read and sent 1 MiB at a time;
  * an upload goes to a hidden temporary file and is renamed onto its name only
    when it is complete and intact, so a failed upload never damages the old file;
  * only plain names are accepted, and symbolic links are never followed;
  * every connection has a timeout, so a silent client cannot hold a worker;
  * an error costs only its own connection; the server keeps running.
"""

import argparse
import base64
import binascii
import concurrent.futures
import hashlib
import os
import re
import secrets
import signal
import socket
import stat
import threading
import time

TERMINATOR = b"\r\n\r\n"
MAX_HEADER = 8192  # bytes of header before the terminator
MAX_BASE64 = 1024**3  # refuse uploads of more than 1 GiB of base64 characters
MAX_DIGITS = 15  # ... and size words with absurdly many digits
CHUNK = 1024 * 1024  # receive, decode, write and send 1 MiB at a time
IDLE_TIMEOUT = 10  # seconds a client may stay silent during a request
HEADER_TIMEOUT = 10  # seconds allowed for the whole header to arrive
SHA256_HEX = re.compile(rb"[0-9a-fA-F]{64}")


class RequestError(Exception):
    """A problem we answer with ERROR <message>."""


class ClientGone(Exception):
    """The client closed the connection before the request was complete."""


# --- reading the request ---------------------------------------------------------


def read_header(conn, accepted):
    """Receive until the blank line. Returns (header, payload that came with it).

    The header must be complete HEADER_TIMEOUT seconds after the connection was
    accepted, even if it waited in the pool's queue meanwhile: so 10 silent
    clients cost 10 seconds, not 10 seconds each in turn.
    """
    deadline = accepted + HEADER_TIMEOUT
    buffer = b""
    while True:
        end = buffer.find(TERMINATOR)
        if end != -1:
            if end > MAX_HEADER:
                raise RequestError("Header too large")
            # Part of the upload may have come in the same segment as the header.
            return buffer[:end], buffer[end + len(TERMINATOR) :]
        if len(buffer) >= MAX_HEADER + len(TERMINATOR):
            raise RequestError("Header too large")
        # A client that sends one byte every few seconds still hits the deadline.
        # (Past it, we still take what has already arrived: a client that waited
        # in the queue may have sent its whole header long ago.)
        left = deadline - time.monotonic()
        conn.settimeout(min(IDLE_TIMEOUT, max(left, 0.01)))
        try:
            data = conn.recv(65536)
        except TimeoutError:
            raise RequestError("Timeout waiting for client") from None
        if not data:
            raise ClientGone("closed before the end of the header")
        buffer += data


def check_name(raw):
    """Return the name as text if it is a plain file name, else raise RequestError."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("Invalid filename") from None
    if (
        len(raw) > 255
        or name.startswith(".")  # also refuses "." and ".." and our own .upload-* files
        or "/" in name
        or "\\" in name
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)  # NUL and other control characters
    ):
        raise RequestError("Invalid filename")
    return name


# --- UPLOAD ----------------------------------------------------------------------


def parse_upload(words):
    """Check an UPLOAD header's words. Returns (name, size, sha256 or None)."""
    if len(words) not in (3, 4):
        raise RequestError("Usage: UPLOAD <name> <size>")
    name = check_name(words[1])
    size_word = words[2]
    if not size_word.isdigit():  # bytes.isdigit(): only the ASCII digits 0-9
        raise RequestError("Invalid size format")
    if len(size_word) > MAX_DIGITS or int(size_word) > MAX_BASE64:
        raise RequestError("Size too large")
    expected = None
    if len(words) == 4:
        if not SHA256_HEX.fullmatch(words[3]):
            raise RequestError("Invalid checksum format")
        expected = words[3].decode("ascii").lower()
    return name, int(size_word), expected


def decode_base64(data):
    """Decode whole 4-character groups of base64; raise RequestError if invalid."""
    try:
        # validate=True: refuse characters outside the base64 alphabet instead of skipping them.
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("Invalid Base64 data stream") from None


def waiting_data(conn):
    """Up to 64 bytes the client has sent that we have not read yet (b"" if none).

    MSG_PEEK looks without taking them; non-blocking: we do not wait for more.
    """
    try:
        conn.setblocking(False)
        return conn.recv(64, socket.MSG_PEEK)
    except OSError:  # BlockingIOError: nothing has arrived
        return b""
    finally:
        conn.settimeout(IDLE_TIMEOUT)


def receive_upload(conn, storage, words, early):
    """Receive n base64 characters, decode them into a temporary file, then rename it."""
    name, size, expected = parse_upload(words)
    if len(early.rstrip()) > size:
        raise RequestError("Size mismatch: more data than declared")
    # A hidden, random name in the same folder: never served, never mixed with
    # another upload of the same name, and os.replace() onto the real name is atomic.
    # ("xb" creates the file and fails if the name exists, even as a symlink.)
    temp = os.path.join(storage, ".upload-" + secrets.token_hex(8))
    out = open(temp, "xb")  # if this fails there is nothing to clean up
    try:
        with out:
            conn.sendall(b"OK Ready to receive" + TERMINATOR)
            digest = hashlib.sha256()
            stored = 0
            pending = early[:size]  # received base64 not decoded yet
            remaining = size - len(pending)  # base64 characters still to receive
            padded = False  # "=" padding was seen: it must be the very end of the data
            while True:
                # Base64 decodes in groups of 4 characters. A piece of any other
                # length fails ("Incorrect padding"), so decode only the whole
                # groups and keep the 0-3 characters left over for the next piece.
                whole = len(pending) - len(pending) % 4
                if whole:
                    if padded:
                        raise RequestError("Invalid Base64 data stream")
                    data = decode_base64(pending[:whole])
                    padded = pending[whole - 1 : whole] == b"="
                    out.write(data)
                    digest.update(data)
                    stored += len(data)
                    pending = pending[whole:]
                if remaining == 0:
                    break
                piece = conn.recv(min(CHUNK, remaining))  # raises TimeoutError after IDLE_TIMEOUT
                if not piece:
                    raise ClientGone(f"closed after {size - remaining} of {size} base64 characters")
                remaining -= len(piece)
                pending += piece
            if pending:  # 1-3 characters that do not make a group: n was not a multiple of 4
                raise RequestError("Invalid Base64 data stream")
            if waiting_data(conn).strip():  # (a trailing newline is tolerated)
                raise RequestError("Size mismatch: more data than declared")
            if expected and digest.hexdigest() != expected:
                raise RequestError("Checksum mismatch")
            out.flush()
            os.fsync(out.fileno())  # the data is on disk before the name points to it
        os.replace(temp, os.path.join(storage, name))  # atomic: readers see the old or the new file
    except BaseException:
        # Any failure: throw the temporary file away; the old version stays as it was.
        os.unlink(temp)
        raise
    conn.sendall(b"OK Upload complete" + TERMINATOR)
    return stored


# --- GET -------------------------------------------------------------------------


def send_file(conn, storage, words):
    """Answer OK <size>, then the file's raw bytes."""
    if len(words) != 2:
        raise RequestError("Usage: GET <name>")
    name = check_name(words[1])
    path = os.path.join(storage, name)
    try:
        # O_NOFOLLOW: a symbolic link (maybe pointing out of storage) is refused.
        # O_NONBLOCK: opening a FIFO someone left there does not hang the worker.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise RequestError("File not found") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a folder, a device...: not a file we serve
        os.close(fd)
        raise RequestError("File not found")
    with open(fd, "rb") as file:
        size = info.st_size
        conn.sendall(f"OK {size}".encode() + TERMINATOR)
        sent = 0
        while sent < size:  # never more than announced, even if the file grows meanwhile
            data = file.read(min(CHUNK, size - sent))
            if not data:
                break  # the file shrank: the client sees fewer bytes than announced
            conn.sendall(data)
            sent += len(data)
    return sent


# --- one connection ----------------------------------------------------------------


def handle(conn, address, accepted, storage, open_connections, lock):
    """Serve one request. Whatever happens, only this connection is affected."""
    started = time.monotonic()
    client = f"{address[0]}:{address[1]}"
    what = "(no request)"
    try:
        conn.settimeout(IDLE_TIMEOUT)  # no recv() or sendall() waits longer than this
        header, early = read_header(conn, accepted)
        words = header.split()
        command = words[0].decode("ascii", "replace").upper() if words else ""
        what = " ".join(w.decode("utf-8", "replace") for w in words[:2])[:80] or "(empty)"
        what = "".join(ch if ch.isprintable() else "?" for ch in what)  # no control characters in the log
        if command == "UPLOAD":
            size = receive_upload(conn, storage, words, early)
            result = f"ok, stored {size} bytes"
        elif command == "GET":
            size = send_file(conn, storage, words)
            result = f"ok, sent {size} bytes"
        else:
            raise RequestError("Unknown command")
    except RequestError as error:
        result = f"ERROR {error}"
        answer_error(conn, str(error))
    except TimeoutError:
        result = "failed: client too slow (timeout)"
    except (ClientGone, ConnectionError) as error:
        result = f"failed: client left ({error})"
    except Exception as error:  # a bug or a full disk: answer, log and carry on
        result = f"failed: {type(error).__name__}: {error}"
        answer_error(conn, "Server storage error" if isinstance(error, OSError) else "Internal server error")
    finally:
        with lock:  # under the lock: main() may be shutting this connection down right now
            open_connections.discard(conn)
            conn.close()
    log(f"{client} {what}: {result} ({time.monotonic() - started:.3f} s)")


def answer_error(conn, message):
    """Send ERROR <message>, then give the client a moment to read it.

    If we closed while the client is still sending (say, the rest of a refused
    upload), the kernel would reset the connection and the client might never
    see our answer. So in that case we say we are done (SHUT_WR) and read and
    drop what is still coming, for at most 1 second and 4 MiB.
    """
    try:
        conn.sendall(f"ERROR {message}".encode("ascii", "replace") + TERMINATOR)
        if not waiting_data(conn):
            return  # the client is not sending anything: close right away
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1
        dropped = 0
        while dropped < 4 * CHUNK and time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            data = conn.recv(65536)
            if not data:
                break
            dropped += len(data)
    except OSError:
        pass  # the client is gone already, or stays silent: nothing more to do


print_lock = threading.Lock()


def log(line):
    """Print one line; the lock keeps lines of different threads from mixing."""
    with print_lock:
        print(line, flush=True)


# --- main --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="Streaming-dialect file server with a thread pool.")
    parser.add_argument("--port", type=int, default=8889)
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
    listener.settimeout(0.5)  # wake up twice a second to look at the stop flag
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
            log(f"accept failed: {error}")
            time.sleep(0.1)
            continue
        with lock:
            open_connections.add(conn)
        pool.submit(handle, conn, address, time.monotonic(), storage, open_connections, lock)

    print("stopping", flush=True)
    listener.close()
    with lock:
        for conn in list(open_connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)  # a worker in recv() sees the end and finishes
            except OSError:
                pass
    pool.shutdown(wait=True)
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
