"""Checking a repository: every object's hash, snapshot signatures, the chain, references, and data.

Levels:

- always (no key needed): every object's bytes hash to its name (so any flipped
  byte or truncation anywhere is found), every snapshot verifies against the
  pinned writer key, the chain has no gaps or forks;
- with the metadata key (the writer key on the backup host, or an identity): every
  snapshot's body opens, its id lists materialise, every chunk it needs is in the
  index, every pack and data key that holds them exists and is intact; damage is
  reported with the snapshots it affects; packs no snapshot needs are reported as
  "unreferenced, reclaimable by prune" (what a killed backup leaves), not as damage;
- with ``read_data`` and an identity: every batch is decrypted and every chunk's
  keyed id recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from strongroom.errors import IdentityError, IntegrityError, ObjectNotFound, RepositoryError, StorageError
from strongroom.progress import Reporter
from strongroom.repository.format import parse_pack_header
from strongroom.repository.index import RepositoryIndex
from strongroom.repository.keys import object_name
from strongroom.repository.repository import Repository, chunk_hash_key, chunk_id
from strongroom.repository.restore import read_batch
from strongroom.storage.backend import Handle, ObjectType


_MISSING_ENTRIES = Handle(ObjectType.INDEX, "0" * 64)


@dataclass(frozen=True)
class Damage:
    """One damaged, missing or forged object and the snapshots that depend on it."""

    object: str
    message: str
    snapshots: tuple[str, ...] = ()


@dataclass
class CheckResult:
    """What a check found. ``damage`` and ``chain`` problems make it fail; ``unreferenced`` does not."""

    objects_checked: int = 0
    bytes_read: int = 0
    snapshots: int = 0
    damage: list[Damage] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    unreferenced_packs: int = 0
    unreferenced_bytes: int = 0
    chunks_verified: int = 0
    level: str = "structure"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is damaged and the chain is whole."""
        return not self.damage and not self.chain


def check_repository(
    repository: Repository, *, read_data: bool = False, reporter: Reporter | None = None
) -> CheckResult:
    """Check ``repository`` as deeply as the keys it holds allow. Returns what was found.

    Raises IdentityError when ``read_data`` is asked without an identity; StorageError
    when the storage cannot be listed.
    """
    if read_data and not repository.identities:
        raise IdentityError("verify --read-data needs a recipient identity to decrypt the data", hint="give --identity FILE")
    result = CheckResult()
    sizes: dict[Handle, int] = {}
    damaged: dict[Handle, str] = {}
    pack_keys: dict[str, str] = {}

    # 1. Every object's hash (no key needed).
    for object_type in (ObjectType.CONFIG, ObjectType.KEYS, ObjectType.INDEX, ObjectType.LISTS, ObjectType.SNAPSHOTS, ObjectType.DRILLS, ObjectType.DATA):
        infos = list(repository.backend.list(object_type))
        if reporter:
            reporter.phase(f"checking {object_type.value}/", total=sum(i.size for i in infos))
        for info in infos:
            sizes[info.handle] = info.size
            try:
                stored = repository.backend.load(info.handle)
            except ObjectNotFound:
                continue  # removed while listing
            result.objects_checked += 1
            result.bytes_read += len(stored)
            if object_name(stored) != info.handle.name:
                damaged[info.handle] = "its bytes do not match its name (flipped bytes, truncated or replaced)"
            elif object_type is ObjectType.DATA:
                try:
                    pack_keys[info.handle.name] = parse_pack_header(stored[:37], f"pack {info.handle.name[:12]}")
                except (IntegrityError, RepositoryError) as error:
                    damaged[info.handle] = error.message
            if reporter:
                reporter.advance(info.size)

    # 2. Snapshots: signatures and chain.
    listing = repository.list_snapshots()
    result.snapshots = len(listing.snapshots)
    for problem in listing.problems:
        if problem.kind == "refused":
            handle = Handle(ObjectType.SNAPSHOTS, problem.object_name)
            damaged.setdefault(handle, problem.message)
        else:
            result.chain.append(problem.message)

    # 3. References (needs the metadata key).
    try:
        repository.metadata_key
    except IdentityError:
        result.notes.append(
            "no writer key or identity: checked hashes, signatures and the chain, not which snapshots use which objects"
        )
        result.damage = [Damage(str(h), m) for h, m in damaged.items()]
        return result
    result.level = "references"
    affected: dict[Handle, set[str]] = {h: set() for h in damaged}
    objects, bad_indexes = repository.load_index_objects(skip_damaged=True)
    for name, message in bad_indexes:
        handle = Handle(ObjectType.INDEX, name)
        damaged.setdefault(handle, message)
        affected.setdefault(handle, set())
    index = RepositoryIndex.merge(objects)
    del objects
    needed_packs: set[int] = set()
    for header in listing.snapshots:
        label = f"{header.short_id} (sequence {header.sequence}, {header.time})"
        try:
            snapshot = repository.load_snapshot_by_name(header.name)
        except (IntegrityError, ObjectNotFound) as error:
            handle = Handle(ObjectType.SNAPSHOTS, header.name)
            damaged.setdefault(handle, error.message)
            affected.setdefault(handle, set()).add(label)
            continue
        keys_handle = Handle(ObjectType.KEYS, header.keys)
        if keys_handle not in sizes:
            damaged.setdefault(keys_handle, "the repository keys object is missing")
        if keys_handle in damaged:
            affected.setdefault(keys_handle, set()).add(label)
        for component in snapshot.components:
            for hint_name in (component.get("locations") or {}).values():
                # location hints only speed restores up (without them records are looked up in the
                # index), but a snapshot names them: a missing or damaged one is damage all the same
                hint_handle = Handle(ObjectType.LISTS, str(hint_name))
                if hint_handle not in sizes:
                    damaged.setdefault(hint_handle, "the location hints object is missing (restores look records up instead)")
                if hint_handle in damaged:
                    affected.setdefault(hint_handle, set()).add(label)
            if "list" in component:
                chain = _list_chain(repository, component["list"], damaged, sizes)
                broken = [h for h in chain if h in damaged]
                if broken:
                    for handle in broken:
                        affected.setdefault(handle, set()).add(label)
                    continue
            try:
                ids = repository.component_ids(component)
            except (IntegrityError, ObjectNotFound) as error:
                handle = Handle(ObjectType.LISTS, str(component.get("list", "0")))
                damaged.setdefault(handle, error.message)
                affected.setdefault(handle, set()).add(label)
                continue
            rows = index.locate(np.frombuffer(ids, "S16"))
            missing = int(np.count_nonzero(rows < 0))
            if missing:
                damaged.setdefault(_MISSING_ENTRIES, "chunks are in no readable index object (an index object was deleted or damaged)")
                affected.setdefault(_MISSING_ENTRIES, set()).add(f"{label}: {missing} chunks of {component['name']}")
            batches = np.unique(index.entries["batch"][rows[rows >= 0]])
            packs = np.unique(index.batches["pack"][batches]).tolist() if len(batches) else []
            for pack_number in packs:
                needed_packs.add(pack_number)
                pack_handle = Handle(ObjectType.DATA, index.packs[pack_number])
                if pack_handle not in sizes:
                    damaged.setdefault(pack_handle, "the pack is missing")
                if pack_handle in damaged:
                    affected.setdefault(pack_handle, set()).add(label)
                    continue
                key_handle = Handle(ObjectType.KEYS, pack_keys[pack_handle.name])
                if key_handle not in sizes:
                    damaged.setdefault(key_handle, "a data key object is missing")
                if key_handle in damaged:
                    affected.setdefault(key_handle, set()).add(label)

    # 4. Unreferenced packs: reclaimable, not damage.
    needed_names = {index.packs[n] for n in needed_packs}
    for handle, size in sizes.items():
        if handle.type is ObjectType.DATA and handle.name not in needed_names and handle not in damaged:
            result.unreferenced_packs += 1
            result.unreferenced_bytes += size
    # Damaged objects that nothing needs are still damage, but name no snapshot.
    result.damage = [
        Damage("index" if h == _MISSING_ENTRIES else str(h), damaged[h], tuple(sorted(affected.get(h, set()))))
        for h in damaged
    ]

    # 5. Data: decrypt every needed batch and recompute every chunk id.
    if read_data:
        result.level = "data"
        _check_data(repository, index, needed_packs, damaged, result, reporter)
    return result


