"""Repack: copy the live chunks of mostly-dead packs into new packs, then mark the old packs.

Prune deletes only packs that no snapshot uses at all; a pack holding one live
chunk stays whole. Reclaiming the dead chunks inside such a pack means decrypting
its live chunks, which needs an identity (the data keys of earlier runs), so
repack runs on a trusted machine holding both the writer key (it writes an index
and signs a marks record) and an identity. Two steps, so that ``--dry-run`` is free:

- :func:`make_plan` measures every pack in use (plaintext bytes of its live and
  dead chunks, from the index) and chooses those whose dead share exceeds the
  threshold;
- :func:`execute_plan` takes the exclusive lock (as a backup does), plans again
  from the snapshots present now, decrypts each chosen pack's live chunks (checking
  every chunk's keyed id), writes them through the normal pack writer under a new
  data key (data key, packs, then the index naming them), and last saves a marks
  record naming the old packs. From then on prune treats the old packs exactly like
  unreferenced ones: every chunk a snapshot needs is located outside marked packs,
  and a later prune deletes them after the grace period and its lock and reference
  checks.

Killed at any point, the repository stays consistent: the old packs are untouched
until prune deletes them, and a new pack is named by an index only after it was
saved. What a killed repack leaves (new packs whose chunks are also in the old
ones) is either used by the next repack (a chunk already stored in an unmarked
pack outside the chosen ones is not copied again) or reclaimed by prune.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from strongroom.errors import IdentityError, IntegrityError, ObjectNotFound, UsageError
from strongroom.repository import idlist
from strongroom.repository.format import PACK_HEADER_SIZE, batch_associated_data, decompress, parse_pack_header
from strongroom.repository.index import IndexObject
from strongroom.repository.keys import object_name, unseal
from strongroom.repository.lock import RepositoryLock
from strongroom.repository.marks import KIND_MARKS, MARKED_TYPES, Marks, read_marks
from strongroom.repository.packer import PackWriter
from strongroom.repository.repository import Repository, chunk_hash_key, chunk_id, parse_time
from strongroom.repository.snapshot import SnapshotHeader, encode_snapshot
from strongroom.storage.backend import Handle, ObjectType

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD_PERCENT = 30.0


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class PackShare:
    """One pack in use: its stored size and the plaintext bytes of its live and of all its chunks."""

    name: str
    stored_bytes: int
    live_bytes: int
    total_bytes: int
    live_chunks: int

    @property
    def dead_share(self) -> float:
        """The fraction (0..1) of the pack's plaintext that no snapshot needs."""
        return 1.0 - self.live_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass
class RepackPlan:
    """What a repack would do: the chosen packs (dead share above ``threshold_percent``)."""

    threshold_percent: float
    chosen: list[PackShare]
    packs_in_use: int
    packs_with_dead_chunks: int

    @property
    def chosen_bytes(self) -> int:
        """Stored bytes of the chosen packs (what a later prune deletes)."""
        return sum(share.stored_bytes for share in self.chosen)

    @property
    def live_bytes(self) -> int:
        """Plaintext bytes of the live chunks in the chosen packs (at most what is copied)."""
        return sum(share.live_bytes for share in self.chosen)

    @property
    def reclaim_bytes(self) -> int:
        """Estimated stored bytes freed once a later prune deleted the chosen packs."""
        return sum(int(share.stored_bytes * share.dead_share) for share in self.chosen)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threshold_percent": self.threshold_percent,
            "packs_in_use": self.packs_in_use,
            "packs_with_dead_chunks": self.packs_with_dead_chunks,
            "chosen_packs": len(self.chosen),
            "chosen_bytes": self.chosen_bytes,
            "live_plaintext_bytes": self.live_bytes,
            "reclaimable_bytes": self.reclaim_bytes,
        }


@dataclass
class RepackResult:
    """What a repack did: the chunks copied, the new packs and index objects, the marks record."""

    plan: RepackPlan
    chunks_copied: int = 0
    plaintext_bytes: int = 0
    stored_bytes: int = 0
    new_packs: int = 0
    index_written: list[str] = field(default_factory=list)
    data_keys: list[str] = field(default_factory=list)
    marked_packs: list[str] = field(default_factory=list)
    marks_record: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "chunks_copied": self.chunks_copied,
            "plaintext_bytes": self.plaintext_bytes,
            "stored_bytes": self.stored_bytes,
            "new_packs": self.new_packs,
            "index_written": len(self.index_written),
            "marked_packs": len(self.marked_packs),
            "marks_record": self.marks_record,
        }


# --- measuring ----------------------------------------------------------------------


