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

import collections
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, BinaryIO

import numpy as np
import pyfastcdc

MAX_RECORD = 1 << 20
READ_SIZE = 2 << 20
CDC_AVERAGE = 1 << 20
CDC_MINIMUM = 256 << 10
CDC_MAXIMUM = 4 << 20


def _split_block(
    data: memoryview, filled: int, max_record: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The records of ``data[:filled]`` as (starts, ends) and the bytes they consume; the
    rest (an unfinished line, at most ``max_record`` bytes) is carried into the next block.
    ``mask``: a reusable boolean array of at least ``filled`` items (no new array a block)."""
    raw = np.frombuffer(data, dtype=np.uint8, count=filled)
    if mask is None or len(mask) < filled:
        newlines = raw == 10
    else:
        newlines = np.equal(raw, 10, out=mask[:filled])
    ends = np.flatnonzero(newlines).astype(np.int64) + 1
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
    return starts, ends, consumed


def _read_into(stream: BinaryIO, room: memoryview) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(room) or 0)
    block = stream.read(len(room))
    room[: len(block)] = block
    return len(block)


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
    carried = 0
    while True:
        with memoryview(buffer)[carried : carried + read_size] as room:
            got = _read_into(stream, room)
        if not got:
            break
        filled = carried + got
        data = memoryview(buffer)[:filled]
        starts, ends, consumed = _split_block(data, filled, max_record)
        if len(starts):
            yield data, starts, ends
        del data
        carried = filled - consumed
        buffer[:carried] = buffer[consumed:filled]
    if carried:
        yield memoryview(buffer)[:carried], np.zeros(1, dtype=np.int64), np.full(1, carried, dtype=np.int64)


_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def record_spans_ahead(
    stream: BinaryIO,
    *,
    on_block: Callable[[memoryview], object] | None = None,
    read_size: int = READ_SIZE,
    max_record: int = MAX_RECORD,
    buffers: int | list[Any] = 3,
    hold: int = 1,
) -> Generator[tuple[memoryview, np.ndarray, np.ndarray, int], None, None]:
    """As :func:`record_spans`, but a thread reads the next blocks and finds their records
    while the caller works on this one (reading, ``numpy``'s search and ``on_block``
    release the GIL, so this runs on another core). Yields ``(data, starts, ends, buffer)``:
    ``buffer`` is the number of the buffer holding ``data``.

    ``buffers``: how many to allocate, or the writable buffers to use (each at least
    ``read_size + max_record + 1`` bytes: shared memory for a hashing helper).
    ``hold``: how many yielded blocks the caller keeps at once (a block's buffer is reused
    only after ``hold`` more blocks were asked for); fewer than ``buffers``.
    ``on_block(view)`` is called in the reading thread with each block's record bytes, in
    stream order (a content hash). Raises what reading the stream or ``on_block`` raised,
    in the caller's thread.
    """
    size = read_size + max_record + 1
    pool = [bytearray(size) for _ in range(buffers)] if isinstance(buffers, int) else list(buffers)
    if hold >= len(pool):
        raise ValueError("record_spans_ahead needs more buffers than blocks held")
    free: queue.Queue[int | None] = queue.Queue()
    for number in range(len(pool)):
        free.put(number)
    ready: queue.Queue[object] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        mask = np.empty(size, dtype=bool)
        try:
            carried = b""
            while not stop.is_set():
                number = free.get()
                if number is None or stop.is_set():
                    return
                buffer = pool[number]
                with memoryview(buffer) as whole:
                    whole[: len(carried)] = carried
                    with whole[len(carried) : len(carried) + read_size] as room:
                        got = _read_into(stream, room)
                    if not got:
                        if carried:
                            if on_block is not None:
                                on_block(whole[: len(carried)])
                            ready.put((number, len(carried), np.zeros(1, dtype=np.int64), np.full(1, len(carried), dtype=np.int64)))
                        ready.put(_END)
                        return
                    filled = len(carried) + got
                    with whole[:filled] as data:
                        starts, ends, consumed = _split_block(data, filled, max_record, mask)
                        carried = bytes(data[consumed:filled])
                        if len(starts) and on_block is not None:
                            on_block(data[:consumed])
                if len(starts):
                    ready.put((number, filled, starts, ends))
                else:
                    free.put(number)
        except BaseException as error:  # handed to the caller's thread
            ready.put(_Failure(error))

    thread = threading.Thread(target=produce, name="strongroom-read", daemon=True)
    thread.start()
    held: collections.deque[int] = collections.deque()
    try:
        while True:
            while len(held) >= hold:
                free.put(held.popleft())  # the caller is done with that block
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            block: tuple[int, int, np.ndarray, np.ndarray] = item  # type: ignore[assignment]
            held.append(block[0])
            yield memoryview(pool[block[0]])[: block[1]], block[2], block[3], block[0]
    finally:
        stop.set()
        free.put(None)
        thread.join(timeout=10)


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
