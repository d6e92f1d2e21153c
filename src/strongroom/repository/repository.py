"""The repository: open or create it, list and read snapshots, write new ones, restore.

Public API (what the backup pipeline and the verbs call)::

    repo = Repository.init(backend, recipients=[...], writer_key_path=Path(...))   # once
    repo = Repository.open(backend, config.repository, writer_key=WriterKey.load(path))
    with repo.begin_snapshot() as writer:          # takes the exclusive lock
        stats = writer.add_record_stream("database.sql", dump_stdout, kind="mariadb-dump")
        writer.add_file("etc/passbolt/gpg/serverkey.asc", path, mode=0o640, uid=33, gid=33, mtime=...)
        info = writer.commit({"passbolt_version": "5.12.0", ...})
    # leaving the block without commit() (an exception) aborts: nothing becomes visible

    listing = repo.list_snapshots()               # verified headers, refused objects, chain gaps
    snapshot = repo.load_snapshot("latest")       # header + body (writer key or identity needed)
    repo.restore_component(snapshot, "database.sql", Path("out.sql"), identities=[...])

A reader trusts only the writer fingerprint and recipients pinned in the local
configuration (``RepositoryConfig``), never a key found in the storage. Write
order: the run's data key, packs, index objects, id lists, then the signed snapshot.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import blake3
import numpy as np

from strongroom.config.schema import RepositoryConfig
from strongroom.errors import (
    IdentityError,
    IntegrityError,
    ObjectNotFound,
    RepositoryError,
    StrongroomError,
    UsageError,
)
from strongroom.repository import idlist, locations
from strongroom.repository.chunker import MAX_RECORD, READ_SIZE, ContentChunker, record_spans_ahead
from strongroom.repository.format import (
    CONFIG_MAGIC,
    CONFIG_SIGNATURE_DOMAIN,
    FORMAT_VERSION,
    ID_TABLE_LEVEL,
    INDEX_MAGIC,
    LIST_MAGIC,
    SpooledBytes,
    canonical_json,
    check_version,
    open_metadata_array,
    parse_json,
    seal_metadata,
    unframe,
)
from strongroom.repository.hashing import HashWorker, start_hash_worker
from strongroom.repository.index import IndexObject, KnownIds, RepositoryIndex, SortedIds, ascending, entry_id_halves, split_ids
from strongroom.repository.keys import (
    ID_SIZE,
    SIGNATURE_SIZE,
    Identity,
    WriterKey,
    b64decode,
    b64encode,
    decrypt_with_identities,
    encrypt_to_recipients,
    fingerprint,
    keyed_hasher,
    object_name,
    verify_signature,
)
from strongroom.repository.locations import (
    LOCATIONS_MAGIC,
    RUN_DTYPE,
    UNKNOWN,
    Hints,
    LocationMap,
    encode_hints,
    literal_runs,
)
from strongroom.repository.lock import RepositoryLock
from strongroom.repository.marks import marked_ids, read_marks, unmarked_ids
from strongroom.repository.packer import PackStatistics, PackWriter
from strongroom.repository.recordcache import (
    CacheContext,
    RecordCache,
    RecordCacheWriter,
    cache_key,
    group_ends,
    group_key,
    group_starts,
    hash_groups,
    window_positions,
)
from strongroom.repository.rowcount import RowCounter
from strongroom.repository.snapshot import (
    KIND_SNAPSHOT,
    SnapshotHeader,
    encode_snapshot,
    open_body,
    parse_snapshot,
)
from strongroom.storage.backend import Backend, Handle, ObjectType

log = logging.getLogger(__name__)

RECORD_KINDS = ("mariadb-dump", "postgresql-dump", "records")
ONLY_WRITER_KEY = "this host holds only the writer key; restore needs a recipient identity"


def release_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc ``malloc_trim``; elsewhere nothing).

    A backup's threads free many large temporary arrays; glibc keeps the freed pages in
    its heaps, so the process's resident memory would stay at its busiest level."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def default_cache_dir() -> Path:
    """Where a writer keeps its record caches unless ``[repository] cache_dir`` says: the XDG cache folder."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "strongroom"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_time(text: str) -> float:
    """Unix seconds of an ISO 8601 time from a snapshot header (UTC when it names no zone)."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def content_hasher(id_key: bytes) -> Any:
    """The keyed hasher for whole-component content hashes (recorded in snapshots, checked on restore)."""
    return keyed_hasher(id_key, b"strongroom content hash")


def chunk_hash_key(id_key: bytes) -> bytes:
    """The key of chunk ids (derived from the id key)."""
    return blake3.blake3(b"strongroom chunk id", key=id_key).digest()


def chunk_id(chunk_key: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """A chunk's id: keyed BLAKE2b with a 16-byte digest. (BLAKE2b, not BLAKE3: per call, on
    rows of a few hundred bytes, Python's hashlib BLAKE2b costs a fifth less, and a backup
    makes one call a row.)"""
    return hashlib.blake2b(data, key=chunk_key, digest_size=16).digest()


def chunk_id_hasher(chunk_key: bytes) -> Any:
    """A factory of keyed chunk-id hashers (``one = factory(); one.update(data); one.digest()``)."""
    return hashlib.blake2b(key=chunk_key, digest_size=16).copy


# --- results ----------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentStatistics:
    """What storing one component did: its size and records, what was new, and the row counts."""

    name: str
    kind: str
    size: int
    chunks: int
    new_chunks: int
    new_bytes: int
    row_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # records hashed one by one (the others' ids came from the record cache); -1 for files
    hashed_records: int = -1


@dataclass(frozen=True)
class SnapshotInfo:
    """A committed snapshot: its name (id), sequence, predecessor, time and totals."""

    name: str
    sequence: int
    predecessor: str | None
    time: str
    components: tuple[ComponentStatistics, ...]
    stored_bytes: int
    seconds: float

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the name."""
        return self.name[:8]


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot: the verified header and the decrypted body."""

    header: SnapshotHeader
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def components(self) -> list[dict[str, Any]]:
        """The body's component records."""
        return list(self.body.get("components", []))

    def component(self, name: str) -> dict[str, Any]:
        """The component called ``name``. Raises UsageError naming the ones that exist."""
        for component in self.components:
            if component["name"] == name:
                return component
        names = ", ".join(c["name"] for c in self.components) or "none"
        raise UsageError(f"snapshot {self.header.short_id} has no component {name!r} (it has: {names})")


@dataclass(frozen=True)
class SnapshotProblem:
    """Something wrong found while listing snapshots: a refused object or a gap in the chain."""

    kind: str  # "refused", "gap", "fork"
    object_name: str
    message: str


@dataclass(frozen=True)
class SnapshotListing:
    """The verified snapshots in sequence order, and the problems found on the way."""

    snapshots: tuple[SnapshotHeader, ...]
    problems: tuple[SnapshotProblem, ...]
    records: tuple[SnapshotHeader, ...] = ()  # prune's removal and marks records


@dataclass(frozen=True)
class RestoredComponent:
    """One component written out: where, its size, and whether its content hash matched."""

    name: str
    path: Path
    size: int
    seconds: float


# --- the repository ---------------------------------------------------------------


