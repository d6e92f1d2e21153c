"""The storage contract: a dumb byte store that every backend implements.

A repository is a set of immutable objects, each named by a :class:`Handle` of
(type, name). Types are the fixed prefixes in :class:`ObjectType`; names are
lower-case hex strings chosen by the repository (the hash of the stored bytes
for everything but locks). The storage never interprets the bytes.

The contract every backend keeps (the conformance suite in
``tests/storage/storage_conformance.py`` checks each rule):

- ``save(handle, data)`` stores ``data`` under ``handle`` atomically: a reader
  sees either nothing or every byte, never a prefix, even if the writer is
  killed. Saving a handle that already exists replaces it (objects named by
  their content hash are rewritten with the same bytes, so this is harmless).
- ``load(handle, offset=0, length=None)`` returns the bytes ``offset`` to
  ``offset + length`` (to the end when ``length`` is None). Loads are
  idempotent. A range past the end returns what exists (possibly nothing).
- ``stat(handle)`` returns the object's :class:`ObjectInfo` (name and size).
- ``list(object_type)`` yields an :class:`ObjectInfo` for every object of that
  type, in no particular order. Temporary files of unfinished saves are never
  listed.
- ``remove(handle)`` deletes the object; removing a missing object raises
  :class:`~strongroom.errors.ObjectNotFound`.
- Errors: every method raises only :class:`~strongroom.errors.StorageError`
  and its subclasses. :class:`~strongroom.errors.ObjectNotFound` when the
  object does not exist; :class:`~strongroom.errors.PermanentStorageError`
  (or :class:`~strongroom.errors.NoSpaceError`) when retrying cannot help;
  a plain :class:`~strongroom.errors.StorageError` is transient, and the retry
  layer (:mod:`strongroom.storage.layers`) tries it again with backoff.
- Backends are safe to call from several threads at once.

Capabilities are flags in :class:`Capabilities`, not type checks: callers ask
``backend.capabilities.delete`` rather than ``isinstance``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from strongroom.errors import PermanentStorageError


class ObjectType(enum.Enum):
    """The kinds of object a repository holds; each is a prefix (folder) in the storage."""

    CONFIG = "config"
    KEYS = "keys"
    DATA = "data"
    INDEX = "index"
    LISTS = "lists"
    SNAPSHOTS = "snapshots"
    DRILLS = "drills"
    LOCKS = "locks"


_NAME_PATTERN = re.compile(r"^[0-9a-f]{1,128}$")


@dataclass(frozen=True)
class Handle:
    """Names one object: its type and its name (lower-case hex, at most 128 characters)."""

    type: ObjectType
    name: str

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise PermanentStorageError(
                f"invalid object name {self.name[:80]!r} for {self.type.value}/",
                hint="object names are lower-case hex; the repository or its listing is damaged",
            )

    def __str__(self) -> str:
        return f"{self.type.value}/{self.name}"


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` and ``list`` report about an object."""

    handle: Handle
    size: int


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the contract.

    ``delete``: ``remove`` works (a write-only S3 credential may forbid it).
    ``atomic_save``: a save is all-or-nothing (the local backend: temporary file then rename).
    ``local_path``: the objects are plain files on this machine.
    ``conditional_write``: the store refuses a create-only write of an existing
    object (S3 ``If-None-Match: *``), probed by writing twice, never assumed.
    ``immutable``: written objects cannot be deleted or overwritten before their
    retention ends (S3 Object Lock, probed by trying to delete a locked object).
    """

    delete: bool = True
    atomic_save: bool = True
    local_path: bool = False
    conditional_write: bool = False
    immutable: bool = False


@runtime_checkable
class Backend(Protocol):
    """A byte store holding a repository's objects. See the module docstring for the contract."""

    @property
    def location(self) -> str:
        """A human-readable location (path or URL without credentials)."""

    @property
    def capabilities(self) -> Capabilities:
        """What this backend can do."""

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``handle`` atomically. Raises StorageError."""

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Return the object's bytes (or a range). Raises ObjectNotFound, StorageError."""

    def stat(self, handle: Handle) -> ObjectInfo:
        """Return the object's size. Raises ObjectNotFound, StorageError."""

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        """Yield every object of ``object_type``. Raises StorageError."""

    def remove(self, handle: Handle) -> None:
        """Delete the object. Raises ObjectNotFound, PermanentStorageError, StorageError."""

    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""
