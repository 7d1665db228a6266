"""One small CSV writer shared by every program that records results.

Rows are appended with a single ``write()`` on a file opened with
``O_APPEND``: on Linux such a write lands whole at the end of the file even
when several processes and threads of the server append at once, so no row
is ever interleaved with another or lost.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping


class CsvLog:
    """Append-only CSV file with a fixed header."""

    def __init__(self, path: str, fields: Iterable[str]) -> None:
        self.path = path
        self.fields = list(fields)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # Only the first writer of a new file writes the header; O_EXCL-free
        # races between processes are avoided by creating the log in the
        # parent before any worker starts.
        if os.fstat(self._fd).st_size == 0:
            os.write(self._fd, self._encode({field: field for field in self.fields}))

    def write(self, row: Mapping[str, object]) -> None:
        """Append one row; missing fields are left empty, unknown ones rejected."""
        os.write(self._fd, self._encode(row))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> CsvLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _encode(self, row: Mapping[str, object]) -> bytes:
        buffer = io.StringIO()
        csv.DictWriter(buffer, self.fields, lineterminator="\n").writerow(row)
        return buffer.getvalue().encode("utf-8")
