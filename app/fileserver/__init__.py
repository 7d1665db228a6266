"""Concurrent TCP file server: a thread pool or a pool of processes.

Reading order: each module uses only the ones above it, so each can be read
knowing what came before.

    storage.py       read first: the folder of files, and why an upload appears only when complete; no sockets
    common.py        the words the rest uses: Limits, ServerContext, Ready, how a request fails, a polite close
    outcomes.py      the one CSV row every request leaves: how success and failure are measured
    stream.py        the streaming dialect, one request per connection: the simplest request, and the hot upload loop
    json_session.py  the JSON protocol, many requests per connection: the same upload loop behind a terminator
    waiting_room.py  the selectors loop where connections wait for a whole header without holding a worker
    pools.py         the thread pool and the pre-forked process pool that serve what the waiting room hands over
    cli.py           the command line: options, checks, listening sockets, then the chosen pool (run by __main__.py)

    python -m app.fileserver --pool thread  --workers 5 --port 8889 --storage /srv/files
    python -m app.fileserver --pool process --workers 5 --outcomes /results/server.csv
    python -m app.fileserver --json-port 6666     # also speak the course's JSON protocol

It serves one folder of files over two protocols, with one pool of workers:

* the "streaming dialect" of ``app/protocol.py`` on ``--port`` (8889): one
  request per connection;
* the course's JSON protocol of ``app/json_protocol.py`` on ``--json-port``
  (6666 in the lab; 0, the default, turns it off): any number of requests
  per connection.

What it does differently from the course's originals, and why:

* a connection costs a worker only while its request is served. Until its
  request header is complete it waits in the *waiting room*, one
  ``selectors`` loop that costs a file descriptor per connection and no
  worker; a JSON connection goes back there between requests. So idle or
  slow clients cannot starve the pool, while N workers still serve at most
  N requests at once (the queueing the experiment measures still shows);
* a request header must be complete within ``--header-timeout`` of its first
  chance, an upload must keep ``--min-upload-rate`` (like Apache's
  ``mod_reqtimeout``), a client silent for ``--timeout`` is cut, and each
  cut is logged with its cause (``header-timeout``, ``body-too-slow``,
  ``idle-timeout``, ``too-many-waiting``);
* uploads are decoded while they arrive, in 1 MiB pieces, and JSON downloads
  are encoded while they are sent: memory per worker does not grow with the
  file's size; an upload larger than ``--max-upload`` is refused;
* an upload is written to a hidden temporary file and renamed into place
  only when complete and intact, so nobody ever sees a partial file, and
  concurrent uploads of one name never mix (the last complete one wins);
* only regular files directly in the storage folder are served: a symbolic
  link is never followed;
* bad input gets an ``ERROR`` answer, and the server reads and throws away
  what the client is still sending (briefly, boundedly) before it closes, so
  the client sees the answer instead of a connection reset;
* every request's outcome (ok/error, bytes, seconds) is appended to a CSV
  file, so "server workers succeeded/failed" is measured, not guessed.

Pool modes (the waiting room runs in the main thread, or the parent process):

* ``thread``: ready requests go to a ``ThreadPoolExecutor`` of N threads;
  extra ones wait in its queue.
* ``process``: N pre-forked worker processes; the parent passes each ready
  connection (its descriptor and the bytes read so far) to an idle worker
  over a Unix socket, and extra ones wait in the parent's queue. A worker
  that dies is replaced, and its unfinished upload's temporary file removed.
"""

# The names other programs and the tests use, wherever in the package they live.
from app.contract import OUTCOME_FIELDS
from app.fileserver.cli import build_parser, main
from app.fileserver.common import JSON, STREAM, Limits, Ready, ServerContext
from app.fileserver.storage import Storage, StorageError, StorageWriter
from app.fileserver.waiting_room import nothing_asked, request_state

__all__ = [
    "JSON",
    "OUTCOME_FIELDS",
    "STREAM",
    "Limits",
    "Ready",
    "ServerContext",
    "Storage",
    "StorageError",
    "StorageWriter",
    "build_parser",
    "main",
    "nothing_asked",
    "request_state",
]
