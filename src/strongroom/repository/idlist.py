"""Ordered chunk-id lists, stored whole or as a delta against an earlier list.

A record stream (a database dump) is an ordered list of chunk ids, one per
record. Most of a day's list equals the day before's, so a list object stores
*operations* against a base list: copy ``count`` ids starting at ``start`` of the
base, or insert ``count`` ids taken from the object's literal ids. A *full* list
has no base and a single insert of every id.

Each delta's ``depth`` is its base's depth plus one; writers start a new full list
when the depth would pass :data:`MAX_DEPTH`, so materialising a list reads at most
that many objects. A list depends only on list objects, never on snapshots, so
removing a snapshot never breaks another (prune keeps every list reachable from
a kept snapshot, and may rewrite a long chain as a full list: a rebase).

Payload layout (before zstd and the metadata seal): ``kind:u8`` (0 full, 1 delta),
``base:32`` (zeros for a full list), ``depth:u32``, ``count:u64``, ``operations:u64``,
``literals:u64``, then ``operations`` pairs of int64 (start, count; start -1 means
"the next ``count`` literal ids"), then ``literals`` ids of 16 bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from strongroom.errors import IntegrityError
from strongroom.repository.format import SpooledBytes
from strongroom.repository.keys import ID_SIZE

MAX_DEPTH = 30
_HEADER = struct.Struct("<B32sIQQQ")
LITERAL = -1


@dataclass(frozen=True)
class IdList:
    """A decoded list object: its base (None for a full list), depth, length, operations and literal ids."""

    base: str | None
    depth: int
    count: int
    operations: np.ndarray  # shape (n, 2) int64
    literals: bytes | memoryview

    @property
    def literal_count(self) -> int:
        return len(self.literals) // ID_SIZE

    def apply(self, base_ids: bytes | bytearray | None, what: str) -> bytearray:
        """The full list (``count`` ids concatenated) from this object and its base's full list.

        The output is allocated once at its final size and filled from views (no
        intermediate copies: a 4 M-id list is 64 MB, and the base is held as well).
        Raises IntegrityError when an operation points outside the base or the count does not match.
        """
        counts = self.operations[:, 1]
        if len(counts) and int(counts.min()) < 0:
            raise IntegrityError(f"{what} has a negative operation length")
        if len(counts) and int(counts.max()) > self.count:
            raise IntegrityError(f"{what} yields more ids than it says ({self.count})")
        total = int(counts.sum())
        if total != self.count:
            raise IntegrityError(f"{what} yields {total} ids but says {self.count}")
        output = bytearray(self.count * ID_SIZE)
        base_length = 0 if base_ids is None else len(base_ids) // ID_SIZE
        base_buffer = base_ids if base_ids is not None else b""
        with memoryview(output) as view, memoryview(self.literals) as literals, memoryview(base_buffer) as base:
            position = literal_position = 0
            for start, count in self.operations.tolist():
                size = count * ID_SIZE
                if start == LITERAL:
                    end = literal_position + size
                    if end > len(literals):
                        raise IntegrityError(f"{what} refers past its literal ids")
                    view[position : position + size] = literals[literal_position:end]
                    literal_position = end
                else:
                    if base_ids is None or start < 0 or start + count > base_length:
                        raise IntegrityError(f"{what} copies ids outside its base list")
                    view[position : position + size] = base[start * ID_SIZE : start * ID_SIZE + size]
                position += size
        return output


class ListBuilder:
    """Builds a list object's operations and literal ids from records given a block at a time.

    For each record, :meth:`feed` takes its position in the base list (-1 when the
    base lacks it) and its id. A record whose position follows the previous
    record's extends the open copy run; a record the base lacks extends the open
    literal run. The work is vectorised over a block: Python runs once per run,
    not once per record.
    """

    def __init__(self, spool_directory: str | None = None) -> None:
        self.count = 0
        # a first backup's literals are every id (64 MB for 4 M records): spooled to a file
        self.literals = SpooledBytes(spool_directory)
        self._operations: list[np.ndarray] = []
        self._open_start = 0  # the open run: LITERAL, or the base position it starts at
        self._open_length = 0  # 0: no open run
        self._expected = -2  # the base position that would extend the open copy run

    def feed(self, positions: np.ndarray, ids: bytes | memoryview) -> None:
        """Add records: ``positions`` (int64, -1 where the base lacks the record) and their ids (16 bytes each)."""
        count = len(positions)
        if count == 0:
            return
        self.count += count
        literal = positions < 0
        if literal.any():
            literal_ids = np.frombuffer(ids, "S16", count)[literal]
            self.literals += literal_ids.tobytes()
        # a record starts a new run unless it extends the previous record's run
        new = np.empty(count, dtype=bool)
        new[1:] = np.where(literal[1:], ~literal[:-1], literal[:-1] | (positions[1:] != positions[:-1] + 1))
        if self._open_length == 0:
            new[0] = True
        elif literal[0]:
            new[0] = self._open_start != LITERAL
        else:
            new[0] = self._open_start == LITERAL or int(positions[0]) != self._expected
        run_starts = np.flatnonzero(new)
        if len(run_starts) == 0:  # everything extends the open run
            self._open_length += count
            self._expected += count if self._open_start != LITERAL else 0
            return
        closed: list[np.ndarray] = []
        if run_starts[0] > 0 or self._open_length:
            closed.append(np.array([[self._open_start, self._open_length + int(run_starts[0])]], dtype=np.int64))
        lengths = np.diff(run_starts, append=count)
        run_positions = np.where(literal[run_starts], LITERAL, positions[run_starts])
        operations = np.stack((run_positions, lengths), axis=1)
        closed.append(operations[:-1])
        self._operations.extend(part for part in closed if len(part))
        self._open_start, self._open_length = int(run_positions[-1]), int(lengths[-1])
        self._expected = self._open_start + self._open_length if self._open_start != LITERAL else -2

    def operations(self) -> np.ndarray:
        """Every operation (an (n, 2) int64 array), the open run included."""
        parts = list(self._operations)
        if self._open_length:
            parts.append(np.array([[self._open_start, self._open_length]], dtype=np.int64))
        return np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)


def encode(
    base: str | None, depth: int, count: int, operations: list[int] | np.ndarray, literals: bytes | bytearray | SpooledBytes
) -> bytes:
    """The payload of a list object. ``operations``: flat (start, count, start, count, ...) or an (n, 2) array."""
    return b"".join(
        b"".join(part.pieces()) if isinstance(part, SpooledBytes) else bytes(part)
        for part in encode_parts(base, depth, count, operations, literals)
    )


def encode_parts(
    base: str | None, depth: int, count: int, operations: list[int] | np.ndarray, literals: bytes | bytearray | SpooledBytes
) -> list[bytes | bytearray | np.ndarray | SpooledBytes]:
    """The payload of a list object as parts to concatenate (the literal ids are not copied)."""
    ops = np.ascontiguousarray(operations, dtype="<i8").reshape(-1)
    header = _HEADER.pack(
        1 if base else 0,
        bytes.fromhex(base) if base else bytes(32),
        depth,
        count,
        len(ops) // 2,
        len(literals) // ID_SIZE,
    )
    return [header, ops, literals]


def decode(payload: bytes | memoryview | np.ndarray, what: str) -> IdList:
    """Parse a list payload. Raises IntegrityError when it is inconsistent."""
    if isinstance(payload, np.ndarray):
        payload = payload.data  # a memoryview of the array: read in place
    if len(payload) < _HEADER.size:
        raise IntegrityError(f"{what} is truncated")
    kind, base, depth, count, operation_count, literal_count = _HEADER.unpack_from(payload)
    operations_end = _HEADER.size + operation_count * 16
    if kind not in (0, 1) or len(payload) != operations_end + literal_count * ID_SIZE:
        raise IntegrityError(f"{what} has an inconsistent layout")
    operations = np.frombuffer(payload, dtype="<i8", count=operation_count * 2, offset=_HEADER.size).reshape(-1, 2)
    # The literal ids are a view of the payload (not a copy: a full list of 4 M ids is 64 MB).
    return IdList(base.hex() if kind == 1 else None, depth, count, operations, memoryview(payload)[operations_end:])


def _load_chain(name: str, load: Callable[[str], IdList]) -> list[tuple[str, IdList]]:
    """List object ``name`` and its bases, decoded, the object first. Raises IntegrityError on a
    chain longer than MAX_DEPTH + 1 (a cycle), and what ``load`` raises."""
    chain: list[tuple[str, IdList]] = []
    current: str | None = name
    while current is not None:
        if len(chain) > MAX_DEPTH + 1:
            raise IntegrityError(f"the id list {name[:12]} has a base chain longer than {MAX_DEPTH}")
        decoded = load(current)
        chain.append((current, decoded))
        current = decoded.base
    return chain


def materialize_halves(name: str, load: Callable[[str], IdList]) -> tuple[np.ndarray, np.ndarray]:
    """The full id list of list object ``name`` as :func:`~strongroom.repository.index.split_ids`
    gives it (the first and last 8 bytes of each id, big-endian, as two native uint64 arrays),
    written straight from the chain's literal ids: the 16-byte list is never made (a restore
    needs only the halves; 64 MB less for a 4 M-id list). Raises as :func:`materialize`.
    """
    chain = _load_chain(name, load)
    levels, sources, counts = compose(chain)
    count = chain[0][1].count
    high = np.empty(count, dtype=np.uint64)
    low = np.empty(count, dtype=np.uint64)
    tables = [np.frombuffer(decoded.literals, dtype=">u8").reshape(-1, 2) for _, decoded in chain]
    position = 0
    for level, source, length in zip(levels.tolist(), sources.tolist(), counts.tolist()):
        pairs = tables[level][source : source + length]
        if len(pairs) != length or position + length > count:  # compose checked it; never broadcast
            raise IntegrityError(f"id list {name[:12]} refers past its literal ids")
        high[position : position + length] = pairs[:, 0]
        low[position : position + length] = pairs[:, 1]
        position += length
    if position != count:
        raise IntegrityError(f"id list {name[:12]} yields {position} ids but says {count}")
    del tables, chain
    return high, low


def materialize(name: str, load: Callable[[str], IdList]) -> np.ndarray:
    """The full id list of list object ``name``, following its base chain (at most MAX_DEPTH + 1 objects).

    ``load(name)`` returns a decoded list object. The chain's operations are composed first
    (:func:`compose`: where each stretch of the list comes from, among the chain's literal
    ids), then the list is written once into a buffer of its final size: no intermediate
    list is made for each base (a 4 M-id list is 64 MB, fresh memory each time). The buffer
    is a numpy array (uint8, 16 bytes an id), which gets huge pages where bytes would not.
    Raises IntegrityError on a cycle, a broken chain or an inconsistent object.
    """
    chain = _load_chain(name, load)
    levels, sources, counts = compose(chain)
    output = np.empty(chain[0][1].count * ID_SIZE, dtype=np.uint8)
    literal_views = [memoryview(decoded.literals) for _, decoded in chain]
    try:
        with output.data as view:
            position = 0
            for level, source, count in zip(levels.tolist(), sources.tolist(), counts.tolist()):
                size = count * ID_SIZE
                view[position : position + size] = literal_views[level][source * ID_SIZE : source * ID_SIZE + size]
                position += size
    finally:
        for literal_view in literal_views:
            literal_view.release()
    return output


class ListShape(Protocol):
    """What composing a chain needs of a list object (an :class:`IdList`, or the location
    hints that describe one): its base, length, operations and how many literals it holds."""

    @property
    def base(self) -> str | None: ...
    @property
    def count(self) -> int: ...
    @property
    def operations(self) -> np.ndarray: ...
    @property
    def literal_count(self) -> int: ...


def _check_operations(decoded: ListShape, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The operations of ``decoded`` as (starts, counts, positions: where each begins in its
    list, with the list's length appended), checked as :meth:`IdList.apply` checks them.
    Raises IntegrityError."""
    starts = decoded.operations[:, 0]
    counts = decoded.operations[:, 1]
    if len(counts) and int(counts.min()) < 0:
        raise IntegrityError(f"{what} has a negative operation length")
    if len(counts) and int(counts.max()) > decoded.count:
        raise IntegrityError(f"{what} yields more ids than it says ({decoded.count})")
    positions = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=positions[1:])
    if int(positions[-1]) != decoded.count:
        raise IntegrityError(f"{what} yields {int(positions[-1])} ids but says {decoded.count}")
    literal = starts == LITERAL
    literal_counts = np.where(literal, counts, 0)
    if int(literal_counts.sum()) > decoded.literal_count:
        raise IntegrityError(f"{what} refers past its literal ids")
    return starts, counts, positions


