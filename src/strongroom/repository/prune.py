"""Prune: remove the snapshots a retention policy lets go, then the data nothing references.

Needs the writer key (it signs removal and marks records and reads metadata), never
an identity. Two steps, so that ``--dry-run`` shows exactly what would happen:

- :func:`make_plan` decides every snapshot (keep or remove, and the rules that
  decided), computes what the kept snapshots reference, and sorts every other
  pack, id list and data key into "delete now" (marked long enough ago, no backup
  that could still use it) or "mark now" (phase 1 of the two-phase removal), and
  estimates what only a repack could reclaim (dead chunks inside live packs);
- :func:`execute_plan` carries it out in a crash-safe order: the signed removal
  record, the snapshot objects, then (after checking live locks and recomputing the
  references from every snapshot now in the repository) new index objects without
  the dead packs, the old index objects, the dead packs, data keys, id lists, and
  last the consolidated marks record.

Killed anywhere, every remaining snapshot still restores: nothing a snapshot needs
is deleted before the objects that point at it are rewritten (see docs/format.md,
"Prune").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from strongroom.errors import IntegrityError, ObjectNotFound, PermanentStorageError, RepositoryError, UsageError
from strongroom.repository import idlist
from strongroom.repository.format import ID_TABLE_LEVEL, INDEX_MAGIC, PACK_HEADER_SIZE, parse_pack_header, seal_metadata
from strongroom.repository.index import IndexObject, RepositoryIndex
from strongroom.repository.keys import object_name
from strongroom.repository.lock import STALE_SECONDS, LockInfo, list_locks
from strongroom.repository.marks import KIND_MARKS, MARKED_TYPES, Marks, read_marks
from strongroom.repository.repository import Repository, SnapshotListing, parse_time
from strongroom.repository.retention import Candidate, Decision, Policy, apply_policy
from strongroom.repository.snapshot import KIND_REMOVAL, SnapshotHeader, encode_snapshot
from strongroom.storage.backend import Handle, ObjectType

log = logging.getLogger(__name__)

CLOCK_MARGIN_SECONDS = 300.0
"""A backup lock created less than this after a mark may not have seen the mark
(the marks record is saved after its time is taken, and clocks of two machines differ)."""

_TYPES = {"data": ObjectType.DATA, "lists": ObjectType.LISTS, "keys": ObjectType.KEYS}


# --- results ---------------------------------------------------------------------


@dataclass
class ObjectGroup:
    """Objects of the three deletable types with their sizes: ``names[type][name] = size``."""

    names: dict[str, dict[str, int]] = field(default_factory=lambda: {kind: {} for kind in MARKED_TYPES})

    def count(self, kind: str | None = None) -> int:
        """How many objects (of ``kind``, or all)."""
        return sum(len(self.names[k]) for k in ([kind] if kind else MARKED_TYPES))

    def size(self) -> int:
        """Their stored bytes."""
        return sum(sum(group.values()) for group in self.names.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and bytes per type."""
        return {kind: {"count": len(self.names[kind]), "bytes": sum(self.names[kind].values())} for kind in MARKED_TYPES} | {
            "bytes": self.size()
        }


@dataclass
class PrunePlan:
    """What a prune would do. ``decisions`` are newest first."""

    decisions: list[Decision]
    delete_now: ObjectGroup
    mark_now: ObjectGroup
    waiting: ObjectGroup
    waiting_reasons: list[str]
    repack_bytes: int
    repack_packs: int
    mostly_dead_packs: int
    referenced_bytes: int
    marks: Marks
    now: float

    @property
    def remove(self) -> list[str]:
        """Names of the snapshots to remove, oldest first."""
        return [d.snapshot.name for d in reversed(self.decisions) if not d.keep]


@dataclass
class PruneResult:
    """What a prune did."""

    removed_snapshots: list[str] = field(default_factory=list)
    removal_record: str | None = None
    deleted: ObjectGroup = field(default_factory=ObjectGroup)
    index_written: list[str] = field(default_factory=list)
    index_deleted: list[str] = field(default_factory=list)
    marked: ObjectGroup = field(default_factory=ObjectGroup)
    marks_record: str | None = None
    marks_deleted: list[str] = field(default_factory=list)
    kept_back: list[str] = field(default_factory=list)


