"""A small stress client for the streaming dialect (port 8889).

    python3 client.py --host 127.0.0.1 --port 8889 --op upload --file big.bin --name big.bin --clients 5
    python3 client.py --host 127.0.0.1 --port 8889 --op download --file big.bin --name big.bin --clients 5

N threads start at once. Each one uploads --file under --name (all of them under
the same name: the server must store N complete uploads, the last one wins), or
downloads --name and checks that it has the same SHA-256 as --file.

Nothing is read whole into memory: the file is encoded, sent, received and
hashed 768 KiB at a time. Each client prints one line, then a summary follows:

    client 0 upload ok 0.412 s 10485760 bytes
    client 1 upload failed 10.004 s 0 bytes timed out
    1/2 ok

The exit status is 0 when every client succeeded, 1 otherwise.
"""

import argparse
import base64
import hashlib
import os
import socket
import sys
import threading
import time

TERMINATOR = b"\r\n\r\n"
CHUNK = 3 * 256 * 1024  # a multiple of 3: each piece encodes to base64 with no padding in the middle
TIMEOUT = 60  # seconds any single recv() or send may wait


def sha256_of(path):
    """SHA-256 of a file, read piece by piece."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while piece := file.read(CHUNK):
            digest.update(piece)
    return digest.hexdigest()


def read_answer(sock):
    """Receive one answer header. Returns (header text, bytes that came after it)."""
    buffer = b""
    while TERMINATOR not in buffer:
        if len(buffer) > 8192:
            raise RuntimeError("answer header too long")
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("server closed the connection")
        buffer += data
    header, _, rest = buffer.partition(TERMINATOR)
    return header.decode("utf-8", "replace"), rest


def upload(host, port, path, name, digest):
    """Send one upload. Returns the number of file bytes sent."""
    size = os.path.getsize(path)
    b64_length = 4 * ((size + 2) // 3)  # 4 characters for every started 3 bytes
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        # The optional 4th word asks the server to check the SHA-256 before storing.
        sock.sendall(f"UPLOAD {name} {b64_length} {digest}".encode() + TERMINATOR)
        answer, _ = read_answer(sock)
        if answer != "OK Ready to receive":
            raise RuntimeError(f"server said {answer!r}")
        with open(path, "rb") as file:
            while piece := file.read(CHUNK):
                sock.sendall(base64.b64encode(piece))
        answer, _ = read_answer(sock)
        if answer != "OK Upload complete":
            raise RuntimeError(f"server said {answer!r}")
    return size


def download(host, port, name, digest):
    """Download one file and compare its SHA-256. Returns the bytes received."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {name}".encode() + TERMINATOR)
        answer, data = read_answer(sock)  # part of the file may come with the answer
        status, _, size_word = answer.partition(" ")
        if status != "OK" or not size_word.isdigit():
            raise RuntimeError(f"server said {answer!r}")
        size = int(size_word)
        received = hashlib.sha256()
        count = 0
        while True:
            received.update(data)
            count += len(data)
            if count >= size:
                break
            data = sock.recv(min(CHUNK, size - count))
            if not data:
                raise RuntimeError(f"connection closed after {count} of {size} bytes")
        if count != size:
            raise RuntimeError(f"got {count} bytes, {size} announced")
        if received.hexdigest() != digest:
            raise RuntimeError("SHA-256 differs from the local file")
    return count


def run_client(index, args, digest, results):
    """One client: do the operation, print its line, remember whether it worked."""
    started = time.perf_counter()
    count = 0
    try:
        if args.op == "upload":
            count = upload(args.host, args.port, args.file, args.name, digest)
        else:
            count = download(args.host, args.port, args.name, digest)
        outcome = "ok"
    except TimeoutError:
        outcome = "failed timed out"
    except Exception as error:  # any failure counts for this client only
        outcome = f"failed {error}"
    seconds = time.perf_counter() - started
    status, _, reason = outcome.partition(" ")
    print(f"client {index} {args.op} {status} {seconds:.3f} s {count} bytes {reason}".rstrip(), flush=True)
    results[index] = status == "ok"


def main():
    parser = argparse.ArgumentParser(description="Stress client for the streaming dialect.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8889)
    parser.add_argument("--op", choices=["upload", "download"], required=True)
    parser.add_argument("--file", required=True, help="file to upload, or to compare a download with")
    parser.add_argument("--name", help="name on the server (default: the file's own name)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients")
    args = parser.parse_args()
    args.name = args.name or os.path.basename(args.file)
    if args.clients < 1:
        parser.error("--clients must be at least 1")

    digest = sha256_of(args.file)  # once, before the clock of any client starts
    results = [False] * args.clients
    threads = [threading.Thread(target=run_client, args=(i, args, digest, results)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{sum(results)}/{args.clients} ok", flush=True)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