@dataclass
class _Entries:
    """Every chunk of the candidate packs as the index objects describe them, one row per
    (pack, chunk) (duplicates from several index objects removed)."""

    packs: list[str]
    ids: np.ndarray  # S16
    pack: np.ndarray  # number in ``packs``
    batch_offset: np.ndarray  # the batch's offset and stored length in its pack
    batch_length: np.ndarray
    batch_id: np.ndarray  # V16
    offset: np.ndarray  # the chunk's offset and length in the batch's plaintext
    length: np.ndarray


def _entries(objects: list[tuple[str, IndexObject]], candidates: set[str]) -> _Entries:
    """The rows of every index object that fall in a pack of ``candidates``."""
    numbers: dict[str, int] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    for _, obj in objects:
        if len(obj.entries) == 0:
            continue
        local = np.array([numbers.setdefault(p, len(numbers)) if p in candidates else -1 for p in obj.packs], dtype=np.int64)
        batch_pack = local[obj.batches["pack"].astype(np.int64)]
        batch_of_entry = obj.entries["batch"].astype(np.int64)
        keep = batch_pack[batch_of_entry] >= 0
        rows = batch_of_entry[keep]
        parts.append((
            obj.entries["id"][keep], batch_pack[rows], obj.batches["offset"][rows].astype(np.int64),
            obj.batches["length"][rows].astype(np.int64), obj.batches["batch_id"][rows],
            obj.entries["offset"][keep].astype(np.int64), obj.entries["length"][keep].astype(np.int64),
        ))
    if not parts:
        empty = np.empty(0, np.int64)
        return _Entries([], np.empty(0, "S16"), empty, empty, empty, np.empty(0, "V16"), empty, empty)
    columns = [np.concatenate([part[k] for part in parts]) for k in range(7)]
    keys = np.empty(len(columns[0]), dtype=[("pack", ">u4"), ("id", "V16")])
    keys["pack"] = columns[1]
    keys["id"] = columns[0].view("V16")
    _, first = np.unique(keys.view("V20"), return_index=True)
    return _Entries(list(numbers), *(column[first] for column in columns))


def needed_ids(repository: Repository, snapshots: Iterable[SnapshotHeader]) -> np.ndarray:
    """Every chunk id the ``snapshots`` need, sorted and unique (S16).

    Raises IntegrityError when a snapshot body or id list cannot be read (repack refuses).
    """
    decoded: dict[str, idlist.IdList] = {}

    def load(name: str) -> idlist.IdList:
        if name not in decoded:
            decoded[name] = repository.load_list(name)
        return decoded[name]

    parts: list[np.ndarray] = []
    for header in snapshots:
        try:
            snapshot = repository.load_snapshot_by_name(header.name)
            for component in snapshot.components:
                ids = idlist.materialize(component["list"], load) if "list" in component else repository.component_ids(component)
                parts.append(np.unique(np.frombuffer(ids, "S16")))
        except (IntegrityError, ObjectNotFound) as error:
            raise IntegrityError(
                f"repack refuses to run: snapshot {header.short_id} cannot be read completely ({error.message})",
                hint="run 'strongroom verify' to see the damage",
            ) from None
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, "S16")


def _marks(repository: Repository, records: Iterable[SnapshotHeader]) -> Marks:
    return read_marks(records, lambda name: repository.load_snapshot_by_name(name).body, parse_time)


@dataclass
class _Survey:
    """Everything a plan and its execution need: the plan, the entries and which are live, the marks."""

    plan: RepackPlan
    entries: _Entries
    live: np.ndarray  # bool, aligned with the entries
    marks: Marks


def _survey(
    repository: Repository, snapshots: Iterable[SnapshotHeader], records: Iterable[SnapshotHeader], threshold_percent: float
) -> _Survey:
    """Measure every unmarked pack that holds a live chunk; choose those above the threshold.

    Raises IntegrityError when an index object or a snapshot cannot be read, StorageError.
    """
    objects, damaged = repository.load_index_objects(skip_damaged=True)
    if damaged:
        raise IntegrityError(
            f"repack refuses to run: index object {damaged[0][0][:12]} cannot be read ({damaged[0][1]})",
            hint="run 'strongroom verify'",
        )
    marks = _marks(repository, records)
    sizes = {info.handle.name: info.size for info in repository.backend.list(ObjectType.DATA)}
    entries = _entries(objects, set(sizes) - marks.packs)
    del objects
    live = np.isin(entries.ids, needed_ids(repository, snapshots))
    count = len(entries.packs)
    total = np.bincount(entries.pack, weights=entries.length, minlength=count)
    live_bytes = np.bincount(entries.pack[live], weights=entries.length[live], minlength=count)
    live_chunks = np.bincount(entries.pack[live], minlength=count)
    shares = [
        PackShare(pack, sizes[pack], int(live_bytes[n]), int(total[n]), int(live_chunks[n]))
        for n, pack in enumerate(entries.packs)
        if live_chunks[n]
    ]
    chosen = sorted(
        (share for share in shares if share.dead_share * 100.0 > threshold_percent), key=lambda s: (-s.dead_share, s.name)
    )
    with_dead = sum(1 for share in shares if share.dead_share > 0.0)
    return _Survey(RepackPlan(threshold_percent, chosen, len(shares), with_dead), entries, live, marks)