@dataclass
class References:
    """What a set of snapshots uses: packs, id lists, data keys, and the needed chunk ids."""

    packs: set[str]
    lists: set[str]
    keys: set[str]
    rows: np.ndarray  # rows of ``index.entries`` of the needed chunks (full index)
    index: RepositoryIndex


# --- reading the repository -------------------------------------------------------


def _listing(repository: Repository) -> SnapshotListing:
    """The snapshot listing, refusing to prune when a snapshot object is refused (damaged or forged)."""
    listing = repository.list_snapshots()
    refused = [p for p in listing.problems if p.kind == "refused"]
    if refused:
        raise IntegrityError(
            f"prune refuses to run: {len(refused)} snapshot objects cannot be read ({refused[0].message})",
            hint="run 'strongroom verify', repair or remove the damaged objects, then prune again",
        )
    return listing


def _marks(repository: Repository, listing: SnapshotListing) -> Marks:
    return read_marks(listing.records, lambda name: repository.load_snapshot_by_name(name).body, parse_time)


def _objects(repository: Repository, object_type: ObjectType) -> dict[str, int]:
    return {info.handle.name: info.size for info in repository.backend.list(object_type)}


def _index_objects(repository: Repository) -> list[tuple[str, IndexObject]]:
    objects, damaged = repository.load_index_objects(skip_damaged=True)
    if damaged:
        raise IntegrityError(
            f"prune refuses to run: index object {damaged[0][0][:12]} cannot be read ({damaged[0][1]})",
            hint="without every index object prune cannot tell which packs are in use: run 'strongroom verify'",
        )
    return objects


def without_packs(index_object: IndexObject, dropped: set[str] | frozenset[str]) -> IndexObject:
    """``index_object`` without the packs in ``dropped`` (their batches and entries), renumbered."""
    keep_packs = [pack for pack in index_object.packs if pack not in dropped]
    if len(keep_packs) == len(index_object.packs):
        return index_object
    new_number = np.full(len(index_object.packs), -1, dtype=np.int64)
    for number, pack in enumerate(index_object.packs):
        if pack not in dropped:
            new_number[number] = keep_packs.index(pack)
    batches = index_object.batches
    batch_kept = new_number[batches["pack"]] >= 0 if len(batches) else np.zeros(0, bool)
    new_batch = np.full(len(batches), -1, dtype=np.int64)
    new_batch[batch_kept] = np.arange(int(batch_kept.sum()))
    kept_batches = batches[batch_kept].copy()
    if len(kept_batches):
        kept_batches["pack"] = new_number[kept_batches["pack"]]
    entries = index_object.entries
    entry_kept = batch_kept[entries["batch"]] if len(entries) else np.zeros(0, bool)
    kept_entries = entries[entry_kept].copy()
    if len(kept_entries):
        kept_entries["batch"] = new_batch[kept_entries["batch"]]
    return IndexObject(keep_packs, kept_batches, kept_entries)


