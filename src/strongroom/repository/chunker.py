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

import pyfastcdc

MAX_RECORD = 1 << 20
READ_SIZE = 4 << 20
CDC_AVERAGE = 1 << 20
CDC_MINIMUM = 256 << 10
CDC_MAXIMUM = 4 << 20


def record_blocks(
    stream: BinaryIO, *, read_size: int = READ_SIZE, max_record: int = MAX_RECORD
) -> Iterator[tuple[list[bytes], bytes]]:
    """Yield the records of ``stream`` in lists (one list per read of about ``read_size`` bytes),
    each with the bytes those records concatenate to.

    Concatenating every record yields the stream's bytes exactly. Raises what ``stream.read`` raises.
    """
    carry = b""
    while True:
        block = stream.read(read_size)
        if not block:
            break
        data = carry + block if carry else block
        lines = data.split(b"\n")
        carry = lines.pop()
        records = [line + b"\n" for line in lines]
        if any(len(record) > max_record for record in records):
            records = [piece for record in records for piece in _cut(record, max_record)]
        while len(carry) > max_record:
            records.append(carry[:max_record])
            carry = carry[max_record:]
        if records:
            yield records, data[: len(data) - len(carry)]
    if carry:
        yield [carry], carry


def _cut(record: bytes, max_record: int) -> list[bytes]:
    if len(record) <= max_record:
        return [record]
    return [record[i : i + max_record] for i in range(0, len(record), max_record)]


class ContentChunker:
    """FastCDC with a gear table seeded from the id key."""

    def __init__(self, id_key: bytes) -> None:
        seed = (int.from_bytes(id_key[:8], "little") >> 1) or 1  # the binding takes at most 63 bits
        self._cdc = pyfastcdc.FastCDC(CDC_AVERAGE, min_size=CDC_MINIMUM, max_size=CDC_MAXIMUM, seed=seed)

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of ``stream`` as bytes (concatenated they are the stream)."""
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)