def make_plan(repository: Repository, snapshots: Iterable[SnapshotHeader], *, threshold_percent: float = DEFAULT_THRESHOLD_PERCENT) -> RepackPlan:
    """Plan a repack for the chunks ``snapshots`` need (nothing is changed, no identity is used).

    Raises UsageError (bad threshold, no writer key), IntegrityError (repack refuses on
    damage), StorageError.
    """
    check_threshold(threshold_percent)
    _require_writer_key(repository)
    listing = repository.list_snapshots()
    return _survey(repository, snapshots, listing.records, threshold_percent).plan


def check_threshold(threshold_percent: float) -> None:
    """Raises UsageError unless ``threshold_percent`` is in [0, 100)."""
    if not 0.0 <= threshold_percent < 100.0:
        raise UsageError(f"the repack threshold must be a percentage from 0 to 100 (got {threshold_percent:g})")


def _require_writer_key(repository: Repository) -> None:
    if repository.writer_key is None:
        raise UsageError(
            "repack needs the writer key (it writes an index and signs a marks record)",
            hint="run on a trusted machine holding a copy of the writer key ([repository] writer_key) and an identity",
        )


def require_identity(repository: Repository) -> None:
    """Check the repository was opened with an identity that is one of its recipients.

    Raises IdentityError (none given, or not a recipient), IntegrityError, StorageError.
    """
    if not repository.identities:
        raise IdentityError(
            "repack needs a recipient identity: it decrypts the live chunks of old packs",
            hint="give --identity FILE (an age identity, an SSH key, or the passphrase identity made by init)",
        )
    repository.check_identity()


def open_data_keys(repository: Repository, packs: Iterable[str]) -> dict[str, str]:
    """Open the data key of every pack in ``packs`` with the repository's identities (cached);
    return the data key object name of each pack.

    Raises IdentityError (no identity, or one that is not a recipient of a key),
    IntegrityError (a damaged pack header or key), StorageError.
    """
    require_identity(repository)
    names: dict[str, str] = {}
    for pack in packs:
        try:
            header = repository.backend.load(Handle(ObjectType.DATA, pack), 0, PACK_HEADER_SIZE)
        except ObjectNotFound:
            raise IntegrityError(f"repack refuses to run: pack {pack[:12]} disappeared", hint="run 'strongroom verify'") from None
        names[pack] = parse_pack_header(header, f"pack {pack[:12]}")
        repository.data_key(names[pack])
    return names


# --- executing --------------------------------------------------------------------


def execute_plan(
    repository: Repository,
    *,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    step: Callable[[str], None] | None = None,
) -> RepackResult:
    """Repack the repository as it is now: under the exclusive lock, plan again from every
    snapshot present, copy the chosen packs' live chunks into new packs (new data key,
    then packs, then index), then save a marks record naming the chosen packs.

    ``step(name)`` is called before each stage (progress, tests). Raises UsageError (no
    writer key, bad threshold), IdentityError (no identity or one that cannot open a
    data key, before anything is written), IntegrityError (damage: repack refuses, or a
    chunk does not match its id), LockedError, StorageError. Killed or failed at any
    point, the repository stays consistent.
    """
    check_threshold(threshold_percent)
    _require_writer_key(repository)
    assert repository.writer_key is not None
    announce = step or (lambda name: None)
    require_identity(repository)
    announce("lock")
    lock = RepositoryLock(repository.backend, wait_seconds=repository.lock_wait_seconds)
    lock.acquire()
    try:
        announce("plan")
        listing = repository.list_snapshots()
        refused = [p for p in listing.problems if p.kind == "refused"]
        if refused:
            raise IntegrityError(
                f"repack refuses to run: {len(refused)} snapshot objects cannot be read ({refused[0].message})",
                hint="run 'strongroom verify', repair or remove the damaged objects, then repack again",
            )
        survey = _survey(repository, listing.snapshots, listing.records, threshold_percent)
        result = RepackResult(survey.plan)
        if not survey.plan.chosen:
            announce("done")
            return result
        chosen = [share.name for share in survey.plan.chosen]
        key_names = open_data_keys(repository, chosen)
        rows = _rows_to_copy(survey, chosen)

        def new_data_key() -> tuple[bytes, str]:
            key, name = repository.new_data_key()
            result.data_keys.append(name)
            return key, name

        writer = PackWriter(
            repository.backend,
            id_key=repository.writer_key.id_key,
            metadata_key=repository.writer_key.metadata_key,
            data_key=new_data_key,
        )
        try:
            announce("copy")
            chunk_key = chunk_hash_key(repository.writer_key.id_key)
            numbers = {pack: n for n, pack in enumerate(survey.entries.packs)}
            for pack in chosen:
                pack_rows = rows[survey.entries.pack[rows] == numbers[pack]]
                _copy_pack(repository, pack, key_names[pack], survey.entries, pack_rows, chunk_key, writer)
            announce("index")
            writer.flush()
        finally:
            writer.close()
        result.chunks_copied = writer.statistics.chunks
        result.plaintext_bytes = writer.statistics.plaintext_bytes
        result.stored_bytes = writer.statistics.stored_bytes
        result.new_packs = writer.statistics.packs
        result.index_written = list(writer.index_names)
        announce("marks")
        result.marks_record = save_marks(repository, survey.marks, chosen)
        result.marked_packs = sorted(chosen)
        announce("done")
        return result
    finally:
        lock.release()


