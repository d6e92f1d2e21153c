"""Restoring a component: locate every record, then write the output front to back.

The id list gives each record's length, so the output is the records in list
order. Restoring locates each listed id in the index (batch, offset and length in
the batch's plaintext), groups consecutive records that are also consecutive in
one batch into *runs*, and writes the output sequentially: runs are copied into a
buffer of :data:`WRITE_BUFFER` bytes, which is hashed (the component's keyed
content hash) and written with one call when full. Each batch is fetched,
decrypted and decompressed once, when its first run comes, and kept until its
last run is written: batches of the first backup hold long stretches of the
output and are dropped almost at once; batches of later backups (the rows that
changed) hold records scattered over the output and stay until their last one.

Without a merged index at hand, the ids are located by reading the index objects
one at a time against the sorted unique listed ids, so the whole index is never
held. Memory: about 40 bytes a listed record, plus the batches kept.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strongroom.errors import IntegrityError, UsageError
from strongroom.repository.format import BATCH_DTYPE, PACK_HEADER_SIZE, batch_associated_data, decompress, parse_pack_header
from strongroom.repository.index import IndexObject, RepositoryIndex, SortedIds, sort_order, split_ids
from strongroom.repository.keys import unseal
from strongroom.storage.backend import Handle, ObjectType

if TYPE_CHECKING:
    from collections.abc import Iterable

    from strongroom.repository.repository import Repository

WRITE_BUFFER = 8 << 20
WRITE_QUEUE = 3  # buffers waiting for the writer thread


@dataclass
class RecordLocations:
    """Where each listed record is: ``batch`` (a row of ``index.batches``), ``source`` (offset in
    the batch's plaintext) and ``length``, aligned with the list. ``index`` holds the packs and
    batches (its entries may be empty)."""

    index: RepositoryIndex
    batch: np.ndarray
    source: np.ndarray
    length: np.ndarray


def _missing(what: str, missing: int, total: int) -> IntegrityError:
    return IntegrityError(
        f"{what}: {missing} of {total} chunks are missing from the index (damaged or deleted index or packs)",
        hint="run 'strongroom verify' to see the damage",
    )


def locate_in_index(index: RepositoryIndex, ids: bytes, what: str) -> RecordLocations:
    """The records ``ids`` located in a merged index. Raises IntegrityError when an id is missing."""
    rows = index.locate(np.frombuffer(ids, "S16"))
    missing = int(np.count_nonzero(rows < 0))
    if missing:
        raise _missing(what, missing, len(rows))
    located = index.entries[rows]
    return RecordLocations(index, located["batch"].astype(np.int64), located["offset"], located["length"])


def locate_streaming(objects: Iterable[tuple[str, IndexObject]], ids: bytes, what: str) -> RecordLocations:
    """The records ``ids`` located by reading index objects one at a time (none is kept).

    Only the listed ids are held (sorted, unique, as uint64 pairs) with one location
    each; the first index object naming an id gives its location. Raises
    IntegrityError when an id is missing, and whatever ``objects`` raises.
    """
    high, low = split_ids(np.frombuffer(ids, "S16"))
    order = sort_order(high, low)
    high, low = high[order], low[order]
    first = np.ones(len(high), dtype=bool)
    first[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    inverse = np.empty(len(order), dtype=np.int32)
    inverse[order] = np.cumsum(first, dtype=np.int32) - 1
    del order
    unique = SortedIds(high[first], low[first])
    del high, low, first
    batch = np.full(len(unique), -1, dtype=np.int64)
    source = np.zeros(len(unique), dtype=np.uint32)
    length = np.zeros(len(unique), dtype=np.uint32)
    packs: list[str] = []
    pack_numbers: dict[str, int] = {}
    batch_parts: list[np.ndarray] = []
    batch_base = 0
    for _, obj in objects:
        entries = obj.entries
        if len(entries) and len(unique):
            rows, found = unique.find(*split_ids(entries["id"]))
            take = np.flatnonzero(found)
            take = take[batch[rows[take]] < 0]
            targets = rows[take]
            batch[targets] = entries["batch"][take].astype(np.int64) + batch_base
            source[targets] = entries["offset"][take]
            length[targets] = entries["length"][take]
            del rows, found, take, targets
        mapping = np.array([pack_numbers.setdefault(p, len(pack_numbers)) for p in obj.packs], dtype="<u4")
        batches = obj.batches.copy()
        if len(batches):
            batches["pack"] = mapping[batches["pack"]]
        batch_parts.append(batches)
        batch_base += len(batches)
        del obj, entries
    missing = int(np.count_nonzero(batch < 0))
    if missing:
        raise _missing(what, int(np.count_nonzero(batch[inverse] < 0)), len(inverse))
    packs = list(pack_numbers)
    index = RepositoryIndex(packs, np.concatenate(batch_parts) if batch_parts else np.empty(0, BATCH_DTYPE))
    return RecordLocations(index, batch[inverse], source[inverse], length[inverse])


def read_batch(repository: Repository, index: RepositoryIndex, batch_number: int, pack_keys: dict[int, str]) -> bytes:
    """The plaintext of batch ``batch_number``: fetched, decrypted and decompressed.

    Raises IntegrityError (damaged, forged), IdentityError (no data key), StorageError.
    """
    batch = index.batches[batch_number]
    pack_number = int(batch["pack"])
    pack_name = index.packs[pack_number]
    handle = Handle(ObjectType.DATA, pack_name)
    if pack_number not in pack_keys:
        pack_keys[pack_number] = parse_pack_header(repository.backend.load(handle, 0, PACK_HEADER_SIZE), f"pack {pack_name[:12]}")
    key_name = pack_keys[pack_number]
    key = repository.data_key(key_name)
    sealed = repository.backend.load(handle, int(batch["offset"]), int(batch["length"]))
    what = f"a batch of pack {pack_name[:12]}"
    if len(sealed) != int(batch["length"]):
        raise IntegrityError(f"{what} is truncated")
    plaintext = unseal(key, sealed, batch_associated_data(key_name, bytes(batch["batch_id"])), what)
    return decompress(plaintext, what)


def _runs(locations: RecordLocations) -> tuple[list[int], list[int], list[int]]:
    """The records as runs consecutive in one batch: (batch, start in its plaintext, end) of each run."""
    batch, source, length = locations.batch, locations.source.astype(np.int64), locations.length.astype(np.int64)
    if len(batch) == 0:
        return [], [], []
    ends = source + length
    starts = np.flatnonzero(np.concatenate(([True], (batch[1:] != batch[:-1]) | (source[1:] != ends[:-1]))))
    last = np.append(starts[1:], len(batch)) - 1
    return batch[starts].tolist(), source[starts].tolist(), ends[last].tolist()


def write_component(
    repository: Repository, index: RepositoryIndex | None, ids: bytes, target: Path, *, what: str, hasher: Any
) -> int:
    """Write the records ``ids`` into a new file ``target`` (mode 0600), updating ``hasher`` with
    its content in order; return its size. Without ``index`` the ids are located reading the
    index objects one at a time.

    Raises UsageError when ``target`` exists, IntegrityError, IdentityError, StorageError.
    """
    if index is None:
        locations = locate_streaming(repository.iter_index_objects(), ids, what)
    else:
        locations = locate_in_index(index, ids, what)
    run_batches, run_starts, run_ends = _runs(locations)
    found_index = locations.index
    del locations
    last_use: dict[int, int] = {}
    for number, batch_number in enumerate(run_batches):
        last_use[batch_number] = number
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{target} already exists: restore never overwrites", hint="name an empty folder") from None
    writer = _Writer(fd, hasher)
    try:
        buffer = bytearray()
        kept: dict[int, memoryview] = {}
        pack_keys: dict[int, str] = {}
        for number, (batch_number, start, end) in enumerate(zip(run_batches, run_starts, run_ends)):
            plaintext = kept.get(batch_number)
            if plaintext is None:
                plaintext = kept[batch_number] = memoryview(read_batch(repository, found_index, batch_number, pack_keys))
            if end > len(plaintext):
                raise IntegrityError(f"{what}: a batch is shorter than its index says")
            buffer += plaintext[start:end]
            if last_use[batch_number] == number:
                del kept[batch_number]
            if len(buffer) >= WRITE_BUFFER:
                writer.put(buffer)
                buffer = bytearray()
        writer.put(buffer)
        total = writer.finish()
        os.fsync(fd)
    except BaseException:
        writer.abandon()
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    return total


class _Writer:
    """Hashes and writes buffers in order in a thread of its own, so that writing the output
    overlaps fetching and decompressing the next batches (both release the GIL)."""

    def __init__(self, fd: int, hasher: Any) -> None:
        self.fd = fd
        self.hasher = hasher
        self.written = 0
        self.error: BaseException | None = None
        self.queue: queue.Queue[bytearray | None] = queue.Queue(maxsize=WRITE_QUEUE)
        self.thread = threading.Thread(target=self._run, name="restore writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (buffer := self.queue.get()) is not None:
            if self.error is not None:
                continue
            try:
                self.hasher.update(buffer)
                view = memoryview(buffer)
                while view:
                    view = view[os.write(self.fd, view) :]
                self.written += len(buffer)
            except BaseException as error:  # handed to the caller's thread by finish()
                self.error = error

    def put(self, buffer: bytearray) -> None:
        """Queue ``buffer`` (no longer touched by the caller) to be hashed and written.
        Raises what writing raised so far (OSError)."""
        if self.error is not None:
            raise self.error
        if buffer:
            self.queue.put(buffer)

    def finish(self) -> int:
        """Wait for every queued buffer; return the bytes written. Raises what writing raised (OSError)."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.written

    def abandon(self) -> None:
        """Stop the thread after what it holds (on an error in the caller's thread)."""
        if self.thread.is_alive():
            self.error = self.error or UsageError("restore abandoned")
            self.queue.put(None)
            self.thread.join()
