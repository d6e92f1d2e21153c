"""The writer's record cache: what the last snapshot's dump looked like, kept on the backup host.

A day's dump is mostly the day before's rows in the same order. Hashing each of
its millions of rows again costs more than everything else a backup does, so the
writer also cuts each block of records into *groups* of about 32 consecutive
records, at records chosen by their content (so a changed row moves no cut
elsewhere), and keys each group by a keyed hash of its bytes. The cache of a
record stream holds, for the snapshot that stored it:

- its ordered chunk ids (the id list, materialised: 16 bytes a record), and
- a table of its groups: keyed group hash, position of the group's first record in
  the list, number of records; sorted by hash.

The next backup hashes each group (one call for ~32 records) and
looks it up: a group seen before is the same bytes, cut into the same records, so
its ids are the cached ones and its records are copies of the previous list; only
the records of unseen groups are hashed one by one and looked up among the previous
list's ids around the same place (see :func:`window_positions`).

The cache is an optimisation, never the truth: it is bound to the name of the id
list it describes (the next backup uses it only when the previous snapshot's list
of the same component has that name), authenticated with a key derived from the
writer's id key (a cache altered or written by someone else is ignored), and a
missing, stale or damaged cache means one slower backup, which writes a new one.
It holds only writer-readable metadata (keyed hashes and ids), in a directory of
mode 0700. File layout: ``ids`` (count x 16 bytes), ``groups`` (entries of
:data:`GROUP_DTYPE`, sorted by hash), a footer (:data:`_FOOTER`), then a 32-byte
keyed BLAKE3 of everything before it and of the repository id and component name.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import blake3
import numpy as np

from strongroom.errors import RepositoryError
from strongroom.repository.index import SortedIds, sort_order, split_ids
from strongroom.repository.keys import ID_SIZE

log = logging.getLogger(__name__)

MAGIC = b"SRRC"
VERSION = 1
GROUP_DTYPE = np.dtype([("hash", "S16"), ("start", "<u8"), ("rows", "<u4")])
_FOOTER = struct.Struct("<4sB32sQQ")  # magic, version, list name, record count, group count
_MAC_SIZE = 32
_READ = 8 << 20

# Group cuts: after a record whose sampled bytes fall in one of GROUP_SPREAD buckets, and
# at least every MAX_GROUP records (a cut forced by position, only where content gives none).
GROUP_SPREAD = 32
MAX_GROUP = 128
_SPREAD_BITS = GROUP_SPREAD.bit_length() - 1
_MIX_1 = np.uint64(0x9E3779B97F4A7C15)
_MIX_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_MIX_3 = np.uint64(0x165667B19E3779F9)


def group_key(id_key: bytes) -> bytes:
    """The key of group hashes, derived from the repository's id key."""
    return blake3.blake3(b"strongroom record group", key=id_key).digest()


def cache_key(id_key: bytes) -> bytes:
    """The key that authenticates cache files, derived from the repository's id key."""
    return blake3.blake3(b"strongroom record cache", key=id_key).digest()