def compose(chain: Sequence[tuple[str, ListShape]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each stretch of the first object's list comes from: (level, start, count) arrays in
    list order, ``level`` indexing ``chain`` (the object, then its base, ...) and ``start`` an id
    position in that object's literal ids. Copies are followed down the chain a level at a time,
    split where the base's operations begin (vectorised: the work is per stretch, not per id).
    Raises IntegrityError where an object is inconsistent or copies outside its base."""
    done_output: list[np.ndarray] = []
    done_level: list[np.ndarray] = []
    done_source: list[np.ndarray] = []
    done_count: list[np.ndarray] = []
    # Pending stretches: (output position, position in the current level's list, count).
    output = np.zeros(1, dtype=np.int64)
    wanted = np.zeros(1, dtype=np.int64)
    count = np.array([chain[0][1].count], dtype=np.int64)
    for level, (object_name, decoded) in enumerate(chain):
        what = f"id list {object_name[:12]}"
        starts, counts, positions = _check_operations(decoded, what)
        keep = count > 0
        output, wanted, count = output[keep], wanted[keep], count[keep]
        if len(count) == 0:
            break
        # Each stretch is cut where an operation of this level begins.
        first = np.searchsorted(positions, wanted, side="right") - 1
        last = np.searchsorted(positions, wanted + count - 1, side="right") - 1
        pieces = last - first + 1
        owner = np.repeat(np.arange(len(count)), pieces)
        operation = np.repeat(first, pieces) + (np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces))
        piece_start = np.maximum(wanted[owner], positions[operation])
        piece_end = np.minimum(wanted[owner] + count[owner], positions[operation + 1])
        piece_output = output[owner] + (piece_start - wanted[owner])
        piece_count = piece_end - piece_start
        within = piece_start - positions[operation]  # how far into its operation the piece starts
        literal = starts[operation] == LITERAL
        # Literal operations take their ids in order: an operation's first literal id is the
        # number of literal ids the operations before it take.
        literal_before = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(np.where(starts == LITERAL, counts, 0), out=literal_before[1:])
        done_output.append(piece_output[literal])
        done_level.append(np.full(int(literal.sum()), level, dtype=np.int64))
        done_source.append(literal_before[operation[literal]] + within[literal])
        done_count.append(piece_count[literal])
        copy = ~literal
        output, count = piece_output[copy], piece_count[copy]
        wanted = starts[operation[copy]] + within[copy]
        if len(count):
            base_length = chain[level + 1][1].count if level + 1 < len(chain) else -1
            if decoded.base is None or int(wanted.min()) < 0 or int((wanted + count).max()) > base_length:
                raise IntegrityError(f"{what} copies ids outside its base list")
    outputs = np.concatenate(done_output) if done_output else np.empty(0, np.int64)
    order = np.argsort(outputs, kind="stable")
    levels = np.concatenate(done_level)[order] if done_level else np.empty(0, np.int64)
    sources = np.concatenate(done_source)[order] if done_source else np.empty(0, np.int64)
    counts_out = np.concatenate(done_count)[order] if done_count else np.empty(0, np.int64)
    # Neighbouring stretches that continue each other in one literal table become one copy.
    if len(order) > 1:
        join = (levels[1:] == levels[:-1]) & (sources[1:] == sources[:-1] + counts_out[:-1])
        if bool(join.any()):
            group = np.concatenate(([0], np.cumsum(~join)))
            first_of = np.flatnonzero(np.concatenate(([True], ~join)))
            counts_out = np.bincount(group, weights=counts_out).astype(np.int64)
            levels, sources = levels[first_of], sources[first_of]
    return levels, sources, counts_out


def materialize_pieces(name: str, load: Callable[[str], IdList], piece_ids: int = 1 << 18) -> Iterator[bytes | bytearray]:
    """The full id list of list object ``name`` as consecutive pieces of about ``piece_ids`` ids.

    Only the list's base is materialised; the list itself is produced a piece at a
    time from its operations, so the whole list and its base are never held together.
    Raises IntegrityError as :func:`materialize` (a wrong count only after the last piece).
    """
    head = load(name)
    what = f"id list {name[:12]}"
    base: np.ndarray | None = materialize(head.base, load) if head.base is not None else None
    base_length = 0 if base is None else len(base) // ID_SIZE
    piece = bytearray()
    limit = piece_ids * ID_SIZE
    produced = literal_position = 0
    with memoryview(head.literals) as literals, (base.data if base is not None else memoryview(b"")) as base_view:
        for start, count in head.operations.tolist():
            if count < 0:
                raise IntegrityError(f"{what} has a negative operation length")
            if start == LITERAL:
                if literal_position + count * ID_SIZE > len(literals):
                    raise IntegrityError(f"{what} refers past its literal ids")
                source, offset = literals, literal_position
                literal_position += count * ID_SIZE
            else:
                if base is None or start < 0 or start + count > base_length:
                    raise IntegrityError(f"{what} copies ids outside its base list")
                source, offset = base_view, start * ID_SIZE
            end = offset + count * ID_SIZE
            while offset < end:
                take = min(end - offset, limit - len(piece))
                piece += source[offset : offset + take]
                offset += take
                if len(piece) >= limit:
                    produced += len(piece) // ID_SIZE
                    yield piece
                    piece = bytearray()
    produced += len(piece) // ID_SIZE
    if produced != head.count:
        raise IntegrityError(f"{what} yields {produced} ids but says {head.count}")
    if piece:
        yield piece


def chain_of(name: str, load: Callable[[str], IdList]) -> list[str]:
    """The names of list object ``name`` and every base it depends on. Raises what ``load`` raises."""
    names: list[str] = []
    current: str | None = name
    while current is not None and len(names) <= MAX_DEPTH + 1:
        names.append(current)
        current = load(current).base
    return names