def compute_references(
    repository: Repository,
    snapshots: Iterable[SnapshotHeader],
    objects: list[tuple[str, IndexObject]],
    *,
    avoid_packs: frozenset[str] = frozenset(),
) -> References:
    """What ``snapshots`` use. A chunk found outside ``avoid_packs`` is located there (so a pack
    whose chunks were stored again elsewhere is not needed); otherwise in any pack.

    Raises IntegrityError (refusing to prune) when a snapshot body or id list cannot be
    read, or a needed chunk is in no index object.
    """
    decoded: dict[str, idlist.IdList] = {}

    def load(name: str) -> idlist.IdList:
        if name not in decoded:
            decoded[name] = repository.load_list(name)
        return decoded[name]

    lists: set[str] = set()
    keys: set[str] = {repository.keys_object}
    parts: list[np.ndarray] = []
    for header in snapshots:
        try:
            snapshot = repository.load_snapshot_by_name(header.name)
            keys.update(str(k) for k in snapshot.body.get("data_keys", []))
            keys.add(header.keys)
            for component in snapshot.components:
                if "list" in component:
                    lists.update(idlist.chain_of(component["list"], load))
                    lists.update(str(name) for name in (component.get("locations") or {}).values())
                    parts.append(np.frombuffer(idlist.materialize(component["list"], load), "S16"))
                else:
                    parts.append(np.frombuffer(repository.component_ids(component), "S16"))
        except (IntegrityError, ObjectNotFound) as error:
            raise IntegrityError(
                f"prune refuses to run: snapshot {header.short_id} cannot be read completely ({error.message})",
                hint="run 'strongroom verify' to see the damage",
            ) from None
    ids = np.unique(np.concatenate(parts)) if parts else np.empty(0, "S16")
    full = RepositoryIndex.merge(objects)
    rows = full.locate(ids)
    if np.any(rows < 0):
        raise IntegrityError(
            f"prune refuses to run: {int(np.count_nonzero(rows < 0))} chunks the snapshots need are in no index object",
            hint="run 'strongroom verify': an index object is missing or damaged",
        )
    if avoid_packs:
        preferred = RepositoryIndex.merge([(name, without_packs(obj, avoid_packs)) for name, obj in objects])
        preferred_rows = preferred.locate(ids)
        elsewhere = preferred_rows >= 0
        packs = _packs_of(preferred, preferred_rows[elsewhere]) | _packs_of(full, rows[~elsewhere])
    else:
        packs = _packs_of(full, rows)
    return References(packs, lists, keys, rows, full)


def _packs_of(index: RepositoryIndex, rows: np.ndarray) -> set[str]:
    if len(rows) == 0:
        return set()
    batches = np.unique(index.entries["batch"][rows])
    return {index.packs[n] for n in np.unique(index.batches["pack"][batches]).tolist()}


def pack_keys(repository: Repository, packs: Iterable[str]) -> dict[str, str]:
    """The data key object each pack was sealed with (from its first bytes). Unreadable packs are left out."""
    found = {}
    for pack in packs:
        try:
            header = repository.backend.load(Handle(ObjectType.DATA, pack), 0, PACK_HEADER_SIZE)
            found[pack] = parse_pack_header(header, f"pack {pack[:12]}")
        except (IntegrityError, RepositoryError, ObjectNotFound) as error:
            log.warning("cannot read the header of pack %s: %s", pack[:12], error.message)
    return found


def live_locks(repository: Repository, now: float) -> list[LockInfo]:
    """The backup locks that are not stale."""
    return [lock for lock in list_locks(repository.backend) if not lock.is_stale(now, STALE_SECONDS)]


def _blocking_lock(locks: list[LockInfo], marked_at: float) -> LockInfo | None:
    """A live lock that may belong to a backup that started before the mark was visible."""
    for lock in locks:
        if lock.created < marked_at + CLOCK_MARGIN_SECONDS:
            return lock
    return None


# --- planning ---------------------------------------------------------------------


def candidates(
    listing: SnapshotListing, drilled: set[str], locked_until: Callable[[SnapshotHeader], datetime | None]
) -> list[Candidate]:
    """Retention candidates of every listed snapshot."""
    return [
        Candidate(
            header.name,
            datetime.fromisoformat(header.time),
            header.sequence,
            drill_passed=header.name in drilled,
            locked_until=locked_until(header),
        )
        for header in listing.snapshots
    ]


