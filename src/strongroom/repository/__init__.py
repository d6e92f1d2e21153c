"""The repository engine: write-only, signed, encrypted, deduplicated at the row level.

Start at :mod:`strongroom.repository.repository` (the public API) and
``docs/format.md`` (the format and the threat model).
"""

from strongroom.repository.keys import WriterKey, expand_recipients, load_identities
from strongroom.repository.repository import (
    ComponentStatistics,
    Repository,
    RestoredComponent,
    Snapshot,
    SnapshotInfo,
    SnapshotListing,
    SnapshotProblem,
    SnapshotWriter,
)

__all__ = [
    "ComponentStatistics",
    "Repository",
    "RestoredComponent",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotListing",
    "SnapshotProblem",
    "SnapshotWriter",
    "WriterKey",
    "expand_recipients",
    "load_identities",
]
