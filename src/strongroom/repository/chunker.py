"""Chunkers: records for database dumps, content-defined chunks for other files.

Both produce chunks whose ids come from the same keyed hash, so one index serves both.

*Records*: a dump written one row per line (``mariadb-dump --skip-extended-insert``,
``pg_dump`` ``COPY`` rows) is cut after every newline; a record is one line with its
newline. A line longer than :data:`MAX_RECORD` is cut into pieces of that size, so
memory stays bounded whatever the dump holds (a 50 MB BLOB row is 50 records). The
last line may lack its newline; it is stored exactly as it is.

*Content-defined chunks*: FastCDC (average 1 MiB, 256 KiB to 4 MiB) with its gear
table seeded from the id key, so the cut points do not reveal content either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyfastcdc

MAX_RECORD = 1 << 20
READ_SIZE = 4 << 20
CDC_AVERAGE = 1 << 20
CDC_MINIMUM = 256 << 10
CDC_MAXIMUM = 4 << 20


def record_spans(
    stream: BinaryIO, *, read_size: int = READ_SIZE, max_record: int = MAX_RECORD
) -> Iterator[tuple[memoryview, np.ndarray, np.ndarray]]:
    """Yield the records of ``stream`` a read (at most ``read_size`` bytes) at a time, as
    ``(data, starts, ends)``: record ``k`` is ``data[starts[k]:ends[k]]`` (int64 arrays).

    The records of one yield follow each other from ``data``'s first byte to
    ``ends[-1]`` (bytes after it are carried into the next yield), and concatenating
    every record yields the stream's bytes exactly. ``data`` is a view of one buffer
    reused for every read: it is valid until the next yield. Finding the lines is
    vectorised; no record is copied. Raises what ``stream.read`` raises.
    """
    buffer = bytearray(read_size + max_record + 1)
    readinto = getattr(stream, "readinto", None)
    carried = 0
    while True:
        room = memoryview(buffer)[carried : carried + read_size]
        if readinto is not None:
            got = readinto(room) or 0
        else:
            block = stream.read(read_size)
            got = len(block)
            room[:got] = block
        room.release()
        if not got:
            break
        filled = carried + got
        data = memoryview(buffer)[:filled]
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10).astype(np.int64) + 1
        starts = np.empty_like(ends)
        if len(ends):
            starts[0] = 0
            starts[1:] = ends[:-1]
        consumed = int(ends[-1]) if len(ends) else 0
        if len(ends) and int((ends - starts).max()) > max_record:
            starts, ends = _cut_long(starts, ends, max_record)
        if filled - consumed > max_record:
            # an unfinished line longer than a record: store its first pieces now
            pieces = (filled - consumed - 1) // max_record
            piece_starts = consumed + max_record * np.arange(pieces, dtype=np.int64)
            starts = np.concatenate((starts, piece_starts))
            ends = np.concatenate((ends, piece_starts + max_record))
            consumed += pieces * max_record
        if len(starts):
            yield data, starts, ends
        del data
        carried = filled - consumed
        buffer[:carried] = buffer[consumed:filled]
    if carried:
        yield memoryview(buffer)[:carried], np.zeros(1, dtype=np.int64), np.full(1, carried, dtype=np.int64)


def _cut_long(starts: np.ndarray, ends: np.ndarray, max_record: int) -> tuple[np.ndarray, np.ndarray]:
    """The spans with every span longer than ``max_record`` cut into pieces of that size."""
    new_starts: list[int] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        new_starts.extend(range(start, end, max_record))
    cut_starts = np.asarray(new_starts, dtype=np.int64)
    cut_ends = np.empty_like(cut_starts)
    cut_ends[:-1] = cut_starts[1:]
    cut_ends[-1] = ends[-1]
    return cut_starts, cut_ends


class ContentChunker:
    """FastCDC with a gear table seeded from the id key."""

    def __init__(self, id_key: bytes) -> None:
        seed = (int.from_bytes(id_key[:8], "little") >> 1) or 1  # the binding takes at most 63 bits
        self._cdc = pyfastcdc.FastCDC(CDC_AVERAGE, min_size=CDC_MINIMUM, max_size=CDC_MAXIMUM, seed=seed)

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of ``stream`` as bytes (concatenated they are the stream)."""
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)