def _rows_to_copy(survey: _Survey, chosen: list[str]) -> np.ndarray:
    """Rows of ``survey.entries`` to copy: the live chunks of the ``chosen`` packs, once each,
    leaving out those also stored in an unmarked pack that stays (located there from now on)."""
    entries = survey.entries
    numbers = [entries.packs.index(pack) for pack in chosen]
    in_chosen = np.isin(entries.pack, numbers)
    stored_elsewhere = np.isin(entries.ids, entries.ids[~in_chosen])
    rows = np.flatnonzero(survey.live & in_chosen & ~stored_elsewhere)
    _, first = np.unique(entries.ids[rows], return_index=True)
    return np.sort(rows[first])


def _copy_pack(
    repository: Repository, pack: str, key_name: str, entries: _Entries, rows: np.ndarray, chunk_key: bytes, writer: PackWriter
) -> None:
    """Decrypt the chunks at ``rows`` of ``entries`` (all in ``pack``), check their ids, queue them in ``writer``.

    Raises IntegrityError (the pack is damaged, or a chunk does not match its id), StorageError.
    """
    if len(rows) == 0:
        return
    stored = repository.backend.load(Handle(ObjectType.DATA, pack))
    if object_name(stored) != pack:
        raise IntegrityError(f"pack {pack[:12]} does not match its hash: it is damaged", hint="run 'strongroom verify'")
    key = repository.data_key(key_name)
    what = f"a batch of pack {pack[:12]}"
    rows = rows[np.lexsort((entries.offset[rows], entries.batch_offset[rows]))]
    batch_starts = np.flatnonzero(np.diff(entries.batch_offset[rows], prepend=-1))
    for first, last in zip(batch_starts.tolist(), [*batch_starts[1:].tolist(), len(rows)]):
        batch_rows = rows[first:last]
        row = int(batch_rows[0])
        offset, length = int(entries.batch_offset[row]), int(entries.batch_length[row])
        sealed = stored[offset : offset + length]
        if len(sealed) != length:
            raise IntegrityError(f"{what} is truncated", hint="run 'strongroom verify'")
        batch_id = bytes(entries.batch_id[row])
        plaintext = decompress(unseal(key, sealed, batch_associated_data(key_name, batch_id), what), what)
        starts = entries.offset[batch_rows]
        ends = starts + entries.length[batch_rows]
        ids = entries.ids[batch_rows].tobytes()
        view = memoryview(plaintext)
        if int(ends.max()) > len(plaintext):
            raise IntegrityError(f"{what} is shorter than the index says", hint="run 'strongroom verify'")
        for number, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
            if chunk_id(chunk_key, view[start:end]) != ids[16 * number : 16 * number + 16]:
                raise IntegrityError(f"a chunk in {what} does not match its id: the pack is damaged or forged")
        writer.add_records(ids, plaintext, starts, ends)


def save_marks(repository: Repository, marks: Marks, packs: list[str]) -> str:
    """Save a consolidated marks record: the marks in effect plus ``packs`` marked now; it
    supersedes every marks record read. Returns its name. Raises StorageError."""
    assert repository.writer_key is not None
    stamp = time.time()
    pending: dict[str, dict[str, float]] = {kind: dict(marks.times[kind]) for kind in MARKED_TYPES}
    for pack in packs:
        pending["data"].setdefault(pack, stamp)
    header = {
        "kind": KIND_MARKS,
        "repository": repository.repository_id,
        "sequence": 0,
        "predecessor": None,
        "time": datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds"),
        "keys": repository.keys_object,
    }
    stored = encode_snapshot(repository.writer_key, header, {"marked": pending, "supersedes": sorted(marks.records)})
    name = object_name(stored)
    repository.backend.save(Handle(ObjectType.SNAPSHOTS, name), stored)
    return name