class Repository:
    """A strongroom repository on a backend, seen through the pinned configuration."""

    def __init__(
        self,
        backend: Backend,
        *,
        writer_fingerprint: str,
        recipients: tuple[str, ...],
        repository_id: str,
        keys_object: str,
        writer_key: WriterKey | None = None,
        identities: list[Identity] | None = None,
        lock_wait_seconds: float = 60.0,
        cache_dir: Path | None = None,
    ) -> None:
        self.backend = backend
        self.writer_fingerprint = writer_fingerprint
        self.recipients = tuple(recipients)
        self.repository_id = repository_id
        self.keys_object = keys_object
        self.writer_key = writer_key
        self.identities = identities
        self.lock_wait_seconds = lock_wait_seconds
        # the writer's record caches (see recordcache.py); None: every backup hashes every record
        self.cache_dir = cache_dir
        # restores follow the location hints of lists (locations.py) where they have them
        self.use_hints = True
        self._repository_keys: tuple[bytes, bytes] | None = None
        self._data_keys: dict[str, bytes] = {}

    # --- creation and opening ---

    @classmethod
    def init(cls, backend: Backend, *, recipients: list[str]) -> tuple[Repository, WriterKey]:
        """Create a repository on an empty ``backend``: the keys object and the signed config.

        Returns the repository and the new writer key (the caller saves it, mode 0600).
        Raises RepositoryError when the storage already holds a repository, IdentityError
        for a bad recipient, StorageError.
        """
        if any(True for _ in backend.list(ObjectType.CONFIG)):
            raise RepositoryError(
                f"{backend.location} already holds a strongroom repository",
                hint="use it as it is, or name an empty location",
            )
        repository_id = secrets.token_hex(16)
        writer = WriterKey.generate(repository_id)
        keys_plaintext = json.dumps(
            {
                "type": "strongroom-repository-keys",
                "version": FORMAT_VERSION,
                "repository": repository_id,
                "id_key": b64encode(writer.id_key),
                "metadata_key": b64encode(writer.metadata_key),
            }
        ).encode()
        keys_stored = encrypt_to_recipients(keys_plaintext, recipients)
        keys_name = object_name(keys_stored)
        backend.save(Handle(ObjectType.KEYS, keys_name), keys_stored)
        config_body = canonical_json(
            {
                "format": "strongroom-repository",
                "version": FORMAT_VERSION,
                "repository": repository_id,
                "keys": keys_name,
                "writer": writer.fingerprint,
                "writer_public_key": b64encode(writer.public_key),
                "created": _now(),
            }
        )
        unsigned = CONFIG_MAGIC + bytes([FORMAT_VERSION]) + struct.pack("<I", len(config_body)) + config_body
        stored = unsigned + writer.sign(CONFIG_SIGNATURE_DOMAIN + unsigned)
        backend.save(Handle(ObjectType.CONFIG, object_name(stored)), stored)
        repository = cls(
            backend,
            writer_fingerprint=writer.fingerprint,
            recipients=tuple(recipients),
            repository_id=repository_id,
            keys_object=keys_name,
            writer_key=writer,
        )
        return repository, writer

    @classmethod
    def open(
        cls,
        backend: Backend,
        config: RepositoryConfig,
        *,
        writer_key: WriterKey | None = None,
        identities: list[Identity] | None = None,
    ) -> Repository:
        """Open the repository on ``backend`` trusting only what ``config`` pins.

        Raises RepositoryError when there is no repository, IntegrityError when its
        config object is not signed by the pinned writer key, ConfigError when the
        writer key does not match the pinned fingerprint.
        """
        from strongroom.errors import ConfigError

        if writer_key is not None and writer_key.fingerprint != config.writer_fingerprint:
            raise ConfigError(
                "the writer key file does not match writer_fingerprint in the configuration",
                hint="check [repository] writer_key and writer_fingerprint",
            )
        configs = [info.handle.name for info in backend.list(ObjectType.CONFIG)]
        if not configs:
            raise RepositoryError(
                f"no strongroom repository at {backend.location}",
                hint="check [repository] url, or run 'strongroom init'",
            )
        accepted: list[dict[str, Any]] = []
        for name in configs:
            try:
                accepted.append(_parse_config_object(name, backend.load(Handle(ObjectType.CONFIG, name)), config.writer_fingerprint))
            except IntegrityError as error:
                log.warning("ignoring config/%s: %s", name[:12], error.message)
        if not accepted:
            raise IntegrityError(
                f"the repository at {backend.location} has no config object signed by the pinned writer key",
                hint="the repository was replaced or the configuration names the wrong writer fingerprint",
            )
        repository_config = accepted[0]
        if writer_key is not None and writer_key.repository_id != repository_config["repository"]:
            raise ConfigError("the writer key file belongs to another repository")
        return cls(
            backend,
            writer_fingerprint=config.writer_fingerprint,
            recipients=config.recipients,
            repository_id=str(repository_config["repository"]),
            keys_object=str(repository_config["keys"]),
            writer_key=writer_key,
            identities=identities,
            lock_wait_seconds=config.lock_wait_seconds,
            cache_dir=(config.cache_dir or default_cache_dir()) if writer_key is not None else None,
        )

    # --- keys ---

    def _keys(self) -> tuple[bytes, bytes]:
        """(id key, metadata key): from the writer key, else from the keys object with an identity.

        Raises IdentityError when neither is available or the identity is not a recipient.
        """
        if self.writer_key is not None:
            return self.writer_key.id_key, self.writer_key.metadata_key
        if self._repository_keys is None:
            if not self.identities:
                raise IdentityError(
                    "reading snapshot contents needs the writer key or a recipient identity",
                    hint="run on the backup host, or give --identity FILE",
                )
            stored = self._load(Handle(ObjectType.KEYS, self.keys_object))
            data = parse_json(decrypt_with_identities(stored, self.identities, "the repository keys"), "the repository keys")
            if data.get("type") != "strongroom-repository-keys" or data.get("repository") != self.repository_id:
                raise IntegrityError("the repository keys object belongs to another repository")
            self._repository_keys = (
                b64decode(data["id_key"], "the id key"),
                b64decode(data["metadata_key"], "the metadata key"),
            )
        return self._repository_keys

    def check_identity(self) -> None:
        """Prove the identities open this repository (decrypt its keys object with them).

        Raises IdentityError (none given: only the writer key; or not a recipient), IntegrityError.
        """
        if not self.identities:
            raise IdentityError(ONLY_WRITER_KEY, hint="give --identity FILE")
        stored = self._load(Handle(ObjectType.KEYS, self.keys_object))
        decrypt_with_identities(stored, self.identities, "the repository keys")

    @property
    def id_key(self) -> bytes:
        return self._keys()[0]

    @property
    def metadata_key(self) -> bytes:
        return self._keys()[1]

    def data_key(self, name: str, identities: list[Identity] | None = None) -> bytes:
        """The data key in ``keys/<name>``, opened with an identity. Raises IdentityError, IntegrityError."""
        if name in self._data_keys:
            return self._data_keys[name]
        identities = identities or self.identities
        if not identities:
            raise IdentityError(ONLY_WRITER_KEY, hint="give --identity FILE: an age identity, an SSH key, or the passphrase identity made by init")
        stored = self._load(Handle(ObjectType.KEYS, name))
        data = parse_json(decrypt_with_identities(stored, identities, f"data key {name[:12]}"), f"data key {name[:12]}")
        if data.get("type") != "strongroom-data-key":
            raise IntegrityError(f"keys/{name[:12]} is not a data key")
        key = b64decode(data["key"], "a data key")
        self._data_keys[name] = key
        return key

    def _load(self, handle: Handle) -> bytes:
        """Load an object and check its name is the hash of its bytes. Raises IntegrityError, StorageError."""
        stored = self.backend.load(handle)
        if handle.type is not ObjectType.LOCKS and object_name(stored) != handle.name:
            raise IntegrityError(f"{handle.type.value}/{handle.name[:12]} does not match its hash: it is damaged")
        return stored

    # --- snapshots ---

    def list_snapshots(self) -> SnapshotListing:
        """Every snapshot signed by the pinned writer key, by sequence, with refused objects and gaps.

        Raises StorageError.
        """
        valid: dict[str, SnapshotHeader] = {}
        problems: list[SnapshotProblem] = []
        for info in self.backend.list(ObjectType.SNAPSHOTS):
            name = info.handle.name
            try:
                stored = self._load(info.handle)
                header = parse_snapshot(name, stored, self.writer_fingerprint).header
            except (IntegrityError, RepositoryError) as error:
                problems.append(SnapshotProblem("refused", name, error.message))
                continue
            except ObjectNotFound:
                continue
            if header.repository != self.repository_id:
                problems.append(SnapshotProblem("refused", name, f"snapshot {name[:8]} belongs to another repository"))
                continue
            valid[name] = header
        problems.extend(chain_problems(list(valid.values())))
        ordered = sorted(valid.values(), key=lambda h: (h.sequence, h.time, h.name))
        return SnapshotListing(
            tuple(h for h in ordered if h.kind == KIND_SNAPSHOT),
            tuple(problems),
            tuple(h for h in ordered if h.kind != KIND_SNAPSHOT),
        )

    def resolve(self, reference: str, listing: SnapshotListing | None = None) -> SnapshotHeader:
        """The header of ``reference``: ``latest`` or a unique prefix of a snapshot name.

        Raises UsageError when nothing or several match, RepositoryError when there is none.
        """
        listing = listing or self.list_snapshots()
        if not listing.snapshots:
            raise RepositoryError("the repository holds no snapshot", hint="run 'strongroom backup' first")
        if reference == "latest":
            return listing.snapshots[-1]
        matches = [h for h in listing.snapshots if h.name.startswith(reference.lower())]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            refused = [p for p in listing.problems if p.object_name.startswith(reference.lower())]
            if refused:
                raise IntegrityError(refused[0].message)
            raise UsageError(f"no snapshot {reference!r}", hint="'strongroom snapshots' lists them")
        raise UsageError(f"{reference!r} matches {len(matches)} snapshots: give more digits")

    def load_snapshot(self, reference: str, identities: list[Identity] | None = None) -> Snapshot:
        """Load and authenticate the snapshot ``reference`` (``latest`` or a name prefix) and open its body.

        Raises UsageError, IntegrityError, IdentityError (no key to open the body), StorageError.
        """
        if identities:
            self.identities = identities
        header = self.resolve(reference)
        return self.load_snapshot_by_name(header.name)

    def load_snapshot_by_name(self, name: str) -> Snapshot:
        """Load snapshot ``snapshots/<name>`` and open its body. Raises IntegrityError, IdentityError."""
        parsed = parse_snapshot(name, self._load(Handle(ObjectType.SNAPSHOTS, name)), self.writer_fingerprint)
        return Snapshot(parsed.header, open_body(parsed, self.metadata_key))

    # --- metadata objects ---

    def load_hints(self, name: str) -> Hints:
        """A location hints object (see locations.py). Raises IntegrityError, ObjectNotFound, StorageError."""
        what = f"location hints {name[:12]}"
        payload = open_metadata_array(LOCATIONS_MAGIC, self.metadata_key, self._load(Handle(ObjectType.LISTS, name)), what)
        return locations.decode_hints(payload, what)

    def load_list(self, name: str) -> idlist.IdList:
        """Decode list object ``lists/<name>``. Raises IntegrityError, StorageError."""
        payload = open_metadata_array(LIST_MAGIC, self.metadata_key, self._load(Handle(ObjectType.LISTS, name)), f"id list {name[:12]}")
        return idlist.decode(payload, f"id list {name[:12]}")

    def component_ids(self, component: dict[str, Any]) -> bytes | np.ndarray:
        """The ordered chunk ids of a component (concatenated 16-byte ids; a numpy uint8 array for a
        list). Raises IntegrityError."""
        if "list" in component:
            return idlist.materialize(component["list"], self.load_list)
        return _chunk_ids(component)

    def component_id_halves(self, component: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The ordered chunk ids of a component as two uint64 arrays (see ``index.split_ids``),
        made without the 16-byte list. Raises IntegrityError."""
        if "list" in component:
            halves = idlist.materialize_halves(component["list"], self.load_list)
            release_free_memory()  # the chain's payloads, freed: before the restore's big arrays
            return halves
        return split_ids(np.frombuffer(_chunk_ids(component), "S16"))

    def load_index_objects(self, *, skip_damaged: bool = False) -> tuple[list[tuple[str, IndexObject]], list[tuple[str, str]]]:
        """Every index object decoded, and (name, problem) for those that could not be read.

        Without ``skip_damaged`` the first problem raises IntegrityError.
        """
        damaged: list[tuple[str, str]] = []
        objects = list(self.iter_index_objects(damaged if skip_damaged else None))
        return objects, damaged

    def iter_index_objects(self, damaged: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, IndexObject]]:
        """Every index object decoded, one at a time (name, content), in the storage's listing order.

        When ``damaged`` is a list, objects that cannot be read are appended to it as
        (name, problem) and skipped; otherwise the first problem raises IntegrityError.
        Raises StorageError.
        """
        for info in self.backend.list(ObjectType.INDEX):
            name = info.handle.name
            try:
                payload = open_metadata_array(INDEX_MAGIC, self.metadata_key, self._load(info.handle), f"index {name[:12]}")
                decoded = IndexObject.decode(payload, f"index {name[:12]}")
            except (IntegrityError, ObjectNotFound) as error:
                if damaged is None:
                    raise
                damaged.append((name, str(error.message)))
                continue
            yield name, decoded

    def load_index_of(self, ids: np.ndarray) -> RepositoryIndex:
        """The merged index of only the chunk ids ``ids`` (an S16 array): the index objects are
        read one at a time and only these ids' entries kept (with every pack and batch table,
        which are small). Raises IntegrityError, StorageError."""
        if len(ids) == 0:
            return RepositoryIndex()  # nothing to locate: no index object is read
        wanted = SortedIds.build(ids)
        objects = []
        for name, obj in self.iter_index_objects():
            high, low = entry_id_halves(obj.entries)
            _, found = wanted.find(high, low, ascending=ascending(high, low))
            objects.append((name, IndexObject(obj.packs, obj.batches.copy(), obj.entries[found])))  # fancy indexing copies
            del obj
        return RepositoryIndex.merge(objects)

    def file_index(self, snapshot: Snapshot) -> RepositoryIndex:
        """The merged index of the chunks of ``snapshot``'s components stored as chunk lists
        (files), to restore them one after the other; components stored as id lists (dumps)
        restore without it, reading the index objects one at a time against their list."""
        ids = b"".join(_chunk_ids(component) for component in snapshot.components if "list" not in component)
        return self.load_index_of(np.frombuffer(ids, "S16"))

    def load_index(self) -> RepositoryIndex:
        """The merged index of the whole repository. Raises IntegrityError, StorageError."""
        objects, _ = self.load_index_objects()
        return RepositoryIndex.merge(objects)

    # --- writing ---

    def begin_snapshot(self, *, lock_wait_seconds: float | None = None) -> SnapshotWriter:
        """Take the exclusive lock and start a snapshot. Use the result as a context manager.

        Raises UsageError without a writer key, LockedError when another run holds
        the lock past the wait, StorageError, IntegrityError.
        """
        if self.writer_key is None:
            raise UsageError("writing a snapshot needs the writer key", hint="check [repository] writer_key")
        lock = RepositoryLock(
            self.backend, wait_seconds=self.lock_wait_seconds if lock_wait_seconds is None else lock_wait_seconds
        )
        lock.acquire()
        try:
            return SnapshotWriter(self, lock)
        except BaseException:
            lock.release()
            raise

    def new_data_key(self) -> tuple[bytes, str]:
        """Draw a run's data key, save it age-encrypted to the pinned recipients; return (key, object name)."""
        key = os.urandom(32)
        plaintext = json.dumps(
            {"type": "strongroom-data-key", "version": FORMAT_VERSION, "repository": self.repository_id,
             "key": b64encode(key), "created": _now()}
        ).encode()
        stored = encrypt_to_recipients(plaintext, list(self.recipients))
        name = object_name(stored)
        self.backend.save(Handle(ObjectType.KEYS, name), stored)
        return key, name

    # --- restoring ---

    def restore_component(
        self,
        snapshot: Snapshot,
        component_name: str,
        target: Path,
        *,
        identities: list[Identity] | None = None,
        index: RepositoryIndex | None = None,
    ) -> RestoredComponent:
        """Write component ``component_name`` of ``snapshot`` to the file ``target`` (created, mode 0600).

        Every pack batch is read and decrypted once; the file is written front to back
        and hashed as it is written; its keyed content hash is checked against the
        snapshot. Without ``index`` the listed ids are located reading the index objects
        one at a time (less memory); give a merged index to restore several components.
        Raises IdentityError (only the writer key, or a wrong identity), IntegrityError
        (damaged or missing data), StorageError, UsageError (no such component).
        """
        from strongroom.repository.restore import plan_from_hints, write_component

        if identities:
            self.identities = identities
        if not self.identities:
            raise IdentityError(ONLY_WRITER_KEY, hint="give --identity FILE: an age identity, an SSH key, or the passphrase identity made by init")
        component = snapshot.component(component_name)
        started = time.monotonic()
        hasher = content_hasher(self.id_key)
        what = f"{component_name} of snapshot {snapshot.header.short_id}"
        planned = plan_from_hints(self, component, what) if index is None and self.use_hints else None
        if planned is not None:
            size = write_component(self, None, None, target, what=what, hasher=hasher, size=int(component["size"]), planned=planned)
        else:
            # The id list is handed over without a reference kept here, so the restore can free it early
            # (without a merged index, as the two halves the restore sorts and searches).
            size = write_component(
                self,
                index,
                self.component_ids(component) if index is not None else self.component_id_halves(component),
                target,
                what=what, hasher=hasher, size=int(component["size"]),
            )
        if size != int(component["size"]):
            raise IntegrityError(f"{component_name} restored to {size} bytes, the snapshot says {component['size']}")
        if hasher.hexdigest() != component["content_hash"]:
            raise IntegrityError(f"{component_name} of snapshot {snapshot.header.short_id} restored with the wrong content hash")
        return RestoredComponent(component_name, target, size, time.monotonic() - started)


