"""Restoring a component: plan the reads from the id list, then read every batch once.

The id list gives each record's length, so each record's offset in the output is
known before any data is read. The records are grouped by the batch that holds
them; each batch is fetched, decrypted and decompressed once, and its records are
written at their offsets (runs that are contiguous both in the batch and in the
output are written with one call). Memory: a few arrays of the list's length
(about 40 bytes a record) plus one batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from strongroom.errors import IntegrityError, UsageError
from strongroom.repository.format import PACK_HEADER_SIZE, batch_associated_data, decompress, parse_pack_header
from strongroom.repository.index import RepositoryIndex
from strongroom.repository.keys import unseal
from strongroom.storage.backend import Handle, ObjectType

if TYPE_CHECKING:
    from strongroom.repository.repository import Repository


def plan(index: RepositoryIndex, ids: bytes, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows in ``index.entries`` for each id, and each record's output offset; plus the total size.

    Raises IntegrityError when an id is missing from the index.
    """
    listed = np.frombuffer(ids, "S16")
    rows = index.locate(listed)
    missing = int(np.count_nonzero(rows < 0))
    if missing:
        raise IntegrityError(
            f"{what}: {missing} of {len(rows)} chunks are missing from the index (damaged or deleted index or packs)",
            hint="run 'strongroom verify' to see the damage",
        )
    lengths = index.entries["length"][rows].astype(np.int64)
    offsets = np.zeros(len(rows), dtype=np.int64)
    if len(rows) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    return rows, offsets, int(lengths.sum())


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


def write_component(repository: Repository, index: RepositoryIndex, ids: bytes, target: Path, *, what: str) -> int:
    """Write the records ``ids`` into a new file ``target`` (mode 0600); return its size.

    Raises UsageError when ``target`` exists, IntegrityError, IdentityError, StorageError.
    """
    rows, offsets, total = plan(index, ids, what)
    entries = index.entries
    batches = entries["batch"][rows].astype(np.int64)
    order = np.argsort(batches, kind="stable")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{target} already exists: restore never overwrites", hint="name an empty folder") from None
    try:
        os.ftruncate(fd, total)
        if len(order):
            sorted_batches = batches[order]
            boundaries = np.flatnonzero(np.diff(sorted_batches)) + 1
            starts = np.concatenate(([0], boundaries))
            ends = np.concatenate((boundaries, [len(order)]))
            pack_keys: dict[int, str] = {}
            for start, end in zip(starts.tolist(), ends.tolist()):
                members = order[start:end]
                batch_number = int(sorted_batches[start])
                plaintext = read_batch(repository, index, batch_number, pack_keys)
                member_rows = rows[members]
                source = entries["offset"][member_rows].astype(np.int64)
                length = entries["length"][member_rows].astype(np.int64)
                destination = offsets[members]
                if int((source + length).max()) > len(plaintext):
                    raise IntegrityError(f"{what}: a batch is shorter than its index says")
                # Split into runs contiguous in both the batch and the output.
                breaks = np.flatnonzero(
                    (destination[1:] != destination[:-1] + length[:-1]) | (source[1:] != source[:-1] + length[:-1])
                ) + 1
                run_starts = np.concatenate(([0], breaks)).tolist()
                run_ends = np.concatenate((breaks, [len(members)])).tolist()
                view = memoryview(plaintext)
                source_list = source.tolist()
                destination_list = destination.tolist()
                end_list = (source + length).tolist()
                for run_start, run_end in zip(run_starts, run_ends):
                    piece = view[source_list[run_start] : end_list[run_end - 1]]
                    position = destination_list[run_start]
                    while piece:
                        written = os.pwrite(fd, piece, position)
                        piece = piece[written:]
                        position += written
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    return total
