"""Restoring a component: locate every record, then write the output front to back.

The output is the records in list order. Where the list's location hints are at
hand (:func:`plan_from_hints`, locations.py), the runs come from them: no id is read
and nothing is looked up, except records the hints do not place. Otherwise restoring
locates each listed id in the index (batch, offset and length in
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
held. Memory: about 32 bytes a listed record (its id as two sorted halves, its place in the
list, its batch, offset and length), plus the index objects and batches in flight; with
hints, their 4 bytes a literal (its length) and the runs.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import sys
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from strongroom.errors import IntegrityError, ObjectNotFound, RepositoryError, UsageError
from strongroom.repository.format import BATCH_DTYPE, PACK_HEADER_SIZE, batch_associated_data, decompress, parse_pack_header
from strongroom.repository.index import IndexObject, RepositoryIndex, SortedIds, ascending, entry_id_halves, sort_order, split_ids
from strongroom.repository.keys import unseal
from strongroom.repository.locations import UNKNOWN, Hints, LocationMap, load_chain
from strongroom.storage.backend import Handle, ObjectType

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from strongroom.repository.repository import Repository

WRITE_BUFFER = 2 << 20
WRITE_QUEUE = 2  # buffers waiting for the hasher thread
WRITE_THREADS = 2  # threads writing buffers into the output file
PREFETCH = 6  # batches (about 1 MiB of plaintext each) fetched ahead
FETCH_THREADS = 2
# Bytes given to one pwrite. Large writes make the kernel give the file large folios, taken from
# large blocks of free memory, which on a virtual machine that hands free memory back to its host
# are mostly fresh: 1.2 GB written 8 MiB at a time cost 2.3-2.8 s of system time on the benchmark
# machine, 128 KiB at a time 0.3-0.6 s.
WRITE_PIECE = 128 << 10
PREFILL_PIECE = WRITE_PIECE  # zeros written at a time ahead of the records (see WRITE_PIECE)
PREFILL_AHEAD = 1 << 30  # at most this far ahead of the records written
INDEX_AHEAD = 1  # index objects decoded and waiting (one more is being decoded): bounds their memory
LOCATE_PIECE = 1 << 18  # index entries searched at a time (bounds the temporary arrays)


_Item = TypeVar("_Item")
log = logging.getLogger(__name__)


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


def locate_in_index(index: RepositoryIndex, ids: bytes | bytearray | np.ndarray, what: str) -> RecordLocations:
    """The records ``ids`` located in a merged index. Raises IntegrityError when an id is missing."""
    rows = index.locate(np.frombuffer(ids, "S16"))
    missing = int(np.count_nonzero(rows < 0))
    if missing:
        raise _missing(what, missing, len(rows))
    located = index.entries[rows]
    return RecordLocations(index, located["batch"].astype(np.int64), located["offset"], located["length"])


def locate_streaming(
    objects: Iterable[tuple[str, IndexObject]], listed: SortedIds, what: str, places: np.ndarray | None = None
) -> RecordLocations:
    """The records of ``listed`` (the list's ids, sorted, duplicates allowed) located by reading
    index objects one at a time, :data:`LOCATE_PIECE` entries at a time (none is kept).

    The result is aligned with ``listed`` (sorted order), or, given ``places`` (where each
    sorted id is in the list), with the list. A piece of entries in ascending id order (index
    objects are written sorted) is merged with the sorted ids; others (objects of earlier
    versions, in write order) are searched through the ids' bucket table. The first index object naming an id gives its location. Raises
    IntegrityError when an id is missing, and whatever ``objects`` raises.
    """
    count = len(listed)
    batch = np.full(count, -1, dtype=np.int32)
    source = np.zeros(count, dtype=np.uint32)
    length = np.zeros(count, dtype=np.uint32)
    pack_numbers: dict[str, int] = {}
    batch_parts: list[np.ndarray] = []
    batch_base = 0
    for _, obj in objects:
        entries = obj.entries
        for piece_start in range(0, len(entries) if count else 0, LOCATE_PIECE):
            high, low = entry_id_halves(entries[piece_start : piece_start + LOCATE_PIECE])
            rows, found = listed.find(high, low, ascending=ascending(high, low))
            take = np.flatnonzero(found)
            targets = rows[take] if places is None else places[rows[take]]
            first = batch[targets] < 0
            take, targets = take[first] + piece_start, targets[first]
            batch[targets] = entries["batch"][take].astype(np.int64) + batch_base
            source[targets] = entries["offset"][take]
            length[targets] = entries["length"][take]
        mapping = np.array([pack_numbers.setdefault(p, len(pack_numbers)) for p in obj.packs], dtype="<u4")
        batches = obj.batches.copy()
        if len(batches):
            batches["pack"] = mapping[batches["pack"]]
        batch_parts.append(batches)
        batch_base += len(batches)
        if batch_base >= 1 << 31:
            raise IntegrityError(f"{what}: the index describes more than 2**31 batches")
        del obj, entries
    # An id listed several times was located at its first place: copy that to the others.
    repeats = np.flatnonzero((listed.high[1:] == listed.high[:-1]) & (listed.low[1:] == listed.low[:-1])) + 1
    if len(repeats):
        new_run = np.ones(len(repeats), dtype=bool)
        new_run[1:] = repeats[1:] != repeats[:-1] + 1
        run_first = np.maximum.accumulate(np.where(new_run, np.arange(len(repeats)), 0))
        leaders = repeats[run_first] - 1
        if places is not None:
            repeats, leaders = places[repeats], places[leaders]
        batch[repeats], source[repeats], length[repeats] = batch[leaders], source[leaders], length[leaders]
    missing = int(np.count_nonzero(batch < 0))
    if missing:
        raise _missing(what, missing, count)
    index = RepositoryIndex(list(pack_numbers), np.concatenate(batch_parts) if batch_parts else np.empty(0, BATCH_DTYPE))
    return RecordLocations(index, batch, source, length)


def locate_listed(objects: Iterable[tuple[str, IndexObject]], ids: bytes | bytearray, what: str) -> RecordLocations:
    """The records ``ids`` (a list, 16 bytes an id) located by :func:`locate_streaming`, in list order.

    Raises IntegrityError when an id is missing, and whatever ``objects`` raises.
    """
    high, low = split_ids(np.frombuffer(ids, "S16"))
    return _locate_halves(objects, high, low, what)


def _locate_halves(objects: Iterable[tuple[str, IndexObject]], high: np.ndarray, low: np.ndarray, what: str) -> RecordLocations:
    """:func:`locate_listed` from the ids' halves, which are sorted in place (no second copy is
    held); the locations are written straight at their list positions."""
    from strongroom.repository.repository import release_free_memory

    order = sort_order(high, low)
    high[:] = high[order]
    low[:] = low[order]
    release_free_memory()  # the sort's and gathers' temporaries, before the locations are allocated
    if len(order) < 1 << 31:
        order = order.astype(np.int32)
    return locate_streaming(objects, SortedIds(high, low), what, order)


class _Ahead(Generic[_Item]):
    """The items of an iterator, produced in a thread of its own at most ``depth`` ahead of the
    consumer (a bounded queue). Iterating re-raises, in the consumer's thread, what the iterator
    raised; leaving the context stops the thread (items not taken are dropped)."""

    _DONE = object()

    def __init__(self, items: Iterable[_Item], depth: int) -> None:
        self.items = items
        self.queue: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="restore index reader", daemon=True)

    def __enter__(self) -> _Ahead[_Item]:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.05)  # make room so that a blocked put returns
            except queue.Empty:
                pass
        self.thread.join()

    def _put(self, item: tuple[bool, Any]) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self.items:
                if not self._put((True, item)):
                    return
        except BaseException as error:  # handed to the consumer
            self._put((False, error))
            return
        self._put((True, self._DONE))

    def __iter__(self) -> Iterator[_Item]:
        while True:
            ok, item = self.queue.get()
            if not ok:
                raise item
            if item is self._DONE:
                return
            yield item


def read_batch(repository: Repository, index: RepositoryIndex, batch_number: int, pack_keys: dict[int, str]) -> bytes:
    """The plaintext of batch ``batch_number``: fetched, decrypted and decompressed.

    Raises IntegrityError (damaged, forged), IdentityError (no data key), StorageError.
    """
    key_name, key = batch_key(repository, index, batch_number, pack_keys)
    return open_batch(repository, index, batch_number, key_name, key)


def batch_key(repository: Repository, index: RepositoryIndex, batch_number: int, pack_keys: dict[int, str]) -> tuple[str, bytes]:
    """The data key (object name, key) of batch ``batch_number``'s pack; ``pack_keys`` caches pack headers.

    Raises IntegrityError, IdentityError, StorageError.
    """
    pack_number = int(index.batches[batch_number]["pack"])
    if pack_number not in pack_keys:
        pack_name = index.packs[pack_number]
        header = repository.backend.load(Handle(ObjectType.DATA, pack_name), 0, PACK_HEADER_SIZE)
        pack_keys[pack_number] = parse_pack_header(header, f"pack {pack_name[:12]}")
    key_name = pack_keys[pack_number]
    return key_name, repository.data_key(key_name)


def open_batch(repository: Repository, index: RepositoryIndex, batch_number: int, key_name: str, key: bytes) -> bytes:
    """The plaintext of batch ``batch_number`` sealed with ``key`` (safe to call from several threads).

    Raises IntegrityError (damaged, forged), StorageError.
    """
    batch = index.batches[batch_number]
    pack_name = index.packs[int(batch["pack"])]
    sealed = repository.backend.load(Handle(ObjectType.DATA, pack_name), int(batch["offset"]), int(batch["length"]))
    what = f"a batch of pack {pack_name[:12]}"
    if len(sealed) != int(batch["length"]):
        raise IntegrityError(f"{what} is truncated")
    plaintext = unseal(key, sealed, batch_associated_data(key_name, bytes(batch["batch_id"])), what)
    del sealed
    return decompress(plaintext, what)


class _Prefetcher:
    """Fetches, decrypts and decompresses batches in the order they will be needed, :data:`PREFETCH`
    ahead, in :data:`FETCH_THREADS` threads (reading, decryption and zstd release the GIL).
    Data keys are opened in the caller's thread, one at a time."""

    def __init__(self, repository: Repository, index: RepositoryIndex, order: list[int]) -> None:
        self.repository = repository
        self.index = index
        self.order = order
        self.submitted = 0
        self.pack_keys: dict[int, str] = {}
        self.pending: collections.deque[tuple[int, Future[bytes]]] = collections.deque()
        self.executor = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="strongroom-restore")

    def _fill(self) -> None:
        while self.submitted < len(self.order) and len(self.pending) < PREFETCH:
            batch_number = self.order[self.submitted]
            key_name, key = batch_key(self.repository, self.index, batch_number, self.pack_keys)
            future = self.executor.submit(open_batch, self.repository, self.index, batch_number, key_name, key)
            self.pending.append((batch_number, future))
            self.submitted += 1

    def next(self, batch_number: int) -> bytes:
        """The plaintext of ``batch_number``, which must be the next batch of the order.
        Raises what :func:`open_batch` and :func:`batch_key` raise."""
        self._fill()
        expected, future = self.pending.popleft()
        assert expected == batch_number, "batches are taken in the order given"
        plaintext = future.result()
        self._fill()
        return plaintext

    def close(self) -> None:
        """Stop fetching (what is in flight finishes and is dropped)."""
        for _, future in self.pending:
            future.cancel()
        self.executor.shutdown(wait=True)
        self.pending.clear()


