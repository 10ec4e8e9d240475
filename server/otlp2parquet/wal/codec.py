"""WAL framing: a segment header, then records of [length][crc32][lsn][signal][payload].

The checksum covers the LSN, the signal and the payload, so a torn or corrupted record is recognised and never
replayed. `SEGMENT_MAGIC` carries the format version.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SEGMENT_MAGIC = b"O2PWAL1\n"
HEADER = struct.Struct("<IIQB")  # payload length, crc32, lsn, signal
SIGNALS = ("traces", "logs", "metrics")
MAX_PAYLOAD = 1 << 31


@dataclass(frozen=True)
class Record:
    lsn: int
    signal: str
    payload: bytes


def header(lsn: int, signal: str, payload: bytes) -> bytes:
    """The record's header; the payload follows it as it is. (Appending the two costs a copy of every request
    the receiver logs, 1.5-1.9 % of a saturated sidecar's CPU in perf samples, ad hoc.)"""
    code = SIGNALS.index(signal)
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<QB", lsn, code)))
    return HEADER.pack(len(payload), crc, lsn, code)


class TornRecord(Exception):
    """The bytes end inside a record or fail its checksum: the end of the valid log."""


def decode(header: bytes, payload: bytes) -> Record:
    length, crc, lsn, code = HEADER.unpack(header)
    if len(payload) != length or code >= len(SIGNALS):
        raise TornRecord(f"record at lsn {lsn} is incomplete")
    if zlib.crc32(payload, zlib.crc32(struct.pack("<QB", lsn, code))) != crc:
        raise TornRecord(f"record at lsn {lsn} fails its checksum")
    return Record(lsn, SIGNALS[code], payload)


def payload_length(header: bytes) -> int:
    length = HEADER.unpack(header)[0]
    if length > MAX_PAYLOAD:
        raise TornRecord(f"implausible record length {length}")
    return length