def make_plan(
    repository: Repository,
    policy: Policy,
    *,
    grace_seconds: float,
    drilled: set[str] | None = None,
    locked_until: Callable[[SnapshotHeader], datetime | None] = lambda header: None,
    now: float | None = None,
) -> PrunePlan:
    """Plan a prune of ``repository`` under ``policy`` (nothing is changed).

    ``drilled``: names of snapshots with a passed drill. Raises UsageError without
    the writer key, IntegrityError when the repository is too damaged to prune safely
    (a snapshot, list or index object unreadable), StorageError.
    """
    if repository.writer_key is None:
        raise UsageError("prune needs the writer key (it signs removal records)", hint="check [repository] writer_key")
    moment = time.time() if now is None else now
    listing = _listing(repository)
    decisions = apply_policy(
        policy, candidates(listing, drilled or set(), locked_until), now=datetime.fromtimestamp(moment, timezone.utc)
    )
    removed = {d.snapshot.name for d in decisions if not d.keep}
    kept = [h for h in listing.snapshots if h.name not in removed]
    marks = _marks(repository, listing)
    locks = live_locks(repository, moment)
    objects = _index_objects(repository)
    existing = {kind: _objects(repository, _TYPES[kind]) for kind in MARKED_TYPES}
    eligible = _eligible(marks, locks, grace_seconds, moment)
    # Chunks are located outside marked packs where possible: a marked pack whose chunks are
    # stored again elsewhere (by a later backup, or a repack) is not in use.
    references = compute_references(repository, kept, objects, avoid_packs=marks.packs)
    unreferenced = _unreferenced(repository, references, existing, pack_keys(repository, existing["data"]))
    delete_now, mark_now, waiting = ObjectGroup(), ObjectGroup(), ObjectGroup()
    for kind in MARKED_TYPES:
        for name in unreferenced[kind]:
            size = existing[kind][name]
            if name in eligible[kind]:
                delete_now.names[kind][name] = size
            elif marks.time_of(kind, name) is None:
                mark_now.names[kind][name] = size
            else:
                waiting.names[kind][name] = size
    reasons = _waiting_reasons(marks, locks, grace_seconds, moment) if waiting.count() else []
    repack_bytes, repack_packs, mostly_dead = _repack_estimate(references, existing["data"])
    referenced_bytes = sum(existing["data"].get(pack, 0) for pack in references.packs)
    return PrunePlan(
        decisions, delete_now, mark_now, waiting, reasons, repack_bytes, repack_packs, mostly_dead,
        referenced_bytes, marks, moment,
    )


def _eligible(marks: Marks, locks: list[LockInfo], grace_seconds: float, now: float) -> dict[str, set[str]]:
    """Marked objects whose mark is older than the grace period and that no live backup may use."""
    result: dict[str, set[str]] = {}
    for kind in MARKED_TYPES:
        result[kind] = {
            name
            for name, marked_at in marks.times[kind].items()
            if now - marked_at >= grace_seconds and _blocking_lock(locks, marked_at) is None
        }
    return result


def _waiting_reasons(marks: Marks, locks: list[LockInfo], grace_seconds: float, now: float) -> list[str]:
    reasons = []
    times = [t for kind in MARKED_TYPES for t in marks.times[kind].values()]
    young = [t for t in times if now - t < grace_seconds]
    if young:
        reasons.append(f"{len(young)} marks are younger than the grace period ({grace_seconds:.0f} s)")
    for lock in locks:
        if any(lock.created < t + CLOCK_MARGIN_SECONDS for t in times):
            reasons.append(f"a backup may still use marked objects: {lock.describe()}")
    return reasons


def _unreferenced(
    repository: Repository, references: References, existing: dict[str, dict[str, int]], keys_of_packs: dict[str, str]
) -> dict[str, set[str]]:
    """Existing packs, lists and data keys that ``references`` does not use (never the repository keys object).

    Raises IntegrityError when a pack the snapshots need is missing or unreadable.
    """
    packs = set(existing["data"]) - references.packs
    used_keys = references.keys | {keys_of_packs[p] for p in references.packs if p in keys_of_packs}
    unreadable_packs = [p for p in references.packs if p not in keys_of_packs]
    if unreadable_packs:
        raise IntegrityError(
            f"prune refuses to run: pack {unreadable_packs[0][:12]} that snapshots need cannot be read",
            hint="run 'strongroom verify'",
        )
    keys = set(existing["keys"]) - used_keys - {repository.keys_object}
    lists = set(existing["lists"]) - references.lists
    return {"data": packs, "lists": lists, "keys": keys}


