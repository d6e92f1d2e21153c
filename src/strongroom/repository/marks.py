"""Marks records: prune's signed note that objects are unreferenced and will be deleted later.

Prune removes data in two phases. Phase 1 saves a *marks record* naming every
pack, id list and data key no snapshot references, with the time each was first
marked; it deletes nothing. A later prune deletes a marked object only when the
mark is older than the grace period, no live backup lock started before the mark,
and the object is still unreferenced (see ``docs/format.md``, "Prune").

A marks record is a snapshot object (:func:`~strongroom.repository.snapshot.encode_snapshot`,
signed by the writer key) whose header has ``kind: "marks"``, so the storage cannot
plant or alter one, and whose sealed body is::

    {"marked": {"data": {NAME: TIME, ...}, "lists": {...}, "keys": {...}},
     "supersedes": [NAMES of older marks records]}

TIME is Unix seconds. Each prune writes one consolidated record and names the
records it replaces in ``supersedes``; those are deleted by a later prune, so a
backup listing the repository while a record is replaced always sees one of them.

Backups read the marks when they start and treat chunks of marked packs as
unknown (they store them again): a backup that started after a mark never
references a marked pack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strongroom.repository.index import IndexObject
from strongroom.repository.snapshot import SnapshotHeader

KIND_MARKS = "marks"
MARKED_TYPES: tuple[str, ...] = ("data", "lists", "keys")


@dataclass
class Marks:
    """Every marked object with the earliest time it was marked, and the records that say so.

    ``times[type][name]`` is Unix seconds; ``type`` is ``data``, ``lists`` or ``keys``.
    ``records[name]`` is a marks record's header time (Unix seconds); ``superseded``
    names records that a newer record replaces, with the newer record's time (their
    marks are no longer in effect; a later prune deletes them); ``supersedes`` is what
    each record replaces.
    """

    times: dict[str, dict[str, float]] = field(default_factory=lambda: {kind: {} for kind in MARKED_TYPES})
    records: dict[str, float] = field(default_factory=dict)
    superseded: dict[str, float] = field(default_factory=dict)
    supersedes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def current(self) -> list[str]:
        """The records no other record supersedes (the ones whose marks are in effect)."""
        return sorted(name for name in self.records if name not in self.superseded)

    @property
    def packs(self) -> frozenset[str]:
        """The names of the marked packs."""
        return frozenset(self.times["data"])

    def time_of(self, kind: str, name: str) -> float | None:
        """When ``kind/name`` was first marked (Unix seconds), or None when it is not marked."""
        return self.times[kind].get(name)


def read_marks(records: Iterable[SnapshotHeader], open_body: Callable[[str], dict[str, Any]], parse_time: Callable[[str], float]) -> Marks:
    """The marks in effect: the union of the marks records among ``records`` that no other
    record present supersedes (other kinds of record are skipped).

    ``open_body(name)`` returns a record's decrypted body; ``parse_time`` turns a
    header time into Unix seconds. Raises what ``open_body`` raises (IntegrityError).
    """
    marks = Marks()
    bodies: dict[str, dict[str, Any]] = {}
    for header in records:
        if header.kind != KIND_MARKS:
            continue
        record_time = parse_time(header.time)
        marks.records[header.name] = record_time
        bodies[header.name] = body = open_body(header.name)
        for old in body.get("supersedes", []):
            marks.superseded[str(old)] = max(marks.superseded.get(str(old), 0.0), record_time)
    for name, body in bodies.items():
        if name in marks.superseded:
            continue  # its successor holds what is still marked
        marked = body.get("marked", {})
        for kind in MARKED_TYPES:
            for object_name, moment in dict(marked.get(kind, {})).items():
                earlier = marks.times[kind].get(object_name)
                moment = float(moment)
                marks.times[kind][object_name] = moment if earlier is None else min(earlier, moment)
    marks.supersedes = {name: tuple(str(old) for old in body.get("supersedes", [])) for name, body in bodies.items()}
    return marks


def _entries_in_marked_packs(index_object: IndexObject, marked_packs: frozenset[str]) -> np.ndarray | None:
    """Which entries of ``index_object`` are in a marked pack (a mask), or None when none is."""
    if not marked_packs or not len(index_object.entries):
        return None
    pack_marked = np.array([pack in marked_packs for pack in index_object.packs], dtype=bool)
    if not pack_marked.any():
        return None
    mask: np.ndarray = pack_marked[index_object.batches["pack"]][index_object.entries["batch"]]
    return mask


def unmarked_ids(index_object: IndexObject, marked_packs: frozenset[str]) -> np.ndarray:
    """The chunk ids of ``index_object`` that are not in a marked pack (all of them when none is marked)."""
    ids: np.ndarray = index_object.entries["id"]
    mask = _entries_in_marked_packs(index_object, marked_packs)
    return ids if mask is None else ids[~mask]


def marked_ids(index_object: IndexObject, marked_packs: frozenset[str]) -> np.ndarray:
    """The chunk ids of ``index_object`` that are in a marked pack (none when none is marked)."""
    ids: np.ndarray = index_object.entries["id"]
    mask = _entries_in_marked_packs(index_object, marked_packs)
    return ids[:0] if mask is None else ids[mask]