def _parse_config_object(name: str, stored: bytes, pinned: str) -> dict[str, Any]:
    """The verified content of a config object. Raises IntegrityError, RepositoryError."""
    what = f"config/{name[:12]}"
    if object_name(stored) != name:
        raise IntegrityError(f"{what} does not match its hash: it is damaged")
    if len(stored) < 9 + SIGNATURE_SIZE or stored[:4] != CONFIG_MAGIC:
        raise IntegrityError(f"{what} is not a repository config")
    check_version(stored[4], what)
    (body,), consumed = unframe(memoryview(stored)[5 : len(stored) - SIGNATURE_SIZE], 1, what)
    data = parse_json(body, what)
    public_key = b64decode(str(data.get("writer_public_key", "")), what)
    if fingerprint(public_key) != pinned:
        raise IntegrityError(f"{what} is signed by a writer key that is not the pinned one")
    verify_signature(
        public_key, stored[len(stored) - SIGNATURE_SIZE :], CONFIG_SIGNATURE_DOMAIN + stored[: len(stored) - SIGNATURE_SIZE], what
    )
    return dict(data)


def chain_problems(headers: list[SnapshotHeader]) -> list[SnapshotProblem]:
    """Gaps (a predecessor missing and not removed on purpose) and forks (two successors of one snapshot)."""
    names = {h.name for h in headers}
    removed = {name for h in headers for name in h.removed}
    problems = []
    successors: dict[str | None, list[SnapshotHeader]] = {}
    for header in headers:
        if header.kind != KIND_SNAPSHOT:
            continue  # prune's removal and marks records are not links of the chain
        successors.setdefault(header.predecessor, []).append(header)
        if header.predecessor and header.predecessor not in names and header.predecessor not in removed:
            problems.append(
                SnapshotProblem(
                    "gap",
                    header.name,
                    f"snapshot {header.short_id} (sequence {header.sequence}) names predecessor "
                    f"{header.predecessor[:8]}, which is missing: a snapshot was deleted or rolled back",
                )
            )
    for predecessor, following in successors.items():
        if len(following) > 1:
            listed = ", ".join(h.short_id for h in following)
            problems.append(SnapshotProblem("fork", following[0].name, f"snapshots {listed} all follow {str(predecessor)[:8]}"))
    return problems