def _repack_estimate(references: References, pack_sizes: dict[str, int]) -> tuple[int, int, int]:
    """(bytes a repack could reclaim, packs holding dead chunks, packs more than half dead), estimated
    from the plaintext lengths of dead and live chunks in each pack the snapshots still need."""
    index = references.index
    if len(index.entries) == 0:
        return 0, 0, 0
    pack_of_entry = index.batches["pack"][index.entries["batch"]].astype(np.int64)
    lengths = index.entries["length"].astype(np.int64)
    total = np.bincount(pack_of_entry, weights=lengths, minlength=len(index.packs))
    live = np.bincount(pack_of_entry[references.rows], weights=lengths[references.rows], minlength=len(index.packs))
    reclaim = 0
    with_dead = mostly_dead = 0
    for number, pack in enumerate(index.packs):
        if pack not in references.packs or total[number] == 0:
            continue
        dead_fraction = 1.0 - live[number] / total[number]
        if dead_fraction > 0.0:
            with_dead += 1
            reclaim += int(pack_sizes.get(pack, 0) * dead_fraction)
            if dead_fraction > 0.5:
                mostly_dead += 1
    return reclaim, with_dead, mostly_dead


# --- executing --------------------------------------------------------------------


def _remove(repository: Repository, handle: Handle) -> bool:
    """Delete ``handle``; False when it was already gone."""
    try:
        repository.backend.remove(handle)
        return True
    except ObjectNotFound:
        return False


def _record_header(repository: Repository, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "repository": repository.repository_id,
        "sequence": 0,
        "predecessor": None,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "keys": repository.keys_object,
        **extra,
    }


def save_removal_record(repository: Repository, removed: list[str], reasons: dict[str, list[str]]) -> str:
    """Save a signed removal record listing ``removed``; return its name. Raises StorageError."""
    assert repository.writer_key is not None
    stored = encode_snapshot(
        repository.writer_key, _record_header(repository, KIND_REMOVAL, removed=sorted(removed)), {"reasons": reasons}
    )
    name = object_name(stored)
    repository.backend.save(Handle(ObjectType.SNAPSHOTS, name), stored)
    return name