def _list_chain(repository: Repository, name: str, damaged: dict[Handle, str], sizes: dict[Handle, int]) -> list[Handle]:
    chain = []
    current: str | None = name
    while current is not None and len(chain) < 64:
        handle = Handle(ObjectType.LISTS, current)
        chain.append(handle)
        if handle not in sizes:
            damaged.setdefault(handle, "the id list object is missing")
            break
        if handle in damaged:
            break
        try:
            current = repository.load_list(current).base
        except (IntegrityError, ObjectNotFound, StorageError) as error:
            damaged.setdefault(handle, error.message)
            break
    return chain


def _check_data(
    repository: Repository,
    index: RepositoryIndex,
    needed_packs: set[int],
    damaged: dict[Handle, str],
    result: CheckResult,
    reporter: Reporter | None,
) -> None:
    chunk_key = chunk_hash_key(repository.id_key)
    order = np.argsort(index.entries["batch"], kind="stable")
    batch_of = index.entries["batch"][order]
    boundaries = np.flatnonzero(np.diff(batch_of)) + 1
    starts = np.concatenate(([0], boundaries)).tolist() if len(order) else []
    ends = np.concatenate((boundaries, [len(order)])).tolist() if len(order) else []
    pack_keys: dict[int, str] = {}
    if reporter:
        reporter.phase("reading data", total=len(starts))
    for start, end in zip(starts, ends):
        batch_number = int(batch_of[start])
        pack_number = int(index.batches["pack"][batch_number])
        handle = Handle(ObjectType.DATA, index.packs[pack_number])
        if pack_number not in needed_packs or handle in damaged:
            continue
        try:
            plaintext = read_batch(repository, index, batch_number, pack_keys)
        except (IntegrityError, ObjectNotFound) as error:
            damaged[handle] = error.message
            result.damage.append(Damage(str(handle), error.message))
            continue
        members = index.entries[order[start:end]]
        for entry in members:
            offset, length = int(entry["offset"]), int(entry["length"])
            chunk = plaintext[offset : offset + length]
            if len(chunk) != length or chunk_id(chunk_key, chunk) != bytes(entry["id"]).ljust(16, b"\0"):
                message = "a chunk's content does not match its id"
                damaged[handle] = message
                result.damage.append(Damage(str(handle), message))
                break
            result.chunks_verified += 1
        if reporter:
            reporter.advance(1)
