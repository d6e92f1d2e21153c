"""Packing new chunks: batches (compressed, encrypted) into packs, then index objects.

Chunks are appended to a *batch* until it holds :data:`BATCH_TARGET` bytes; the
batch is compressed (zstd) and sealed with the run's data key; batches are
appended to a *pack* until it holds :data:`PACK_TARGET` bytes; the pack is saved
under the hash of its bytes. After every :data:`INDEX_EVERY_PACKS` packs or
:data:`INDEX_ENTRIES` entries, and at :meth:`PackWriter.flush`, an index object
describing the saved packs is written, its entries sorted by chunk id (so a restore
merges them with the sorted list it locates, and never decodes a huge one).
So the order in storage is always: data key, packs, then the index naming them.

Batches are compressed by a pool of :data:`SEAL_THREADS` threads (zstd releases
the GIL), overlapping the caller's chunking and hashing; one more thread takes the
compressed batches in the order they were made, encrypts each into the open pack's
buffer (kept for the whole run) and saves full packs, so packs and index are the
same whatever thread finished first. At most :data:`MAX_QUEUED` batches are in
flight, which bounds memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from strongroom.errors import StrongroomError
from strongroom.repository.format import (
    BATCH_DTYPE,
    ENTRY_DTYPE,
    ID_TABLE_LEVEL,
    INDEX_MAGIC,
    batch_associated_data,
    compress,
    pack_header,
    seal_metadata,
)
from strongroom.repository.index import encode_index_parts, sorted_entries
from strongroom.repository.keys import NONCE_SIZE, TAG_SIZE, keyed_hasher, object_name
from strongroom.storage.backend import Backend, Handle, ObjectType

BATCH_TARGET = 1 << 20
PACK_TARGET = 8 << 20
INDEX_EVERY_PACKS = 8
# An index object is written once this many entries wait (or after INDEX_EVERY_PACKS packs), so
# that readers never decode a huge one: a pack of small records holds a few hundred thousand.
INDEX_ENTRIES = 1 << 17
SEAL_THREADS = max(1, min(4, os.cpu_count() or 1))
MAX_QUEUED = SEAL_THREADS + 3


@dataclass
class PackStatistics:
    """What a PackWriter stored: chunks and their plaintext bytes, stored bytes, objects saved."""

    chunks: int = 0
    plaintext_bytes: int = 0
    stored_bytes: int = 0
    packs: int = 0
    index_objects: int = 0


class PackWriter:
    """Collects new chunks and stores them in packs; writes the index objects that describe them.

    ``data_key`` is called once, before the first pack is saved, and returns
    (key bytes, key object name): the caller saves the age-encrypted key first.
    Raises StorageError (from saving) on :meth:`add` or :meth:`flush` when the worker failed.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        id_key: bytes,
        metadata_key: bytes,
        data_key: Callable[[], tuple[bytes, str]],
    ) -> None:
        self.backend = backend
        self.id_key = id_key
        self.metadata_key = metadata_key
        self._data_key_factory = data_key
        self._data_key: tuple[bytes, str] | None = None
        self.statistics = PackStatistics()
        self.index_names: list[str] = []
        # the batch being filled (caller's thread)
        self._batch = bytearray()
        self._batch_ids = bytearray()
        self._batch_offsets: list[np.ndarray] = []
        # the sealing pool, and the one thread that assembles and saves packs in order
        self._sealers = ThreadPoolExecutor(max_workers=SEAL_THREADS, thread_name_prefix="strongroom-seal")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strongroom-pack")
        # index objects are sorted, sealed and saved by one more thread, after their packs
        self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strongroom-index")
        self._index_futures: list[Future[None]] = []
        self._statistics_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_QUEUED)
        self._futures: list[Future[None]] = []
        self._pack = bytearray()  # the open pack's bytes are its first _pack_size bytes
        self._pack_size = 0
        self._pack_batches: list[tuple[int, int, bytes]] = []  # offset, length, batch id
        self._pack_entries: list[tuple[bytes, np.ndarray, int]] = []  # ids, offsets, plaintext length
        self._saved_packs: list[str] = []
        self._saved_batches: list[np.ndarray] = []
        self._saved_entries: list[np.ndarray] = []
        # every batch of the run, in submission order (a batch's *sequence number* is its row):
        # where records went, for location hints
        self._batch_sequence = 0  # the sequence number of the batch being filled
        self.run_packs: list[str] = []
        self._run_batches: list[np.ndarray] = []
        self._closed = False

    def add(self, chunk_id: bytes, data: bytes | memoryview) -> None:
        """Queue one new chunk. Raises what the worker raised, if it failed."""
        if self._data_key is None:
            self._data_key = self._data_key_factory()
        self._batch_ids += chunk_id
        self._batch_offsets.append(np.array([len(self._batch)], dtype=np.int64))
        self._batch += data
        with self._statistics_lock:
            self.statistics.chunks += 1
            self.statistics.plaintext_bytes += len(data)
        if len(self._batch) >= BATCH_TARGET:
            self._submit_batch()

    def add_records(
        self, chunk_ids: bytes, data: bytes | memoryview, starts: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Queue several new chunks: chunk ``k`` is ``data[starts[k]:ends[k]]``, its id ``chunk_ids[16k:16k+16]``.

        Chunks that follow each other in ``data`` are copied with one slice. Returns where
        each chunk goes: its batch's sequence number (see :meth:`run_batches`, int32) and
        its offset in the batch's plaintext (uint32). Raises what the worker raised, if it failed.
        """
        count = len(starts)
        sequences = np.empty(count, dtype=np.int32)
        places = np.empty(count, dtype=np.uint32)
        if count == 0:
            return sequences, places
        if self._data_key is None:
            self._data_key = self._data_key_factory()
        view = memoryview(data)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        lengths = ends - starts
        cumulative = np.cumsum(lengths)
        first = 0
        while first < count:
            room = BATCH_TARGET - len(self._batch)
            taken_before = int(cumulative[first - 1]) if first else 0
            # the records up to the one that fills the batch (at least one)
            last = int(np.searchsorted(cumulative, taken_before + room, side="left")) + 1
            last = max(first + 1, min(last, count))
            base = len(self._batch)
            offsets = base + cumulative[first:last] - lengths[first:last] - taken_before
            self._batch_offsets.append(offsets)
            sequences[first:last] = self._batch_sequence
            places[first:last] = offsets
            self._batch_ids += chunk_ids[first * 16 : last * 16]
            piece_starts = starts[first:last]
            piece_ends = ends[first:last]
            breaks = np.flatnonzero(piece_starts[1:] != piece_ends[:-1]) + 1
            run_firsts = piece_starts[np.concatenate(([0], breaks))].tolist()
            run_lasts = piece_ends[np.concatenate((breaks, [last - first])) - 1].tolist()
            for run_first, run_last in zip(run_firsts, run_lasts):
                self._batch += view[run_first:run_last]
            with self._statistics_lock:
                self.statistics.chunks += last - first
                self.statistics.plaintext_bytes += int(cumulative[last - 1]) - taken_before
            first = last
            if len(self._batch) >= BATCH_TARGET:
                self._submit_batch()
        return sequences, places

    def _submit_batch(self) -> None:
        if not self._batch_offsets:
            return
        self._batch_sequence += 1
        batch, ids = self._batch, bytes(self._batch_ids)
        offsets = np.concatenate(self._batch_offsets)
        self._batch = bytearray()
        self._batch_ids = bytearray()
        self._batch_offsets = []
        self._raise_failures()
        self._slots.acquire()
        try:
            sealed = self._sealers.submit(self._seal_batch, batch, ids)
            self._futures.append(self._executor.submit(self._add_to_pack, sealed, ids, offsets, len(batch)))
        except BaseException:
            self._slots.release()
            raise

    def _raise_failures(self) -> None:
        remaining = []
        for future in self._futures:
            if future.done():
                future.result()  # raises the worker's error here, in the caller's thread
            else:
                remaining.append(future)
        self._futures = remaining
        for index_future in list(self._index_futures):
            if index_future.done():
                index_future.result()

    # --- worker thread ---

    def _seal_batch(self, batch: bytearray, ids: bytes) -> tuple[bytes, bytes]:
        """(batch id, compressed batch). Runs on a sealing thread (zstd releases the GIL)."""
        hasher = keyed_hasher(self.id_key, b"strongroom batch id")
        hasher.update(ids)
        return hasher.digest(16), compress(batch)

    def _add_to_pack(self, sealed_future: Future[tuple[bytes, bytes]], ids: bytes, offsets: np.ndarray, plaintext_length: int) -> None:
        """Encrypt a compressed batch into the open pack, in submission order; save the pack when full.

        The pack is built in one buffer kept for the whole run (encrypted in place),
        so no per-batch or per-pack buffer is allocated and freed.
        """
        try:
            batch_id, compressed = sealed_future.result()
            assert self._data_key is not None
            key, key_name = self._data_key
            if not self._pack_size:
                header = pack_header(key_name)
                self._reserve(len(header))
                self._pack[: len(header)] = header
                self._pack_size = len(header)
            sealed_length = NONCE_SIZE + len(compressed) + TAG_SIZE
            self._reserve(self._pack_size + sealed_length)
            nonce = os.urandom(NONCE_SIZE)
            start = self._pack_size
            self._pack[start : start + NONCE_SIZE] = nonce
            output = memoryview(self._pack)[start + NONCE_SIZE : start + sealed_length]
            ChaCha20Poly1305(key).encrypt_into(nonce, compressed, batch_associated_data(key_name, batch_id), output)
            output.release()
            del compressed
            self._pack_batches.append((start, sealed_length, batch_id))
            self._pack_entries.append((ids, offsets, plaintext_length))
            self._pack_size += sealed_length
            if self._pack_size >= PACK_TARGET:
                self._save_pack()
        finally:
            self._slots.release()

    def _reserve(self, size: int) -> None:
        """Grow the pack buffer to hold ``size`` bytes (it never shrinks during the run)."""
        if len(self._pack) < size:
            self._pack.extend(bytes(max(size - len(self._pack), PACK_TARGET // 8)))

    def _save_pack(self) -> None:
        if not self._pack_batches:
            return
        # saved from the pack buffer itself (backends do not keep what they are given)
        with memoryview(self._pack)[: self._pack_size] as stored:
            name = object_name(stored)
            self.backend.save(Handle(ObjectType.DATA, name), stored)
            with self._statistics_lock:
                self.statistics.stored_bytes += len(stored)
                self.statistics.packs += 1
        self._pack_size = 0
        pack_number = len(self._saved_packs)
        self._saved_packs.append(name)
        batch_base = sum(len(b) for b in self._saved_batches)
        batches = np.zeros(len(self._pack_batches), BATCH_DTYPE)
        batches["pack"] = pack_number
        batches["offset"] = [b[0] for b in self._pack_batches]
        batches["length"] = [b[1] for b in self._pack_batches]
        batches["batch_id"] = [np.void(b[2]) for b in self._pack_batches]
        self._saved_batches.append(batches)
        run_rows = batches.copy()
        run_rows["pack"] = len(self.run_packs)
        self.run_packs.append(name)
        self._run_batches.append(run_rows)
        entries = np.zeros(sum(len(offsets) for _, offsets, _ in self._pack_entries), ENTRY_DTYPE)
        row = 0
        for number, (ids, offsets, plaintext_length) in enumerate(self._pack_entries):
            rows = slice(row, row + len(offsets))
            entries["id"][rows] = np.frombuffer(ids, "S16")
            entries["batch"][rows] = batch_base + number
            entries["offset"][rows] = offsets
            entries["length"][rows] = np.diff(offsets, append=plaintext_length)
            row += len(offsets)
        self._saved_entries.append(entries)
        self._pack_batches = []
        self._pack_entries = []
        if len(self._saved_packs) >= INDEX_EVERY_PACKS or sum(len(part) for part in self._saved_entries) >= INDEX_ENTRIES:
            self._write_index()

    def _write_index(self) -> None:
        """Hand the saved packs' index to the index thread (its packs are saved: the order holds)."""
        if not self._saved_packs:
            return
        packs, batches, entries = self._saved_packs, self._saved_batches, self._saved_entries
        self._saved_packs, self._saved_batches, self._saved_entries = [], [], []
        self._index_futures.append(self._indexer.submit(self._save_index, packs, batches, entries))

    def _save_index(self, packs: list[str], batches: list[np.ndarray], entries: list[np.ndarray]) -> None:
        """Sort, seal and save one index object (on the index thread, in submission order)."""
        parts = encode_index_parts(packs, batches, [sorted_entries(entries)])
        del entries
        stored = seal_metadata(INDEX_MAGIC, self.metadata_key, parts, level=ID_TABLE_LEVEL)
        del parts
        name = object_name(stored)
        self.backend.save(Handle(ObjectType.INDEX, name), stored)
        with self._statistics_lock:
            self.statistics.stored_bytes += len(stored)
            self.statistics.index_objects += 1
        self.index_names.append(name)

    def _finish(self) -> None:
        self._save_pack()
        self._write_index()

    # --- caller's thread ---

    def flush(self) -> None:
        """Seal the open batch, save the open pack and write the index; return when all is stored.

        Raises StorageError (or another StrongroomError) when a save failed.
        """
        self._submit_batch()
        self._futures.append(self._executor.submit(self._finish))
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()
        indexes, self._index_futures = self._index_futures, []
        for index_future in indexes:
            index_future.result()

    def run_batches(self) -> np.ndarray:
        """Every batch this writer saved (BATCH_DTYPE, ``pack`` a row of :attr:`run_packs`), row k
        the batch of sequence number k. Complete after :meth:`flush`."""
        return np.concatenate(self._run_batches) if self._run_batches else np.zeros(0, BATCH_DTYPE)

    def close(self) -> None:
        """Stop the worker without saving what is still open (used on abort)."""
        if not self._closed:
            self._closed = True
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._sealers.shutdown(wait=True, cancel_futures=True)
            self._indexer.shutdown(wait=True, cancel_futures=True)
            for future in self._futures:
                if future.done() and not future.cancelled():
                    try:
                        future.result()
                    except StrongroomError:
                        pass
            self._futures = []