def execute_plan(
    repository: Repository,
    plan: PrunePlan,
    *,
    grace_seconds: float,
    step: Callable[[str], None] | None = None,
) -> PruneResult:
    """Carry out ``plan``: remove its snapshots, delete what is eligible now, mark the rest.

    References are recomputed from every snapshot in the repository at the time of
    deletion (a backup that committed since the plan is honoured). ``step(name)`` is
    called before each stage (for progress and tests). Raises PermanentStorageError
    when the backend's credentials may not delete (before changing anything),
    IntegrityError (refusing on damage), StorageError (the repository stays
    consistent: run prune again).
    """
    assert repository.writer_key is not None
    if not repository.backend.capabilities.delete:
        raise PermanentStorageError(
            f"the credentials for {repository.backend.location} may not delete objects: prune cannot run with them",
            hint="run prune on a trusted machine with a copy of the writer key and storage credentials that may delete",
        )
    result = PruneResult()
    announce = step or (lambda name: None)

    # 1. Snapshots: the signed removal record first, then the snapshot objects.
    if plan.remove:
        announce("removal record")
        reasons = {d.snapshot.name: list(d.reasons) for d in plan.decisions if not d.keep}
        result.removal_record = save_removal_record(repository, plan.remove, reasons)
        announce("snapshots")
        for name in plan.remove:
            _remove(repository, Handle(ObjectType.SNAPSHOTS, name))
            result.removed_snapshots.append(name)

    # 2. Locks first, then the references of every snapshot now present (in this order: a
    #    backup that commits after the references were computed held its lock at the check).
    announce("references")
    now = time.time()
    locks = live_locks(repository, now)
    listing = _listing(repository)
    marks = _marks(repository, listing)
    objects = _index_objects(repository)
    eligible = _eligible(marks, locks, grace_seconds, now)
    references = compute_references(repository, listing.snapshots, objects, avoid_packs=marks.packs)
    existing = {kind: _objects(repository, _TYPES[kind]) for kind in MARKED_TYPES}
    keys_of_packs = pack_keys(repository, existing["data"])
    unreferenced = _unreferenced(repository, references, existing, keys_of_packs)
    dead = {kind: eligible[kind] & unreferenced[kind] for kind in MARKED_TYPES}
    result.kept_back = sorted(
        f"{kind}/{name[:12]}" for kind in MARKED_TYPES for name in (eligible[kind] & set(existing[kind])) - unreferenced[kind]
    )
    # A data key is dead only when no pack that stays uses it.
    dead["keys"] -= {key for pack, key in keys_of_packs.items() if pack not in dead["data"]}

    # 3. Index objects without the dead packs, then the old ones.
    if dead["data"]:
        announce("index")
        affected = [(name, obj) for name, obj in objects if any(pack in dead["data"] for pack in obj.packs)]
        survivors = [without_packs(obj, dead["data"]) for _, obj in affected]
        merged = _concatenate(survivors)
        if merged is not None:
            stored = seal_metadata(INDEX_MAGIC, repository.writer_key.metadata_key, merged.encode_parts(), level=ID_TABLE_LEVEL)
            name = object_name(stored)
            repository.backend.save(Handle(ObjectType.INDEX, name), stored)
            result.index_written.append(name)
        for name, _ in affected:
            if _remove(repository, Handle(ObjectType.INDEX, name)):
                result.index_deleted.append(name)

    # 4. Packs, data keys, id lists.
    for kind, label in (("data", "packs"), ("keys", "data keys"), ("lists", "lists")):
        if dead[kind]:
            announce(label)
        for name in sorted(dead[kind]):
            if _remove(repository, Handle(_TYPES[kind], name)):
                result.deleted.names[kind][name] = existing[kind][name]

    # 5. The consolidated marks record (only when the marks change), then the records
    #    superseded long enough ago that no backup's listing can miss both.
    announce("marks")
    pending: dict[str, dict[str, float]] = {kind: {} for kind in MARKED_TYPES}
    stamp = time.time()
    for kind in MARKED_TYPES:
        for name in sorted(unreferenced[kind] - dead[kind]):
            earlier = marks.time_of(kind, name)
            pending[kind][name] = stamp if earlier is None else earlier
            if earlier is None:
                result.marked.names[kind][name] = existing[kind][name]
    current = marks.current
    if pending != marks.times or len(current) > 1:
        stored = encode_snapshot(
            repository.writer_key, _record_header(repository, KIND_MARKS), {"marked": pending, "supersedes": sorted(marks.records)}
        )
        result.marks_record = object_name(stored)
        repository.backend.save(Handle(ObjectType.SNAPSHOTS, result.marks_record), stored)
    remaining = set(marks.records)
    for name, superseded_at in sorted(marks.superseded.items()):
        if name in marks.records and stamp - superseded_at >= CLOCK_MARGIN_SECONDS:
            if _remove(repository, Handle(ObjectType.SNAPSHOTS, name)):
                result.marks_deleted.append(name)
            remaining.discard(name)
    # A current record marking nothing, whose superseded records are all gone, says nothing.
    if result.marks_record is None and len(current) == 1 and not any(pending.values()):
        (only,) = current
        if not any(old in remaining for old in marks.supersedes.get(only, ())):
            if _remove(repository, Handle(ObjectType.SNAPSHOTS, only)):
                result.marks_deleted.append(only)
    announce("done")
    return result


def _concatenate(objects: list[IndexObject]) -> IndexObject | None:
    """One index object holding every entry of ``objects`` (None when they hold none)."""
    packs: list[str] = []
    batch_parts: list[np.ndarray] = []
    entry_parts: list[np.ndarray] = []
    batch_count = 0
    for obj in objects:
        if len(obj.entries) == 0 and len(obj.batches) == 0:
            continue
        batches = obj.batches.copy()
        batches["pack"] += len(packs)
        entries = obj.entries.copy()
        entries["batch"] += batch_count
        batch_count += len(batches)
        packs.extend(obj.packs)
        batch_parts.append(batches)
        entry_parts.append(entries)
    if not entry_parts:
        return None
    return IndexObject(packs, np.concatenate(batch_parts), np.concatenate(entry_parts))