# --- writing a snapshot -----------------------------------------------------------


class SnapshotWriter:
    """One backup run: add components, then commit (or abort). Holds the repository lock until then.

    Nothing becomes visible until :meth:`commit` saves the signed snapshot; an
    aborted or killed run leaves only unreferenced packs that prune reclaims.
    """

    def __init__(self, repository: Repository, lock: RepositoryLock) -> None:
        assert repository.writer_key is not None
        self.repository = repository
        self.writer_key = repository.writer_key
        self.lock = lock
        self.started = time.monotonic()
        self.components: list[dict[str, Any]] = []
        self.statistics: list[ComponentStatistics] = []
        self.data_keys: list[str] = []
        self._finished = False
        listing = repository.list_snapshots()
        self.predecessor: SnapshotHeader | None = listing.snapshots[-1] if listing.snapshots else None
        self._previous: dict[str, dict[str, Any]] = {}
        if self.predecessor is not None:
            previous = repository.load_snapshot_by_name(self.predecessor.name)
            self._previous = {c["name"]: c for c in previous.components}
        # Chunks of packs prune marked are unknown to this run (stored again): see marks.py.
        self._marked = read_marks(listing.records, lambda name: repository.load_snapshot_by_name(name).body, parse_time).packs
        self._known: KnownIds | None = None  # every id the index holds: read when first needed
        self._excluded: KnownIds | None = None  # the ids of marked packs: read when first needed
        self._file_chunks: set[bytes] | None = None  # without the index: the previous snapshot's file chunks
        self._caches: list[RecordCacheWriter] = []
        self._pending_hints: list[_PendingHints] = []  # location hints, saved at commit (after the packs)
        self._worker: HashWorker | None | bool = None  # False: could not start
        self._chunk_key = chunk_hash_key(self.writer_key.id_key)
        self._group_key = group_key(self.writer_key.id_key)
        self.packer = PackWriter(
            repository.backend,
            id_key=self.writer_key.id_key,
            metadata_key=self.writer_key.metadata_key,
            data_key=self._new_data_key,
        )

    @property
    def known(self) -> KnownIds:
        """Every chunk id the repository's index holds outside marked packs, and what this run stored.

        Read from the index objects the first time it is needed (a record stream without
        a usable record cache); a damaged index object is skipped with a warning (its
        chunks are stored again). Raises StorageError, IntegrityError.
        """
        if self._known is None:
            damaged: list[tuple[str, str]] = []
            marked = self._marked
            # Index objects are read one at a time and only their ids' halves kept (16 bytes an id).
            self._known = KnownIds.from_index_objects(
                self.repository.iter_index_objects(damaged), lambda index_object: unmarked_ids(index_object, marked)
            )
            for name, problem in damaged:
                log.warning("ignoring damaged index object %s: %s", name[:12], problem)
        return self._known

    def _marked_ids(self) -> KnownIds | None:
        """The ids of chunks in packs prune marked (None when no pack is marked)."""
        if not self._marked:
            return None
        if self._excluded is None:
            marked = self._marked
            self._excluded = KnownIds.from_index_objects(
                self.repository.iter_index_objects([]), lambda index_object: marked_ids(index_object, marked)
            )
        return self._excluded

    def _hash_worker(self) -> HashWorker | None:
        """The run's hashing helper process, started on first use (None where it cannot start)."""
        if self._worker is None:
            started = start_hash_worker(
                [("blake2b", self._chunk_key), ("blake3", self._group_key)], READ_SIZE + MAX_RECORD + 1, 4
            )
            self._worker = started if started is not None else False
        return self._worker if isinstance(self._worker, HashWorker) else None

    def _stop_worker(self) -> None:
        if isinstance(self._worker, HashWorker):
            self._worker.close()
        self._worker = False

    def _cache_context(self, name: str) -> CacheContext | None:
        directory = self.repository.cache_dir
        if directory is None:
            return None
        return CacheContext(directory / self.repository.repository_id, self.repository.repository_id, name,
                            cache_key(self.writer_key.id_key))

    def _open_cache_writer(self, context: CacheContext | None) -> RecordCacheWriter | None:
        if context is None:
            return None
        try:
            writer = RecordCacheWriter(context)
        except OSError as error:
            log.warning("cannot write the record cache in %s (%s): the next backup hashes every record",
                        context.directory, error.strerror)
            return None
        self._caches.append(writer)
        return writer

    def _new_data_key(self) -> tuple[bytes, str]:
        key, name = self.repository.new_data_key()
        self.data_keys.append(name)
        return key, name

    def _check_name(self, name: str) -> None:
        if not name or name.startswith("/") or ".." in Path(name).parts or "\0" in name:
            raise UsageError(f"invalid component name {name!r}: use a relative path without '..'")
        if any(c["name"] == name for c in self.components):
            raise UsageError(f"the component {name!r} was already added to this snapshot")
        if self._finished:
            raise UsageError("this snapshot is already committed or aborted")

    def _chunk_known(self, chunk_id: bytes) -> bool:
        """Whether the repository holds ``chunk_id`` (a file's chunk) outside marked packs.

        Without the index loaded, the previous snapshot's file chunks (which it keeps
        alive) and this run's stand for the repository: a file chunk only older
        snapshots hold is stored again, which costs bytes, never correctness.
        """
        if self._known is not None:
            return chunk_id in self._known
        if self._file_chunks is None:
            chunks = {
                bytes.fromhex(chunk)
                for component in self._previous.values()
                if component.get("kind") == "file"
                for chunk in component.get("chunks", [])
            }
            excluded = self._marked_ids()
            if excluded is not None:
                chunks = {chunk for chunk in chunks if chunk not in excluded}
            self._file_chunks = chunks
        return chunk_id in self._file_chunks

    def _store_new(self, chunk_id: bytes, data: bytes) -> int:
        """Store a chunk the repository lacks; return the bytes added (0 when it was known)."""
        if self._chunk_known(chunk_id):
            return 0
        self.packer.add(chunk_id, data)
        if self._known is not None:
            self._known.add(chunk_id)
        if self._file_chunks is not None:
            self._file_chunks.add(chunk_id)
        return len(data)

    def add_record_stream(self, name: str, stream: BinaryIO, kind: str = "mariadb-dump") -> ComponentStatistics:
        """Store a dump read from ``stream`` (one row per line) as component ``name``.

        Each line is a record (longer lines are cut); only records the repository
        lacks are stored; the ordered id list is stored as a delta against the
        previous snapshot's list of the same name. With a record cache of that list
        (recordcache.py), records are hashed a group at a time and only changed
        groups record by record; without one, every record is hashed and looked up in
        the index. Returns the component's statistics.
        Raises UsageError (bad name or kind), StorageError, and whatever reading ``stream`` raises.
        """
        self._check_name(name)
        if kind not in RECORD_KINDS:
            raise UsageError(f"unknown record stream kind {kind!r} (known: {', '.join(RECORD_KINDS)})")
        started = time.monotonic()
        previous = self._previous.get(name)
        context = self._cache_context(name)
        cache = None
        if context is not None and previous is not None and "list" in previous:
            cache = RecordCache.open(context, previous["list"])
        try:
            cache_writer = self._open_cache_writer(context)
            if cache is not None:
                assert previous is not None
                depth = int(previous.get("list_depth", 0))
                base_name = previous["list"] if depth < idlist.MAX_DEPTH else None
                stream_state = _CachedStream(cache, self._marked_ids(), base_name is not None)
                base_depth = depth if base_name else -1
            else:
                known = self.known
                base_name, base_depth, positions = self._base_for(name)
                stream_state = None
            hasher = content_hasher(self.writer_key.id_key)
            counter = RowCounter(kind)
            spool_directory = str(cache_writer.context.directory) if cache_writer is not None else None
            builder = idlist.ListBuilder(spool_directory)
            rebase_map = None
            if stream_state is not None and not stream_state.delta and previous is not None:
                # a new full list after a long chain: records kept from the previous list keep their hints
                rebase_map = self._location_map(previous)
            # where each literal of the list goes (location hints, see locations.py): batch rows are
            # the previous chain's (a rebase) first, then this run's batches by sequence number
            literal_places = _LiteralPlaces(spool_directory, len(rebase_map.batches) if rebase_map is not None else 0)
            copy_id_hasher = chunk_id_hasher(self._chunk_key)
            size = new_chunks = new_bytes = 0
            worker = self._hash_worker()

            def match_block(block: _Block) -> None:
                """Stage one (in stream order): the groups looked up; with a record cache the changed
                records are handed to the helper (or hashed here) while later blocks go on."""
                data, starts, ends, cuts = block.data, block.starts, block.ends, block.cuts
                if block.groups is not None:
                    block.group_hashes = np.frombuffer(block.groups.result(), "S16")
                else:
                    block.group_hashes = hash_groups(data, starts, ends, cuts, self._group_key)
                if stream_state is None:
                    return
                block.matched = stream_state.match(starts, cuts, block.group_hashes)
                changed = block.matched.changed_rows
                if worker is not None and worker.started and len(changed):
                    block.rows = worker.submit(block.number, _CHUNK_KEY_NUMBER, starts[changed], ends[changed])
                else:
                    block.changed_ids = _hash_records(copy_id_hasher, data, starts[changed], ends[changed])

            def finish_block(block: _Block) -> None:
                """Stage two (in stream order): ids, lookups, list, cache and new records."""
                nonlocal new_chunks, new_bytes, cache_writer
                data, starts, ends, cuts = block.data, block.starts, block.ends, block.cuts
                group_hashes = block.group_hashes
                assert group_hashes is not None
                if stream_state is not None:
                    assert block.matched is not None
                    changed_ids = block.rows.result() if block.rows is not None else block.changed_ids
                    ids, base = stream_state.complete(block.matched, changed_ids)
                    found = base >= 0
                    missed = np.flatnonzero(~found)
                    if len(missed) > max(_MISSES_LOOKED_UP, len(base) // 2):
                        # many records the previous list lacks around here: moved rows (a table
                        # rewritten in another order) or new ones; the index tells which
                        known_now, _ = self.known.lookup(np.frombuffer(ids, "S16")[missed], None)
                        found[missed[known_now]] = True
                    feed = base if stream_state.delta else np.full(len(base), -1, dtype=np.int64)
                    builder.feed(feed, ids)
                else:
                    # the helper hashes the first records while this thread hashes the rest
                    split = block.split
                    own = _hash_records(copy_id_hasher, data, starts[split:], ends[split:])
                    ids = (block.rows.result() if block.rows is not None else b"") + own
                    if len(known):
                        found, base = known.lookup(np.frombuffer(ids, "S16"), positions)
                    else:  # a new repository: nothing to look up
                        found, base = np.zeros(len(starts), dtype=bool), np.full(len(starts), -1, dtype=np.int64)
                    feed = base
                    builder.feed(base, ids)
                if cache_writer is not None:
                    try:
                        cache_writer.add(ids, group_hashes, cuts)
                    except OSError as error:  # a full or broken cache disk costs the next run time only
                        log.warning("cannot write the record cache of %s (%s): the next backup hashes every record",
                                    name, error.strerror)
                        cache_writer.discard()
                        self._caches.remove(cache_writer)
                        cache_writer = None
                id_array = np.frombuffer(ids, "S16")
                new = np.flatnonzero(~found)
                lengths = ends - starts
                count = len(starts)
                sequences = offsets = None
                repeated = representative = None
                if len(new):
                    new_ids = id_array[new]
                    if _has_repeats(new_ids):
                        # a record repeated inside the block is stored once (the repeats share its place)
                        _, first, inverse = np.unique(new_ids, return_index=True, return_inverse=True)
                        repeated, representative = new, new[first[inverse]]
                        new = new[np.sort(first)]
                        new_ids = id_array[new]
                    sequences, offsets = self.packer.add_records(new_ids.tobytes(), data, starts[new], ends[new])
                    new_chunks += len(new)
                    new_bytes += int(lengths[new].sum())
                # where the list's literals went (location hints)
                if len(new) == count and rebase_map is None and sequences is not None and offsets is not None:
                    literal_places.add_stored(sequences, offsets, lengths)  # every record stored, in order (a first backup)
                else:
                    batch = np.full(count, UNKNOWN, dtype=np.int64)
                    offset = np.zeros(count, dtype=np.uint32)
                    if sequences is not None and offsets is not None:
                        batch[new] = sequences.astype(np.int64) + literal_places.own_base
                        offset[new] = offsets
                        if repeated is not None:
                            batch[repeated], offset[repeated] = batch[representative], offset[representative]
                    if rebase_map is not None:
                        kept = np.flatnonzero(base >= 0)
                        batch_row, kept_offset, _ = rebase_map.places(rebase_map.literals_at(base[kept]))
                        known_place = batch_row != UNKNOWN
                        kept = kept[known_place]
                        batch[kept] = batch_row[known_place]  # a batch of the previous chain
                        offset[kept] = kept_offset[known_place]
                    literal = feed < 0
                    literal_places.add(batch[literal], offset[literal], lengths[literal])

            # A block goes through two stages, each a block behind the one before: while this
            # thread matches block k and finishes block k-1, the helper hashes the groups of
            # block k+1 and the changed records of block k (without a cache: most records).
            matching: _Block | None = None
            finishing: _Block | None = None
            spans = record_spans_ahead(
                stream, on_block=hasher.update, buffers=worker.buffers if worker is not None else 4, hold=3
            )
            block: _Block | None = None
            blocks_read = 0
            try:
                for data, starts, ends, number in spans:
                    counter.feed_spans(data, starts, ends)
                    size += int(ends[-1])
                    cuts = group_ends(np.frombuffer(data, dtype=np.uint8), starts, ends)
                    block = _Block(data, starts, ends, cuts, number)
                    # the helper process starts with a stream's second block (small dumps hash here)
                    if worker is not None and (worker.started or matching is not None):
                        first = group_starts(cuts)
                        block.groups = worker.submit(number, _GROUP_KEY_NUMBER, starts[first], ends[cuts - 1])
                        if stream_state is None:
                            block.split = int(len(starts) * _WORKER_SHARE)
                            block.rows = worker.submit(number, _CHUNK_KEY_NUMBER, starts[: block.split], ends[: block.split])
                    if matching is not None:
                        match_block(matching)
                    if finishing is not None:
                        finish_block(finishing)
                    finishing, matching = matching, block
                    del data
                    blocks_read += 1
                    if blocks_read % _TRIM_EVERY_BLOCKS == 0:
                        release_free_memory()
                if matching is not None:
                    match_block(matching)
                if finishing is not None:
                    finish_block(finishing)
                if matching is not None:
                    finish_block(matching)
            finally:
                spans.close()  # stops the reading thread, also on an error
                del matching, finishing, block, spans
        finally:
            if cache is not None:
                cache.close()
        chunks = builder.count
        positions = None
        release_free_memory()  # the stream's freed buffers, before the list is sealed
        if base_name is None and chunks > _LIST_PIECE:
            list_name, depth, shapes = self._save_full_list_in_pieces(chunks, builder.literals)
            builder.literals.close()
            del builder
        else:
            operations = builder.operations()
            depth = base_depth + 1 if base_name else 0
            parts = idlist.encode_parts(base_name, depth, chunks, operations, builder.literals)
            literal_count = len(builder.literals) // ID_SIZE
            del builder  # the parts list holds the only references: sealing frees each part once compressed
            list_name = self._save_list(parts)
            shapes = [_ListShape(list_name, base_name, depth, chunks, operations, 0, literal_count)]
            del operations
        inherited = dict(previous.get("locations") or {}) if previous is not None and base_name is not None else {}
        if cache_writer is not None:
            try:
                cache_writer.finish(list_name)
            except OSError as error:
                log.warning("cannot write the record cache of %s (%s)", name, error.strerror)
                cache_writer.discard()
                self._caches.remove(cache_writer)
        statistics = ComponentStatistics(
            name, kind, size, chunks, new_chunks, new_bytes, counter.result(), time.monotonic() - started,
            stream_state.hashed if stream_state is not None else chunks,
        )
        component = {
            "name": name,
            "kind": kind,
            "size": size,
            "chunks": chunks,
            "list": list_name,
            "list_depth": depth,
            "content_hash": hasher.hexdigest(),
            "row_counts": counter.result(),
            "new_chunks": new_chunks,
            "new_bytes": new_bytes,
        }
        self.components.append(component)
        self._pending_hints.append(_PendingHints(component, shapes, literal_places, inherited, rebase_map))
        self.statistics.append(statistics)
        return statistics

    def _save_list(self, parts: list[Any], saver: ThreadPoolExecutor | None = None,
                   saves: list[Future[None]] | None = None) -> str:
        """Seal and save a list object's payload parts; return its name. With ``saver``, the save
        runs there (its future appended to ``saves``) while the caller goes on. Raises StorageError."""
        stored = seal_metadata(LIST_MAGIC, self.writer_key.metadata_key, parts, level=ID_TABLE_LEVEL)
        name = object_name(stored)
        if saver is not None and saves is not None:
            saves.append(saver.submit(self.repository.backend.save, Handle(ObjectType.LISTS, name), stored))
        else:
            self.repository.backend.save(Handle(ObjectType.LISTS, name), stored)
        return name

    def _save_full_list_in_pieces(self, count: int, literals: SpooledBytes) -> tuple[str, int, list[_ListShape]]:
        """A long full list saved as a short chain: a full list of its first ids, then deltas
        that copy all of their base and add the next ids (an ordinary delta chain, so readers
        need nothing new). Each object holds at most ``count / pieces`` ids, so a first
        backup of millions of rows never holds its whole list (64 MB for 4 M ids) at once.
        Returns (name of the last object, its depth, the shape of every object). Raises StorageError, OSError."""
        pieces = min(_LIST_PIECES_MAX, -(-count // _LIST_PIECE))
        per_piece = -(-count // pieces)
        base: str | None = None
        done = 0
        depth = -1
        shapes: list[_ListShape] = []
        # each piece names the one before, so they are sealed in turn; each is saved (written and
        # synced) in a thread while the next is sealed
        saves: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="strongroom-list-save") as saver:
            try:
                for _ in range(pieces):
                    take = min(per_piece, count - done)
                    ids = literals.read(done * ID_SIZE, take * ID_SIZE)
                    if len(ids) != take * ID_SIZE:
                        raise OSError(5, "the spooled id list is shorter than its count")
                    operations = [0, done, idlist.LITERAL, take] if base else [idlist.LITERAL, take]
                    depth += 1
                    previous_piece = base
                    base = self._save_list(idlist.encode_parts(base, depth, done + take, operations, ids), saver, saves)
                    shapes.append(_ListShape(base, previous_piece, depth, done + take,
                                             np.array(operations, dtype=np.int64).reshape(-1, 2), done, take))
                    done += take
                    del ids
                    while len(saves) > 1:  # at most one sealed piece waits for its save
                        saves.pop(0).result()
                    release_free_memory()
            finally:
                for save in saves:
                    save.result()  # every piece is saved before the list is named (or the error raised)
        assert base is not None and done == count
        return base, depth, shapes

    def _base_for(self, name: str) -> tuple[str | None, int, np.ndarray | None]:
        """The previous list of component ``name`` to delta against: (list name, depth, positions)."""
        previous = self._previous.get(name)
        if previous is None or "list" not in previous or int(previous.get("list_depth", 0)) >= idlist.MAX_DEPTH:
            return None, -1, None
        try:
            # The previous list is matched a piece at a time as it is produced (never held whole).
            positions = self.known.base_positions(idlist.materialize_pieces(previous["list"], self.repository.load_list))
        except (IntegrityError, ObjectNotFound) as error:
            log.warning("the previous id list of %s is unreadable (%s): storing a full list", name, error)
            return None, -1, None
        return previous["list"], int(previous.get("list_depth", 0)), positions

    def add_file(
        self,
        name: str,
        data_or_path: bytes | Path | str | BinaryIO,
        *,
        mode: int = 0o600,
        uid: int = 0,
        gid: int = 0,
        mtime: float = 0.0,
    ) -> ComponentStatistics:
        """Store a file (bytes, a path, or a binary stream) as component ``name`` with its metadata.

        Content-defined chunks; only chunks the repository lacks are stored.
        Returns the component's statistics. Raises UsageError, SourceError (unreadable path), StorageError.
        """
        from strongroom.errors import SourceError

        self._check_name(name)
        started = time.monotonic()
        hasher = content_hasher(self.writer_key.id_key)
        chunker = ContentChunker(self.writer_key.id_key)
        chunk_ids: list[str] = []
        size = new_chunks = new_bytes = 0

        def consume(stream: BinaryIO) -> None:
            nonlocal size, new_chunks, new_bytes
            for chunk in chunker.chunks(stream):
                hasher.update(chunk)
                size += len(chunk)
                identifier = chunk_id(self._chunk_key, chunk)
                chunk_ids.append(identifier.hex())
                if not self._chunk_known(identifier):
                    new_chunks += 1
                    new_bytes += self._store_new(identifier, chunk)

        if isinstance(data_or_path, (bytes, bytearray, memoryview)):
            consume(io.BytesIO(bytes(data_or_path)))
        elif isinstance(data_or_path, (str, Path)):
            try:
                with open(data_or_path, "rb") as stream:
                    consume(stream)
            except OSError as error:
                raise SourceError(f"cannot read {data_or_path}: {error.strerror}") from None
        else:
            consume(data_or_path)
        statistics = ComponentStatistics(name, "file", size, len(chunk_ids), new_chunks, new_bytes, {}, time.monotonic() - started)
        self.components.append(
            {
                "name": name,
                "kind": "file",
                "size": size,
                "chunks": chunk_ids,
                "content_hash": hasher.hexdigest(),
                "mode": mode & 0o7777,
                "uid": uid,
                "gid": gid,
                "mtime": mtime,
                "new_chunks": new_chunks,
                "new_bytes": new_bytes,
            }
        )
        self.statistics.append(statistics)
        return statistics

    def commit(self, manifest: dict[str, Any] | None = None) -> SnapshotInfo:
        """Store everything still open, then the signed snapshot; release the lock.

        Returns the new snapshot's info. Raises StorageError (nothing becomes visible
        unless the snapshot object itself was saved), UsageError when already finished.
        """
        if self._finished:
            raise UsageError("this snapshot is already committed or aborted")
        self._stop_worker()
        release_free_memory()
        try:
            self.packer.flush()
            self.packer.close()
            self._save_hints()
            predecessor = self.predecessor
            header = {
                "kind": KIND_SNAPSHOT,
                "repository": self.repository.repository_id,
                "sequence": (predecessor.sequence + 1) if predecessor else 1,
                "predecessor": predecessor.name if predecessor else None,
                "time": _now(),
                "keys": self.repository.keys_object,
            }
            body = {
                "host": socket.gethostname(),
                "manifest": manifest or {},
                "components": self.components,
                "data_keys": self.data_keys,
                "index": self.packer.index_names,
                "statistics": {
                    "stored_bytes": self.packer.statistics.stored_bytes,
                    "new_chunks": self.packer.statistics.chunks,
                    "new_plaintext_bytes": self.packer.statistics.plaintext_bytes,
                    "packs": self.packer.statistics.packs,
                    "seconds": round(time.monotonic() - self.started, 3),
                },
            }
            stored = encode_snapshot(self.writer_key, header, body)
            name = object_name(stored)
            self.repository.backend.save(Handle(ObjectType.SNAPSHOTS, name), stored)
            self._finished = True
            self._install_caches()
            return SnapshotInfo(
                name,
                int(header["sequence"]),
                header["predecessor"],
                str(header["time"]),
                tuple(self.statistics),
                self.packer.statistics.stored_bytes + len(stored),
                time.monotonic() - self.started,
            )
        finally:
            if not self._finished:
                self.abort()
            else:
                self.lock.release()

    def _location_map(self, component: dict[str, Any]) -> LocationMap | None:
        """The location hints of a previous component's list, or None (none, or unreadable: logged)."""
        names = component.get("locations")
        if not names or "list" not in component:
            return None
        try:
            chain = locations.load_chain(str(component["list"]), dict(names), self.repository.load_hints)
            return LocationMap(chain) if chain is not None else None
        except (IntegrityError, ObjectNotFound, RepositoryError) as error:
            log.warning("the location hints of %s are unreadable (%s): its records get none", component["name"], error)
            return None

    def _save_hints(self) -> None:
        """Save the location hints of this run's lists (their batches are all saved now) and name
        them in their components. Raises StorageError, OSError (the spool)."""
        own_batches = self.packer.run_batches()
        for pending in self._pending_hints:
            packs: list[str] = []
            tables = []
            if pending.rebase_map is not None:
                packs += pending.rebase_map.packs
                tables.append(pending.rebase_map.batches)
            own = own_batches.copy()
            own["pack"] += len(packs)
            packs += self.packer.run_packs
            tables.append(own)
            batches = np.concatenate(tables)
            names = dict(pending.inherited)

            def save(shape: _ListShape, pending: _PendingHints = pending, packs: list[str] = packs,
                     batches: np.ndarray = batches) -> str:
                run_first, run_batch, run_offset, lengths = pending.places.piece(shape.first_literal, shape.literals)
                hints = Hints(shape.name, shape.base, shape.depth, shape.count, shape.operations, packs, batches,
                              run_first, run_batch, run_offset, lengths)
                stored = seal_metadata(LOCATIONS_MAGIC, self.writer_key.metadata_key, encode_hints(hints), level=ID_TABLE_LEVEL)
                hint_name = object_name(stored)
                self.repository.backend.save(Handle(ObjectType.LISTS, hint_name), stored)
                return hint_name

            # hints objects do not name each other: sealed and saved two at a time
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="strongroom-hints") as sealers:
                for shape, hint_name in zip(pending.shapes, sealers.map(save, pending.shapes)):
                    names[shape.name] = hint_name
            pending.places.close()
            pending.component["locations"] = names
        self._pending_hints.clear()

    def abort(self) -> None:
        """Give up: stop the worker, release the lock. Saved packs stay, unreferenced, for prune."""
        self._stop_worker()
        if not self._finished:
            self._finished = True
            self.packer.close()
            self.lock.release()
        for cache in self._caches:
            cache.discard()
        self._caches.clear()

    def _install_caches(self) -> None:
        """Put the record caches of the committed snapshot in place (a failure costs the next run time only)."""
        for cache in self._caches:
            try:
                cache.install()
            except OSError as error:
                log.warning("cannot install the record cache %s: %s", cache.context.path, error.strerror)
                cache.discard()
        self._caches.clear()

    @property
    def pack_statistics(self) -> PackStatistics:
        """What the run has stored so far."""
        return self.packer.statistics

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.abort()


@dataclass
class _Block:
    """A block of a record stream on its way: its records, group ends, and hashes being made."""

    data: memoryview
    starts: np.ndarray
    ends: np.ndarray
    cuts: np.ndarray
    number: int = 0  # the shared buffer holding it
    groups: Future[bytes] | None = None  # the groups' hashes, from the hashing helper
    group_hashes: np.ndarray | None = None
    rows: Future[bytes] | None = None  # ids from the helper: records [:split], or the changed ones
    split: int = 0
    matched: _Matched | None = None  # with a record cache, after stage one
    changed_ids: bytes = b""  # the changed records' ids, when hashed here


@dataclass
class _ListShape:
    """A list object a backup saved: its name, base, depth, count, operations, and which of the
    stream's literals it holds (from ``first_literal``, ``literals`` of them)."""

    name: str
    base: str | None
    depth: int
    count: int
    operations: np.ndarray
    first_literal: int
    literals: int


class _LiteralPlaces:
    """Where a record stream's literals went, spooled as the stream goes: their lengths
    (uint32) and their runs (RUN_DTYPE, see locations.py). Batch references below
    ``own_base`` are rows of the previous chain's batches (a rebase); this run's batch of
    sequence number k is ``own_base + k``. Raises OSError (the spool)."""

    def __init__(self, directory: str | None, own_base: int) -> None:
        self.own_base = own_base
        self.lengths = SpooledBytes(directory)
        self.runs = SpooledBytes(directory)
        self.count = 0
        self._last: tuple[int, int] | None = None  # the open run's batch and where it ends (UNKNOWN, 0)
        self._all_runs: np.ndarray | None = None  # read back once, when the pieces are cut

    def add(self, batch: np.ndarray, offset: np.ndarray, length: np.ndarray) -> None:
        """The next literals' places: batch reference (UNKNOWN: not known), offset, length."""
        if len(batch):
            tail = int(offset[-1]) + int(length[-1])
            self._append(literal_runs(batch, offset, length), (int(batch[0]), int(offset[0])), (int(batch[-1]), tail), length)

    def add_stored(self, sequences: np.ndarray, offsets: np.ndarray, length: np.ndarray) -> None:
        """The next literals, every one stored by this run in order: a batch's records are
        contiguous, so a run ends where the batch changes (:meth:`add` in fewer passes)."""
        if len(sequences) == 0:
            return
        first = np.flatnonzero(np.concatenate(([True], sequences[1:] != sequences[:-1])))
        runs = np.zeros(len(first), RUN_DTYPE)
        runs["first"] = first
        runs["batch"] = sequences[first] + self.own_base
        runs["offset"] = offsets[first]
        head = (int(sequences[0]) + self.own_base, int(offsets[0]))
        tail = (int(sequences[-1]) + self.own_base, int(offsets[-1]) + int(length[-1]))
        self._append(runs, head, tail, length)

    def _append(self, runs: np.ndarray, head: tuple[int, int], tail: tuple[int, int], length: np.ndarray) -> None:
        """Spool ``runs`` (``first`` relative to these literals) and the literals' lengths; ``head``
        and ``tail`` are the first literal's (batch, offset) and the last one's (batch, end)."""
        if self._last is not None:
            last_batch, last_end = self._last
            if head[0] == last_batch and (head[0] == UNKNOWN or head[1] == last_end):
                runs = runs[1:]  # these literals continue the open run
        runs["first"] += self.count
        self.runs += runs
        self.lengths += np.ascontiguousarray(length, dtype="<u4")
        self._last = (tail[0], tail[1] if tail[0] != UNKNOWN else 0)
        self.count += len(length)

    def piece(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The runs (first relative to ``first``, batch, offset) and lengths of literals
        ``[first, first + count)``."""
        if self._all_runs is None:
            self._all_runs = np.frombuffer(self.runs.read(0, self.runs.nbytes), RUN_DTYPE)
        runs = self._all_runs
        lengths = np.frombuffer(self.lengths.read(4 * first, 4 * count), "<u4")
        if len(lengths) != count:
            raise OSError(5, "the spooled record places are shorter than their count")
        if count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint32), lengths
        a = int(np.searchsorted(runs["first"], first, side="right")) - 1
        b = int(np.searchsorted(runs["first"], first + count, side="left"))
        chosen = runs[a:b].copy()
        if chosen["first"][0] < first:
            # the piece starts inside a run: it starts there, after the lengths before it
            if chosen["batch"][0] != UNKNOWN:
                before = np.frombuffer(self.lengths.read(4 * int(chosen["first"][0]), 4 * (first - int(chosen["first"][0]))), "<u4")
                chosen["offset"][0] += int(before.sum(dtype=np.uint64))
            chosen["first"][0] = first
        return chosen["first"] - first, chosen["batch"], chosen["offset"], lengths

    def close(self) -> None:
        self.lengths.close()
        self.runs.close()


@dataclass
class _PendingHints:
    """A record component's location hints, waiting for the run's last pack: its list objects,
    where each literal went, the previous chain's hints (a rebase) and the hints it inherits."""

    component: dict[str, Any]
    shapes: list[_ListShape]
    places: _LiteralPlaces
    inherited: dict[str, str]
    rebase_map: LocationMap | None


# The hashing helper's keys (in the order given to it), and the share of a block's records it
# hashes when every record is hashed (the backup's thread also compresses, looks up and packs).
_CHUNK_KEY_NUMBER = 0
_GROUP_KEY_NUMBER = 1
_WORKER_SHARE = 0.75


def _has_repeats(ids: np.ndarray) -> bool:
    """Whether some id (S16) appears twice (a quick test of the first halves first)."""
    if len(ids) < 2:
        return False
    high = np.ascontiguousarray(ids).view("<u8")[::2].copy()  # native order: equality is all that counts
    high.sort()
    if not (high[1:] == high[:-1]).any():
        return False
    return len(np.unique(ids)) != len(ids)


def _hash_records(copy_hasher: Any, view: memoryview, starts: np.ndarray, ends: np.ndarray) -> bytes:
    """The keyed ids (16 bytes each, concatenated) of the records ``view[starts[k]:ends[k]]``
    (``copy_hasher``: from :func:`chunk_id_hasher`)."""
    ids = bytearray()
    for start, end in zip(starts.tolist(), ends.tolist()):
        one = copy_hasher()
        one.update(view[start:end])
        ids += one.digest()
    return bytes(ids)


# Where the records of changed groups are looked for in the previous list: between the
# unchanged groups around them, this many records plus twice their number from each end.
_WINDOW_SLACK = 64
# A block with more records than this (and more than half its records) missing from the
# previous list around their place has them looked up in the whole index.
_MISSES_LOOKED_UP = 256
# The threads' freed memory is handed back to the system every this many blocks (~128 MiB read;
# each time costs a few milliseconds of page faults, every 16 blocks cost ~8 % of a first backup).
_TRIM_EVERY_BLOCKS = 64
# A full list longer than this many ids is saved as a chain of at most _LIST_PIECES_MAX objects.
_LIST_PIECE = 1 << 19
_LIST_PIECES_MAX = 8


@dataclass
class _Matched:
    """A block after its groups were looked up: ids and positions so far, the changed records."""

    ids: np.ndarray
    positions: np.ndarray
    changed_rows: np.ndarray
    windows: list[tuple[int, int]]


class _CachedStream:
    """The record-cache path of one record stream: each block's ids and base positions.

    A group found in the cache is the same bytes as a group of the previous list: its
    records' ids are read from the cache and its records are copies of the previous
    list (positions ``start`` ...). The records of other groups are hashed one by one
    and looked for in the previous list between the matched groups around them.
    Ids of chunks in packs prune marked are never reused (``excluded``).
    """

    def __init__(self, cache: RecordCache, excluded: KnownIds | None, delta: bool) -> None:
        self.cache = cache
        self.excluded = excluded
        self.delta = delta
        self.previous_end = 0  # where the last matched group ended in the previous list
        self.hashed = 0  # records hashed one by one

    def match(self, starts: np.ndarray, cuts: np.ndarray, hashes: np.ndarray) -> _Matched:
        """Stage one of a block (in stream order): groups looked up, the matched records' ids read
        from the cache; returns what is left: the changed records to hash, and where to look."""
        count = len(starts)
        first = group_starts(cuts)
        rows = cuts - first
        matched = self.cache.match(hashes, rows)
        is_matched = matched >= 0
        positions = np.full(count, -1, dtype=np.int64)
        ids = np.empty(count, "S16")
        row_matched = np.repeat(is_matched, rows)
        matched_rows = np.flatnonzero(row_matched)
        if len(matched_rows):
            shift = np.repeat((matched - first)[is_matched], rows[is_matched])
            positions[matched_rows] = matched_rows + shift
            # read the cached ids a run at a time: runs consecutive both here and in the previous list
            breaks = np.flatnonzero((np.diff(matched_rows) != 1) | (np.diff(positions[matched_rows]) != 1)) + 1
            run_starts = np.concatenate(([0], breaks))
            run_ends = np.concatenate((breaks, [len(matched_rows)]))
            for run_start, run_end in zip(run_starts.tolist(), run_ends.tolist()):
                row = int(matched_rows[run_start])
                length = run_end - run_start
                ids[row : row + length] = np.frombuffer(self.cache.read_ids(int(positions[row]), length), "S16")
        windows = self._windows(matched, rows)
        if is_matched.any():
            last = int(np.flatnonzero(is_matched)[-1])
            self.previous_end = int(matched[last] + rows[last])
        changed_rows = np.flatnonzero(~row_matched)
        self.hashed += len(changed_rows)
        return _Matched(ids, positions, changed_rows, windows)

    def complete(self, matched: _Matched, changed_ids: bytes) -> tuple[bytes, np.ndarray]:
        """Stage two: with the changed records' ids, (ids of the block's records, their
        positions in the previous list or -1)."""
        ids, positions, changed_rows = matched.ids, matched.positions, matched.changed_rows
        if len(changed_rows):
            changed = np.frombuffer(changed_ids, "S16")
            ids[changed_rows] = changed
            positions[changed_rows] = window_positions(self.cache, changed, matched.windows)
        if self.excluded is not None and len(self.excluded):
            reused = np.flatnonzero(positions >= 0)
            marked, _ = self.excluded.lookup(ids[reused], None)
            positions[reused[marked]] = -1
        return ids.tobytes(), positions

    def _windows(self, matched: np.ndarray, rows: np.ndarray) -> list[tuple[int, int]]:
        """The ranges of the previous list where the records of each run of unmatched groups may be."""
        windows: list[tuple[int, int]] = []
        low = self.previous_end
        group = 0
        total = len(matched)
        matched_list = matched.tolist()
        rows_list = rows.tolist()
        while group < total:
            if matched_list[group] >= 0:
                low = matched_list[group] + rows_list[group]
                group += 1
                continue
            run_rows = 0
            while group < total and matched_list[group] < 0:
                run_rows += rows_list[group]
                group += 1
            reach = 2 * run_rows + _WINDOW_SLACK
            high = matched_list[group] if group < total else -1
            if low <= high <= low + 2 * reach:
                windows.append((low, max(high, low + reach)))
            else:
                # a jump (rows deleted, or a block moved): the rows after the last unchanged group
                # and the rows before the next one
                windows.append((low, low + reach))
                if high >= 0:
                    windows.append((max(0, high - reach), high))
        return windows


def _chunk_ids(component: dict[str, Any]) -> bytes:
    """The ids of a component stored as a list of chunks (a file), concatenated."""
    return b"".join(bytes.fromhex(chunk) for chunk in component.get("chunks", []))


def iter_snapshot_names(listing: SnapshotListing) -> Iterator[str]:
    """The names of the listed snapshots, oldest first."""
    for header in listing.snapshots:
        yield header.name


_ = (ID_SIZE, StrongroomError)