def group_ends(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The index (exclusive) of the last record of each group of the records ``raw[starts[k]:ends[k]]``.

    A group ends after a record that ends a line and whose sampled bytes (8 bytes 40
    bytes in, where a row's id usually is, and 8 bytes before its last 16) fall in
    bucket 0 of :data:`GROUP_SPREAD`; after :data:`MAX_GROUP` records without such a
    record; and at the last record. The result is increasing and ends with ``len(starts)``.
    """
    count = len(starts)
    if count == 0:
        return np.empty(0, dtype=np.int64)
    if len(raw) < 8:
        return np.array([count], dtype=np.int64) if count else np.empty(0, dtype=np.int64)
    # the 8 bytes at every offset, as one (unaligned) uint64 view: one gather a sample
    words = np.ndarray(shape=(len(raw) - 7,), dtype="<u8", buffer=raw, strides=(1,))
    last_word = len(raw) - 8
    lengths = ends - starts
    first = np.minimum(starts + np.minimum(40, np.maximum(lengths - 8, 0)), last_word)
    second = np.minimum(np.maximum(ends - 24, starts), last_word)
    a = words[first]
    b = words[second]
    mixed = (a * _MIX_1) ^ (b * _MIX_2)
    mixed ^= mixed >> np.uint64(29)
    cut = ((mixed * _MIX_3) >> np.uint64(64 - _SPREAD_BITS)) == 0
    cut &= raw[ends - 1] == 10
    cut[-1] = True
    cuts = np.flatnonzero(cut) + 1
    gaps = np.diff(cuts, prepend=0)
    if int(gaps.max()) > MAX_GROUP:
        forced: list[np.ndarray] = []
        previous = 0
        for end in cuts.tolist():
            if end - previous > MAX_GROUP:
                forced.append(np.arange(previous + MAX_GROUP, end, MAX_GROUP, dtype=np.int64))
            previous = end
        cuts = np.sort(np.concatenate([cuts, *forced]))
    return cuts.astype(np.int64)


def group_starts(cuts: np.ndarray) -> np.ndarray:
    """The index of each group's first record, for group ends ``cuts`` (as :func:`group_ends` gives them)."""
    first = np.zeros_like(cuts)
    first[1:] = cuts[:-1]
    return first


def hash_groups(view: memoryview, starts: np.ndarray, ends: np.ndarray, cuts: np.ndarray, key: bytes) -> np.ndarray:
    """The keyed hash (S16) of each group's bytes; group ``g`` is records ``cuts[g-1]:cuts[g]``."""
    first = group_starts(cuts)
    byte_starts = starts[first].tolist()
    byte_ends = ends[cuts - 1].tolist()
    hasher = blake3.blake3(key=key).copy
    digests = bytearray()
    for start, end in zip(byte_starts, byte_ends):
        one = hasher()
        one.update(view[start:end])
        digests += one.digest(16)
    return np.frombuffer(bytes(digests), "S16")


def cache_path(directory: Path, name_key: bytes, component: str) -> Path:
    """Where the cache of component ``component`` lives (its name hashed: no path tricks)."""
    return directory / f"records-{blake3.blake3(component.encode(), key=name_key).hexdigest()[:32]}"


@dataclass
class CacheContext:
    """What binds a cache file to its owner: the repository, the component, the writer's cache key."""

    directory: Path
    repository_id: str
    component: str
    key: bytes

    @property
    def path(self) -> Path:
        return cache_path(self.directory, self.key, self.component)

    def mac(self) -> blake3.blake3:
        hasher = blake3.blake3(key=self.key)
        hasher.update(self.repository_id.encode() + b"\0" + self.component.encode() + b"\0")
        return hasher


class RecordCache:
    """A validated cache file, open for reading: the group table in memory, ids read on demand."""

    def __init__(self, descriptor: int, list_name: str, count: int, groups: np.ndarray, path: Path | None = None) -> None:
        self._descriptor = descriptor
        self.path = path
        self.list_name = list_name
        self.count = count
        self.groups = groups
        self._hashes = SortedIds(*split_ids(groups["hash"]))  # written sorted by hash

    @classmethod
    def open(cls, context: CacheContext, list_name: str) -> RecordCache | None:
        """The cache of ``context`` if it describes list ``list_name`` and is intact, else None (logged)."""
        path = context.path
        try:
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("cannot read the record cache %s: %s", path, error.strerror)
            return None
        try:
            cache = cls._read(descriptor, context, list_name)
        except OSError as error:
            log.warning("cannot read the record cache %s: %s", path, error.strerror)
            cache = None
        if cache is None:
            os.close(descriptor)
        return cache

    @classmethod
    def _read(cls, descriptor: int, context: CacheContext, list_name: str) -> RecordCache | None:
        size = os.fstat(descriptor).st_size
        tail = _FOOTER.size + _MAC_SIZE
        if size < tail:
            log.warning("the record cache of %s is truncated: ignored", context.component)
            return None
        footer = os.pread(descriptor, tail, size - tail)
        magic, version, listed, count, group_count = _FOOTER.unpack_from(footer)
        if magic != MAGIC or version != VERSION or size != count * ID_SIZE + group_count * GROUP_DTYPE.itemsize + tail:
            log.warning("the record cache of %s is not one this strongroom writes: ignored", context.component)
            return None
        if listed.hex() != list_name:
            log.info("the record cache of %s describes another snapshot: ignored", context.component)
            return None
        mac = context.mac()
        position = 0
        body = size - _MAC_SIZE
        while position < body:
            piece = os.pread(descriptor, min(_READ, body - position), position)
            if not piece:
                return None
            mac.update(piece)
            position += len(piece)
        if mac.digest() != footer[_FOOTER.size :]:
            log.warning("the record cache of %s fails its authentication: ignored", context.component)
            return None
        groups_bytes = os.pread(descriptor, group_count * GROUP_DTYPE.itemsize, count * ID_SIZE)
        groups = np.frombuffer(groups_bytes, GROUP_DTYPE, group_count)
        return cls(descriptor, list_name, count, groups, context.path)

    def close(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def read_ids(self, start: int, count: int) -> bytes:
        """Ids ``start`` to ``start + count`` of the cached list (16 bytes each).

        Raises RepositoryError when the file cannot be read (it was checked when opened, so
        only a disk error or someone changing it during the backup does that)."""
        wanted = count * ID_SIZE
        try:
            data = os.pread(self._descriptor, wanted, start * ID_SIZE)
        except OSError as error:
            data = b""
            reason = error.strerror or "read error"
        else:
            reason = "it was truncated while in use"
        if len(data) != wanted:
            raise RepositoryError(
                f"cannot read the record cache ({reason})",
                hint=f"delete {self.path} (the next backup rebuilds it) and run the backup again",
            )
        return data

    def match(self, hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each group (its hash and record count): the position of its first record in the
        cached list, or -1 when the cache has no such group."""
        result = np.full(len(hashes), -1, dtype=np.int64)
        if len(self.groups) == 0 or len(hashes) == 0:
            return result
        places, found = self._hashes.find(*split_ids(hashes))
        hit = found & (self.groups["rows"][places] == rows)
        result[hit] = self.groups["start"][places[hit]].astype(np.int64)
        return result


class RecordCacheWriter:
    """Writes the cache of the record stream being stored; :meth:`install` puts it in place."""

    def __init__(self, context: CacheContext) -> None:
        self.context = context
        context.directory.mkdir(parents=True, mode=0o700, exist_ok=True)
        self._temporary = context.path.with_name(f"{context.path.name}.{os.getpid()}.tmp")
        self._descriptor = os.open(
            self._temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600
        )
        self._mac = context.mac()
        self.count = 0
        self._groups: list[np.ndarray] = []
        self._finished = False

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` to the cache file (a short write goes on). Raises OSError."""
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.write(self._descriptor, view[written:])

    def add(self, ids: bytes | bytearray | memoryview, hashes: np.ndarray, cuts: np.ndarray) -> None:
        """Append a block's record ids, and its groups (``hashes``, ending at record ``cuts``)."""
        self._mac.update(ids)
        self._write(ids)
        entries = np.empty(len(hashes), GROUP_DTYPE)
        entries["hash"] = hashes
        first = group_starts(cuts)
        entries["start"] = first + self.count
        entries["rows"] = cuts - first
        self._groups.append(entries)
        self.count += len(ids) // ID_SIZE

    def finish(self, list_name: str) -> None:
        """Write the group table, footer and authentication for list ``list_name``."""
        groups = np.concatenate(self._groups) if self._groups else np.empty(0, GROUP_DTYPE)
        self._groups.clear()
        if len(groups):
            groups = groups[sort_order(*split_ids(groups["hash"]))]
        tail = _FOOTER.pack(MAGIC, VERSION, bytes.fromhex(list_name), self.count, len(groups))
        for part in (groups.tobytes(), tail):
            self._mac.update(part)
            self._write(part)
        self._write(self._mac.digest())
        os.close(self._descriptor)
        self._descriptor = -1
        self._finished = True

    def install(self) -> None:
        """Replace the component's cache with the finished one (after the snapshot is committed)."""
        if self._finished:
            os.replace(self._temporary, self.context.path)
            self._finished = False

    def discard(self) -> None:
        """Remove the unfinished or uninstalled file."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
        try:
            os.unlink(self._temporary)
        except FileNotFoundError:
            pass


def window_positions(cache: RecordCache, ids: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
    """For each of ``ids`` (S16), a position in the cached list where the same id is, searched
    only in the ``windows`` (start, end) of that list; -1 where none of them holds it.

    The records of a changed group that did not change are, in the previous list,
    between the groups around it that did not change: their windows.
    """
    result = np.full(len(ids), -1, dtype=np.int64)
    pieces: list[bytes] = []
    offsets: list[np.ndarray] = []
    for start, end in windows:
        end = min(end, cache.count)
        if end > start:
            pieces.append(cache.read_ids(start, end - start))
            offsets.append(np.arange(start, end, dtype=np.int64))
    if not pieces or len(ids) == 0:
        return result
    window_ids = np.frombuffer(b"".join(pieces), "S16")
    where = np.concatenate(offsets)
    high, low = split_ids(window_ids)
    # sorted by first halves only: SortedIds.find walks a run of equal first halves
    order = np.argsort(high)
    rows, found = SortedIds(high[order], low[order]).find(*split_ids(ids))
    # an id found at several places: any of them holds the same record
    result[found] = where[order][rows[found]]
    return result
