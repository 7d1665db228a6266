"""The UDP experiment's wire format and its accounting (pure logic, no sockets).

Two framings travel on UDP port 8888:

``raw``
    Exactly the course's original: each datagram is a bare piece of the file,
    no header. The receiver cannot tell lost, duplicated or reordered pieces
    apart, nor when the file ends; it can only compare the byte count and a
    hash with the file it expects.

``framed`` (the lab's default)
    Each datagram starts with a 16-byte header, then up to 65,491 bytes of
    the file (65,507, the largest UDP payload over IPv4, minus the header)::

        offset  size  field
        0       2     magic b"PJ"
        2       1     version (1)
        3       1     kind: 1 = data, 2 = end marker
        4       4     transfer id (unsigned, big-endian, like every field)
        8       4     sequence number: 0 .. total-1 for data
        12      4     total: number of data datagrams in the transfer

    After the data the sender sends an end marker (kind 2, sequence =
    total) a few times, in case one copy is lost. Its body is the file's
    size (8 bytes) and SHA-256 (32 bytes), so a receiver knows the transfer
    is over and what the file should have been.

``FramedTally`` and ``RawTally`` count what a receiver got: datagrams and
bytes, lost, duplicated and out-of-order pieces, and whether the file came
through intact. ``app.udp_receiver`` feeds them from its socket.

The limits the sender, the receiver and the orchestrator share (the largest
payloads, ``MAX_SECONDS``, ``transfer_time_limits``) are in ``app/contract.py``,
so a matrix is checked against the very numbers the programs enforce.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

# The limits are defined in the contract. Those imported "as" themselves are
# re-exported, for code that still imports them from here (the host, tests).
from app.contract import MAX_FRAMED_PAYLOAD as MAX_FRAMED_PAYLOAD
from app.contract import MAX_IDLE_TIMEOUT as MAX_IDLE_TIMEOUT
from app.contract import MAX_RATE as MAX_RATE
from app.contract import MAX_SECONDS as MAX_SECONDS
from app.contract import MAX_UDP_PAYLOAD as MAX_UDP_PAYLOAD
from app.contract import START_WAIT as START_WAIT
from app.contract import count_datagrams
from app.contract import max_payload as max_payload
from app.contract import transfer_time_limits as transfer_time_limits

MAGIC = b"PJ"
VERSION = 1
KIND_DATA = 1
KIND_END = 2
HEADER = struct.Struct("!2sBBIII")  # magic, version, kind, transfer id, sequence, total
END_BODY = struct.Struct("!Q32s")  # file size, SHA-256 digest
HEADER_SIZE = HEADER.size  # 16, the contract's UDP_HEADER_SIZE (so MAX_FRAMED_PAYLOAD is 65,491)
MAX_DATAGRAMS = 1 << 24  # a header claiming more is refused: bounds what a receiver will track
FRAMINGS = ("framed", "raw")


class FramingError(ValueError):
    """A datagram that is not a valid frame of this protocol."""


def split(data: bytes, payload: int) -> list[bytes]:
    """The file cut into pieces of ``payload`` bytes (the last may be shorter)."""
    if payload < 1:
        raise ValueError("payload must be at least 1 byte")
    return [data[offset : offset + payload] for offset in range(0, len(data), payload)]


def data_frame(transfer_id: int, seq: int, total: int, piece: bytes) -> bytes:
    return HEADER.pack(MAGIC, VERSION, KIND_DATA, transfer_id, seq, total) + piece


def end_frame(transfer_id: int, total: int, size: int, sha256_hex: str) -> bytes:
    body = END_BODY.pack(size, bytes.fromhex(sha256_hex))
    return HEADER.pack(MAGIC, VERSION, KIND_END, transfer_id, total, total) + body


def build_datagrams(data: bytes, payload: int, framing: str, transfer_id: int = 0) -> list[bytes]:
    """Every data datagram of one transfer, in order (the end marker is separate)."""
    pieces = split(data, payload)
    if framing == "raw":
        return pieces
    total = len(pieces)
    return [data_frame(transfer_id, seq, total, piece) for seq, piece in enumerate(pieces)]


@dataclass(frozen=True)
class Frame:
    kind: int
    transfer_id: int
    seq: int
    total: int
    body: bytes  # file bytes for data; size and digest for an end marker


def parse_frame(datagram: bytes | memoryview) -> Frame:
    """Decode one framed datagram, or raise FramingError saying why not."""
    if len(datagram) < HEADER_SIZE:
        raise FramingError(f"{len(datagram)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, kind, transfer_id, seq, total = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION:
        raise FramingError("not a progjar-lab frame (wrong magic or version)")
    if kind not in (KIND_DATA, KIND_END):
        raise FramingError(f"unknown frame kind {kind}")
    if total > MAX_DATAGRAMS:
        raise FramingError(f"total of {total} datagrams is more than {MAX_DATAGRAMS}")
    body = bytes(datagram[HEADER_SIZE:])
    if kind == KIND_DATA and seq >= total:
        raise FramingError(f"sequence number {seq} is not below the total {total}")
    if kind == KIND_END and (seq != total or len(body) != END_BODY.size):
        raise FramingError("malformed end marker")
    return Frame(kind, transfer_id, seq, total, body)


def parse_end_body(body: bytes) -> tuple[int, str]:
    """(file size, SHA-256 hex) from an end marker's body."""
    size, digest = END_BODY.unpack(body)
    return size, digest.hex()