def _runs(locations: RecordLocations) -> tuple[list[int], list[int], list[int]]:
    """The records as runs consecutive in one batch: (batch, start in its plaintext, end) of each run."""
    return _runs_of(locations.batch, locations.source, locations.length)


def _runs_of(batch: np.ndarray, source: np.ndarray, length: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """:func:`_runs` of records given as three aligned arrays."""
    if len(batch) == 0:
        return [], [], []
    ends = source.astype(np.int64) + length
    starts = np.flatnonzero(np.concatenate(([True], (batch[1:] != batch[:-1]) | (source[1:] != ends[:-1]))))
    last = np.append(starts[1:], len(batch)) - 1
    return batch[starts].tolist(), source[starts].astype(np.int64).tolist(), ends[last].tolist()


@dataclass
class PlannedRuns:
    """A restore's runs, found from location hints: (batch, start, end) in output order, the
    batches being rows of ``index.batches``."""

    index: RepositoryIndex
    batches: list[int]
    starts: list[int]
    ends: list[int]


def plan_from_hints(repository: Repository, component: dict[str, Any], what: str) -> PlannedRuns | None:
    """The runs of a record component from the location hints of its list chain (see
    locations.py), or None when it has none (then the caller locates every record).

    Records whose hint is unknown, or whose pack is no longer stored (repacked), are located
    in the index objects, and only those. Hints that cannot be read are logged and ignored.
    Raises IntegrityError (a record in no index object), StorageError.
    """
    names = component.get("locations")
    if not names or "list" not in component:
        return None
    try:
        chain = load_chain(str(component["list"]), dict(names), repository.load_hints)
        if chain is None:
            return None
        mapping = LocationMap(chain)
    except (IntegrityError, ObjectNotFound, RepositoryError) as error:  # RepositoryError: a newer format version
        log.warning("%s: the location hints are unreadable (%s): every record is located in the index", what, error.message)
        return None
    mapping.drop_packs({info.handle.name for info in repository.backend.list(ObjectType.DATA)})
    batch, start, end, literal = mapping.pieces()
    index = RepositoryIndex(list(mapping.packs), mapping.batches)
    unknown = np.flatnonzero(batch == UNKNOWN)
    if len(unknown):
        # Pieces the hints cannot place (one literal each): located in the index, only those.
        needed, inverse = np.unique(literal[unknown], return_inverse=True)
        found, index = _locate_missing(repository, mapping, chain, needed, what)
        batch[unknown] = found.batch[inverse].astype(np.int64) + len(mapping.batches)
        start[unknown] = found.source[inverse]
        end[unknown] = found.source[inverse].astype(np.int64) + found.length[inverse]
    del chain, mapping, literal
    if len(batch) == 0:
        return PlannedRuns(index, [], [], [])
    # join pieces that continue each other in one batch
    joined = np.ones(len(batch), dtype=bool)
    joined[1:] = (batch[1:] != batch[:-1]) | (start[1:] != end[:-1])
    first = np.flatnonzero(joined)
    last = np.append(first[1:], len(batch)) - 1
    return PlannedRuns(index, batch[first].tolist(), start[first].tolist(), end[last].tolist())


def _locate_missing(
    repository: Repository, mapping: LocationMap, chain: list[Hints], missing: np.ndarray, what: str
) -> tuple[RecordLocations, RepositoryIndex]:
    """Locate the joined literals ``missing`` of ``mapping`` in the index objects; return their
    places (aligned with ``missing``; batches numbered after ``mapping``'s) and the index of
    every batch now referred to."""
    objects = mapping.object_of(missing)
    ids = np.empty(len(missing), "S16")
    for number in np.unique(objects).tolist():
        chosen = np.flatnonzero(objects == number)
        literals = np.frombuffer(repository.load_list(chain[number].list_name).literals, "S16")
        ids[chosen] = literals[missing[chosen] - mapping.literal_base[number]]
    high, low = split_ids(ids)
    del ids
    located = _locate_halves(repository.iter_index_objects(), high, low, what)
    numbers = {name: number for number, name in enumerate(mapping.packs)}
    remap = np.array([numbers.setdefault(name, len(numbers)) for name in located.index.packs], dtype="<u4")
    extra = located.index.batches.copy()
    if len(extra):
        extra["pack"] = remap[extra["pack"]]
    return located, RepositoryIndex(list(numbers), np.concatenate([mapping.batches, extra]))


def write_component(
    repository: Repository,
    index: RepositoryIndex | None,
    ids: bytes | bytearray | np.ndarray | tuple[np.ndarray, np.ndarray] | None,
    target: Path,
    *,
    what: str,
    hasher: Any,
    size: int | None = None,
    planned: PlannedRuns | None = None,
) -> int:
    """Write the records ``ids`` into a new file ``target`` (mode 0600), updating ``hasher`` with
    its content in order; return its size. ``ids`` is the list (16 bytes an id) or, without an
    index, may be its two halves as :func:`split_ids` gives them (then sorted in place). Without
    ``index`` the ids are located reading the index objects one at a time. ``size``, the size
    the snapshot gives, lets the file's pages be prepared while the records are located (see
    :class:`_Prefill`); the file always ends up exactly as long as what was written. Given
    ``planned`` (runs found from location hints), ``ids`` and ``index`` are not used.

    Raises UsageError when ``target`` exists, IntegrityError, IdentityError, StorageError.
    """
    if planned is None and ids is None:
        raise UsageError("a restore needs the list of ids or planned runs")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{target} already exists: restore never overwrites", hint="name an empty folder") from None
    # The file's pages are prepared while the records are located (one core idle); with planned runs
    # there is no such wait, and zeroing first would only copy every page twice.
    prefill = _Prefill(fd, size if planned is None else None)
    try:
        if planned is not None:
            run_batches, run_starts, run_ends, found_index = planned.batches, planned.starts, planned.ends, planned.index
        elif index is None:
            # The index objects are read, decrypted and decompressed in a thread while the list is
            # split and sorted here (both release the GIL for most of their work).
            with _Ahead(repository.iter_index_objects(), INDEX_AHEAD) as objects:
                if isinstance(ids, tuple):
                    high, low = ids
                else:
                    assert ids is not None
                    high, low = split_ids(np.frombuffer(ids, "S16"))
                del ids  # the caller passes the list without keeping it: 16 bytes a record freed here
                locations = _locate_halves(objects, high, low, what)
                del high, low
        else:
            if isinstance(ids, tuple) or ids is None:
                raise UsageError("a restore with a merged index takes the list of ids, not its halves")
            locations = locate_in_index(index, ids, what)
            del ids
        if planned is None:
            run_batches, run_starts, run_ends = _runs(locations)
            found_index = locations.index
            if size is None:
                prefill.start(int(locations.length.sum(dtype=np.int64)))
            del locations
    except BaseException:
        prefill.stop()
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    last_use: dict[int, int] = {}
    for number, batch_number in enumerate(run_batches):
        last_use[batch_number] = number
    writer = _Writer(fd, hasher, prefill)
    fetcher = _Prefetcher(repository, found_index, list(dict.fromkeys(run_batches)))
    try:
        buffer = writer.buffer()
        filled = 0
        kept: dict[int, memoryview] = {}
        for number, (batch_number, start, end) in enumerate(zip(run_batches, run_starts, run_ends)):
            plaintext = kept.get(batch_number)
            if plaintext is None:
                plaintext = kept[batch_number] = memoryview(fetcher.next(batch_number))
            if end > len(plaintext):
                raise IntegrityError(f"{what}: a batch is shorter than its index says")
            while start < end:  # a run longer than the room left continues in the next buffer
                take = min(end - start, WRITE_BUFFER - filled)
                buffer[filled : filled + take] = plaintext[start : start + take]
                filled += take
                start += take
                if filled == WRITE_BUFFER:
                    writer.put(buffer, filled)
                    buffer, filled = writer.buffer(), 0
            if last_use[batch_number] == number:
                del kept[batch_number]
        writer.put(buffer, filled)
        total = writer.finish()
        prefill.stop()
        os.ftruncate(fd, total)  # zeros prepared past the end (a wrong size given) go
        os.fsync(fd)
    except BaseException:
        fetcher.close()
        writer.abandon()
        prefill.stop()
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    fetcher.close()
    os.close(fd)
    return total


class _Writer:
    """Hashes buffers in order in a thread of its own and writes them at their offsets with
    :data:`WRITE_THREADS` threads, so that writing the output overlaps fetching and decompressing
    the next batches (hashing, writing, reading, decryption and zstd release the GIL).

    Filling pages of the page cache costs more system time than any other step of a restore,
    so it is spread over threads (``pwrite`` at distinct offsets). Buffers are reused: at most
    :data:`WRITE_QUEUE` + :data:`WRITE_THREADS` + 1 exist, which bounds memory and keeps them
    out of freshly mapped pages.
    """

    def __init__(self, fd: int, hasher: Any, prefill: _Prefill) -> None:
        self.fd = fd
        self.hasher = hasher
        self.prefill = prefill
        self.offset = 0
        self.written = 0
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self.buffers = 0
        self.queue: queue.Queue[tuple[bytearray, int] | None] = queue.Queue(maxsize=WRITE_QUEUE)
        self.writes = ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="strongroom-restore-write")
        self.pending: collections.deque[Future[None]] = collections.deque()
        self.thread = threading.Thread(target=self._run, name="restore hasher", daemon=True)
        self.thread.start()

    def buffer(self) -> bytearray:
        """A buffer of :data:`WRITE_BUFFER` bytes to fill: a reused one, or a new one while fewer
        than the bound exist. Raises what writing raised so far (OSError)."""
        if self.error is not None:
            raise self.error
        if self.buffers < WRITE_QUEUE + WRITE_THREADS + 1:
            try:
                return self.free.get_nowait()
            except queue.Empty:
                self.buffers += 1
                return bytearray(WRITE_BUFFER)
        return self.free.get()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            buffer, length = item
            if self.error is not None:
                self.free.put(buffer)
                continue
            try:
                with memoryview(buffer) as view:
                    self.hasher.update(view[:length])
                self.prefill.claim(self.offset + length)
                self.pending.append(self.writes.submit(self._write, buffer, length, self.offset))
                self.offset += length
                while self.pending and self.pending[0].done():
                    self.pending.popleft().result()
            except BaseException as error:  # handed to the caller's thread by finish()
                self.error = error
                self.free.put(buffer)

    def _write(self, buffer: bytearray, length: int, offset: int) -> None:
        """Write ``buffer[:length]`` at ``offset``, then hand the buffer back for reuse."""
        try:
            with memoryview(buffer) as whole:
                view = whole[:length]
                while view:
                    count = os.pwrite(self.fd, view[:WRITE_PIECE], offset)
                    offset += count
                    view = view[count:]
                view.release()
            _start_writeback(self.fd, offset - length, length)
            with self.lock:
                self.written += length
        except BaseException as error:
            self.error = self.error or error
            raise
        finally:
            self.free.put(buffer)

    def put(self, buffer: bytearray, length: int) -> None:
        """Queue the first ``length`` bytes of ``buffer`` (no longer touched by the caller) to be
        hashed and written after those queued before. Raises what writing raised so far (OSError)."""
        if self.error is not None:
            raise self.error
        if length:
            self.queue.put((buffer, length))
        else:
            self.free.put(buffer)

    def _drain(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.writes.shutdown(wait=True)

    def finish(self) -> int:
        """Wait for every queued buffer; return the bytes written. Raises what writing raised (OSError)."""
        self._drain()
        for future in self.pending:
            future.result()
        self.pending.clear()
        if self.error is not None:
            raise self.error
        return self.written

    def abandon(self) -> None:
        """Stop the threads after what they hold (on an error in the caller's thread)."""
        if self.thread.is_alive():
            self.error = self.error or UsageError("restore abandoned")
            self._drain()


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` from the C library, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to the disk now, without
    waiting (``sync_file_range(SYNC_FILE_RANGE_WRITE)``), so that the final ``fsync`` finds
    little left to do. Only a hint: failures are ignored, the ``fsync`` still decides."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


class _Prefill:
    """Writes zeros into the output file ahead of the records, in a thread of its own, from the
    start of the restore, so that the page cache holds the file's pages before they are written.

    Giving a file fresh pages of the page cache is the largest system cost of a restore on a
    virtual machine whose memory is mapped on first use (written 8 MiB at a time: about 1.7 s of
    2.9 s of system time for a 1.2 GB dump; 128 KiB at a time, see :data:`WRITE_PIECE`: 0.3-0.6 s),
    and it is serial in the writing threads. Done while the list is located (one busy core), the
    records then overwrite cached pages (1.2 GB in about 0.15 s). The zeros never
    land where records were written: the writer claims each range before writing it, which
    waits for a zero write in flight there, and the prefill only writes beyond the claimed
    front, at most :data:`PREFILL_AHEAD` bytes ahead of it (bounding dirty zero pages on a large
    restore). Nothing is done without a size.
    """

    def __init__(self, fd: int, size: int | None) -> None:
        self.fd = fd
        self.condition = threading.Condition()
        self.claimed = 0  # the writer's front: every byte below it is the writer's
        self.busy: tuple[int, int] | None = None  # the range being zeroed
        self.stopped = False
        self.thread: threading.Thread | None = None
        if size:
            self.start(size)

    def start(self, size: int) -> None:
        """Begin zeroing the first ``size`` bytes (once)."""
        if self.thread is None and size > 0 and not self.stopped:
            self.thread = threading.Thread(target=self._run, args=(size,), name="restore prefill", daemon=True)
            self.thread.start()

    def _run(self, size: int) -> None:
        zeros = bytes(PREFILL_PIECE)
        position = 0
        try:
            while True:
                with self.condition:
                    position = max(position, self.claimed)
                    while not self.stopped and position < size and position >= self.claimed + PREFILL_AHEAD:
                        self.condition.wait()
                        position = max(position, self.claimed)
                    if self.stopped or position >= size:
                        return
                    end = min(size, position + PREFILL_PIECE)
                    self.busy = (position, end)
                os.pwrite(self.fd, memoryview(zeros)[: end - position], position)
                with self.condition:
                    self.busy = None
                    self.condition.notify_all()
                position = end
        except OSError:
            return  # only a preparation: the writer reports its own errors
        finally:
            with self.condition:
                self.busy = None
                self.condition.notify_all()

    def claim(self, end: int) -> None:
        """Make every byte below ``end`` the writer's: wait while zeros are written there."""
        with self.condition:
            while self.busy is not None and self.busy[0] < end:
                self.condition.wait()
            self.claimed = max(self.claimed, end)
            self.condition.notify_all()

    def stop(self) -> None:
        """Stop zeroing and wait for the thread."""
        with self.condition:
            self.stopped = True
            self.condition.notify_all()
        if self.thread is not None:
            self.thread.join()
