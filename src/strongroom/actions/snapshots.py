"""``snapshots`` and ``show``: list the verified snapshots; show one snapshot's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strongroom.errors import IdentityError
from strongroom.repository.repository import Repository, SnapshotListing


@dataclass(frozen=True)
class SnapshotRow:
    """One line of the listing: the header, and sizes when the body could be read."""

    name: str
    sequence: int
    time: str
    predecessor: str | None
    size: int | None
    components: int | None
    host: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class SnapshotsResult:
    """The listing and its problems (refused objects, gaps)."""

    rows: tuple[SnapshotRow, ...]
    problems: tuple[dict[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"snapshots": [r.to_dict() for r in self.rows], "problems": list(self.problems)}


def list_snapshots(repository: Repository) -> SnapshotsResult:
    """The snapshots signed by the pinned writer key, with sizes when a key opens their bodies.

    Raises StorageError.
    """
    listing: SnapshotListing = repository.list_snapshots()
    rows = []
    for header in listing.snapshots:
        size = count = host = None
        try:
            body = repository.load_snapshot_by_name(header.name).body
            size = sum(int(c.get("size", 0)) for c in body.get("components", []))
            count = len(body.get("components", []))
            host = body.get("host")
        except IdentityError:
            pass
        rows.append(SnapshotRow(header.name, header.sequence, header.time, header.predecessor, size, count, host))
    problems = tuple({"kind": p.kind, "object": p.object_name, "message": p.message} for p in listing.problems)
    return SnapshotsResult(tuple(rows), problems)


def show_snapshot(repository: Repository, reference: str) -> dict[str, Any]:
    """One snapshot's header and body (manifest, components, statistics) as a dictionary.

    Raises UsageError (no such snapshot), IntegrityError, IdentityError (no key to open the body).
    """
    snapshot = repository.load_snapshot(reference)
    header = snapshot.header
    components = []
    for component in snapshot.components:
        shown = dict(component)
        if isinstance(component.get("chunks"), list):
            shown["chunks"] = len(component["chunks"])  # the ids themselves are of no use to a person
        components.append(shown)
    return {
        "name": header.name,
        "sequence": header.sequence,
        "time": header.time,
        "predecessor": header.predecessor,
        "writer": header.writer,
        "host": snapshot.body.get("host"),
        "manifest": snapshot.body.get("manifest", {}),
        "components": components,
        "statistics": snapshot.body.get("statistics", {}),
    }