@dataclass
class Expected:
    """What the receiver should end up with, when known."""

    size: int | None = None
    sha256: str | None = None


@dataclass
class Verdict:
    """How one transfer went, as a receiver saw it."""

    expected_datagrams: int | None
    datagrams: int  # data datagrams received, duplicates included
    unique: int | None  # distinct data datagrams (None in raw mode: cannot tell)
    lost: int | None
    duplicates: int | None
    out_of_order: int | None
    bytes: int  # file bytes received, duplicates included
    assembled: bytes
    sha256: str
    expected: Expected
    intact: bool | None  # None: nothing to compare with
    status: str  # ok | incomplete | mismatch | no-data | unverified


def _judge(received: int, missing: int | None, assembled: bytes, expected: Expected) -> tuple[bool | None, str]:
    digest = hashlib.sha256(assembled).hexdigest()
    if expected.sha256 is None:
        intact = None
    else:
        intact = digest == expected.sha256 and (expected.size is None or len(assembled) == expected.size)
    if intact:
        status = "ok"
    elif received == 0 and (expected.size is None or expected.size > 0):
        status = "no-data"
    elif missing or (expected.size is not None and len(assembled) < expected.size):
        status = "incomplete"
    elif intact is None:
        status = "unverified"
    else:
        status = "mismatch"
    return intact, status


@dataclass
class FramedTally:
    """Accounting of one framed transfer, fed datagram by datagram."""

    transfer_id: int
    total: int | None = None
    pieces: dict[int, bytes] = field(default_factory=dict)
    datagrams: int = 0
    bytes: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    highest: int = -1
    end_markers: int = 0
    end_info: tuple[int, str] | None = None  # (size, sha256) from the end marker
    inconsistent: int = 0  # frames whose total disagrees with the first one seen

    def add_data(self, seq: int, total: int, piece: bytes) -> None:
        """Record one data datagram. Called once per datagram, so kept short."""
        if self.total is None:
            self.total = total
        elif total != self.total:
            self.inconsistent += 1
            return
        self.datagrams += 1
        self.bytes += len(piece)
        if seq in self.pieces:
            self.duplicates += 1
            return
        self.pieces[seq] = piece
        if seq < self.highest:
            self.out_of_order += 1
        else:
            self.highest = seq

    def add_end(self, total: int, body: bytes) -> None:
        self.end_markers += 1
        if self.total is None:
            self.total = total
        if self.end_info is None:
            self.end_info = parse_end_body(body)

    @property
    def complete(self) -> bool:
        """Every data datagram is here (the end marker may still be on its way)."""
        return self.total is not None and len(self.pieces) >= self.total

    def verdict(self, expected: Expected | None = None) -> Verdict:
        """Judge the transfer against ``expected`` or, failing that, the end marker."""
        if expected is None or expected.sha256 is None:
            size, digest = self.end_info if self.end_info else (None, None)
            expected = Expected(size, digest)
        total = self.total
        if total is None and expected.size is not None and expected.size == 0:
            total = 0
        assembled = b"".join(self.pieces[seq] for seq in sorted(self.pieces))
        unique = len(self.pieces)
        lost = None if total is None else total - unique
        intact, status = _judge(self.datagrams, lost, assembled, expected)
        return Verdict(
            expected_datagrams=total, datagrams=self.datagrams, unique=unique, lost=lost,
            duplicates=self.duplicates, out_of_order=self.out_of_order, bytes=self.bytes,
            assembled=assembled, sha256=hashlib.sha256(assembled).hexdigest(), expected=expected,
            intact=intact, status=status,
        )  # fmt: skip


@dataclass
class RawTally:
    """Accounting of one raw transfer: bare bytes appended in arrival order, as the original did."""

    payload: int | None = None  # the sender's datagram size, if known: gives the expected count
    received: bytearray = field(default_factory=bytearray)
    datagrams: int = 0

    def add(self, piece: bytes | memoryview) -> None:
        self.datagrams += 1
        self.received += piece

    def verdict(self, expected: Expected) -> Verdict:
        expected_count = None
        lost = None
        if expected.size is not None and self.payload:
            expected_count = count_datagrams(expected.size, self.payload)
            lost = max(0, expected_count - self.datagrams)
        assembled = bytes(self.received)
        missing = None if expected.size is None else max(0, expected.size - len(assembled))
        intact, status = _judge(self.datagrams, missing, assembled, expected)
        return Verdict(
            expected_datagrams=expected_count, datagrams=self.datagrams, unique=None, lost=lost,
            duplicates=None, out_of_order=None, bytes=len(assembled), assembled=assembled,
            sha256=hashlib.sha256(assembled).hexdigest(), expected=expected, intact=intact, status=status,
        )  # fmt: skip
