"""Decode base64 that arrives in pieces of any length, in bounded memory.

The course's original server decoded each ``recv()`` on its own and failed
with "Incorrect padding" whenever a piece did not end on a 4-character
boundary. Base64 decodes in quanta of 4 characters, so this decoder keeps
the (at most 3) characters that do not complete a quantum and prepends them
to the next piece.
"""

from __future__ import annotations

import binascii


class Base64Error(ValueError):
    """The stream is not valid base64."""


class Base64StreamDecoder:
    """Incremental, strict base64 decoder.

    >>> d = Base64StreamDecoder()
    >>> d.feed(b"aGVsb") + d.feed(b"G8=") + d.finish()
    b'hello'
    """

    def __init__(self) -> None:
        self._pending = b""  # 0-3 characters waiting for the rest of their quantum
        self._padded = False  # a quantum with '=' padding was seen: it must be the last

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Decode as much of ``data`` as forms whole quanta; keep the rest."""
        if not data:
            return b""
        if self._padded:
            raise Base64Error("data after base64 padding")
        out = b""
        if self._pending:
            need = 4 - len(self._pending)
            head = self._pending + bytes(data[:need])
            data = data[need:]
            if len(head) < 4:
                self._pending = head
                return b""
            out = self._decode(head)
            self._pending = b""
        whole = len(data) - len(data) % 4
        if whole:
            if self._padded:
                raise Base64Error("data after base64 padding")
            # Hot path: one C call over the whole aligned slice, no copy of `data`.
            out = out + self._decode(data[:whole]) if out else self._decode(data[:whole])
        if whole < len(data):
            if self._padded:
                raise Base64Error("data after base64 padding")
            self._pending = bytes(data[whole:])
        return out

    def finish(self) -> bytes:
        """End of stream: fail if characters of an incomplete quantum remain."""
        if self._pending:
            raise Base64Error("base64 length is not a multiple of 4")
        return b""

    def _decode(self, quanta: bytes | bytearray | memoryview) -> bytes:
        try:
            decoded = binascii.a2b_base64(quanta, strict_mode=True)
        except binascii.Error as exc:
            raise Base64Error(str(exc)) from None
        if quanta[-1:] == b"=":
            self._padded = True
        return decoded
