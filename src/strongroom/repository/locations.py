"""Location hints: where each record of an id list was stored, so a restore need not look it up.

A restore without hints locates every listed id in the index (sort the list, search
every index object: about 1 s of CPU and 32 bytes a record for a 4 M-record dump). But
the writer knows where it put each new record (batch and offset) the moment it packs
it. It saves that knowledge beside each list object it writes, as a *hint object*:

- the list object's own shape (its base list's name, depth, count and operations), so
  that a restore composes the chain from hint objects alone, without the ids;
- the batches its records went to (pack name, place in the pack, batch id), as in an
  index object;
- its literal ids' places, as *runs* (literals that follow each other in one batch,
  each starting where the one before ended: batch, a row of that table or -1 for
  unknown, and the first one's offset in the batch's plaintext), and each literal's
  length.

Snapshot components name the hint objects of their list chain (``"locations"``:
list name -> hint object name, in the signed body). A literal is unknown when the
writer did not store it in that run (found in the repository from an older snapshot).
A restore (:class:`LocationMap`) maps every output position through the chain's
operations to a literal of one hint object; positions whose literal is unknown, or
whose pack is gone (repacked by prune), are located in the index as before, only
those. Hints are advisory: the restored file is still checked against the
snapshot's keyed content hash, and anything wrong with a hint object (missing,
damaged) only means the records are located the old way.

Payload layout (before zstd and the metadata seal, magic ``SRLC``): ``version:u8``,
``list:32`` (the list object's name), ``base:32`` (zeros for none), ``depth:u32``,
``count:u64``, ``operations:u64``, ``literals:u64``, ``runs:u64``, ``packs:u32``,
``batches:u32``; then ``operations`` pairs of int64 (as in the list object), ``packs``
names of 32 bytes, ``batches`` rows of :data:`~strongroom.repository.format.BATCH_DTYPE`
(pack = row of this object's pack table), the *runs* as three columns of ``runs``
values: first literal (int64, the first is 0, increasing), batch (int32, -1 unknown),
offset of the first literal in the batch's plaintext (uint32); then the length of every
literal (uint32). A run is literals that follow each other in one batch, each starting
where the one before ended (or literals whose place is unknown).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from strongroom.errors import IntegrityError
from strongroom.repository import idlist
from strongroom.repository.format import BATCH_DTYPE

LOCATIONS_MAGIC = b"SRLC"
_VERSION = 1
_HEADER = struct.Struct("<B32s32sIQQQQII")
UNKNOWN = -1
# a run of literals, as a backup spools them: first literal, batch reference, offset of the first
RUN_DTYPE = np.dtype([("first", "<i8"), ("batch", "<i4"), ("offset", "<u4")])


@dataclass
class Hints:
    """A decoded hint object: the list object's shape, its literal runs and literal lengths."""

    list_name: str
    base: str | None
    depth: int
    count: int
    operations: np.ndarray  # (n, 2) int64
    packs: list[str]
    batches: np.ndarray  # BATCH_DTYPE
    run_first: np.ndarray  # int64 per run
    run_batch: np.ndarray  # int32 per run, UNKNOWN or a row of ``batches``
    run_offset: np.ndarray  # uint32 per run
    length: np.ndarray  # uint32 per literal

    @property
    def literal_count(self) -> int:
        return len(self.length)


def literal_runs(batch: np.ndarray, offset: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The runs (RUN_DTYPE, ``first`` relative to these literals) of literals placed at
    ``batch`` (UNKNOWN: not known), ``offset``, ``length``."""
    count = len(batch)
    if count == 0:
        return np.zeros(0, RUN_DTYPE)
    known = batch != UNKNOWN
    starts = np.ones(count, dtype=bool)
    starts[1:] = (known[1:] != known[:-1]) | (known[1:] & ((batch[1:] != batch[:-1])
                                                          | (offset[1:].astype(np.int64) != offset[:-1].astype(np.int64) + length[:-1])))
    first = np.flatnonzero(starts)
    runs = np.zeros(len(first), RUN_DTYPE)
    runs["first"] = first
    runs["batch"] = batch[first]
    runs["offset"] = np.where(known[first], offset[first], 0)
    return runs


def encode_hints(hints: Hints) -> list[bytes | np.ndarray]:
    """The payload parts of a hint object."""
    operations = np.ascontiguousarray(hints.operations, dtype="<i8").reshape(-1, 2)
    header = _HEADER.pack(
        _VERSION, bytes.fromhex(hints.list_name), bytes.fromhex(hints.base) if hints.base else bytes(32),
        hints.depth, hints.count, len(operations), len(hints.length), len(hints.run_first), len(hints.packs), len(hints.batches),
    )
    arrays = [operations, np.ascontiguousarray(hints.batches, dtype=BATCH_DTYPE),
              np.ascontiguousarray(hints.run_first, dtype="<i8"), np.ascontiguousarray(hints.run_batch, dtype="<i4"),
              np.ascontiguousarray(hints.run_offset, dtype="<u4"), np.ascontiguousarray(hints.length, dtype="<u4")]
    flat: list[bytes | np.ndarray] = [array.reshape(-1).view(np.uint8) if array.size else b"" for array in arrays]
    return [header, flat[0], b"".join(bytes.fromhex(name) for name in hints.packs), *flat[1:]]


def decode_hints(payload: bytes | np.ndarray, what: str) -> Hints:
    """A hint object's payload, checked for consistency (its columns are read in place). Raises IntegrityError."""
    data = memoryview(payload).cast("B") if not isinstance(payload, np.ndarray) else payload.view(np.uint8).data
    if len(data) < _HEADER.size:
        raise IntegrityError(f"{what} is truncated")
    version, list_raw, base_raw, depth, count, operations, literals, runs, packs, batches = _HEADER.unpack_from(data, 0)
    if version != _VERSION:
        raise IntegrityError(f"{what} has an unknown layout version {version}")
    sizes = (operations * 16, packs * 32, batches * BATCH_DTYPE.itemsize, runs * 8, runs * 4, runs * 4, literals * 4)
    if _HEADER.size + sum(sizes) != len(data):
        raise IntegrityError(f"{what} does not have the size its header says")
    position = _HEADER.size
    parts = []
    for size in sizes:
        parts.append(data[position : position + size])
        position += size
    ops = np.frombuffer(parts[0], "<i8").reshape(-1, 2).astype(np.int64)
    names = [bytes(parts[1][k * 32 : (k + 1) * 32]).hex() for k in range(packs)]
    batch_table = np.frombuffer(parts[2], BATCH_DTYPE).copy()
    run_first = np.frombuffer(parts[3], "<i8")
    run_batch = np.frombuffer(parts[4], "<i4")
    if literals and (runs == 0 or run_first[0] != 0 or int(run_first[-1]) >= literals
                     or (runs > 1 and not bool(np.all(run_first[1:] > run_first[:-1])))):
        raise IntegrityError(f"{what} has runs that do not cover its literals in order")
    if not literals and runs:
        raise IntegrityError(f"{what} has runs but no literals")
    if runs and (int(run_batch.min()) < UNKNOWN or int(run_batch.max()) >= batches):
        raise IntegrityError(f"{what} refers to a batch it does not describe")
    if batches and int(batch_table["pack"].max()) >= packs:
        raise IntegrityError(f"{what} refers to a pack it does not name")
    return Hints(
        list_raw.hex(), base_raw.hex() if any(base_raw) else None, depth, count, ops, names, batch_table,
        run_first, run_batch, np.frombuffer(parts[5], "<u4"), np.frombuffer(parts[6], "<u4"),
    )


class LocationMap:
    """Where the records of a list are, from the hint objects of its whole chain.

    ``chain`` runs from the full list (depth 0) to the list itself. The chain's
    operations are composed into *segments* (a stretch of the list that is a stretch of
    one object's literals); the literals are numbered one after the other across the
    chain (*joined* indexes), and so are their runs. ``packs`` and ``batches`` join the
    chain's batch tables. A restore maps segments onto runs (:meth:`pieces`): its work
    grows with the number of segments and runs, not of records.
    """

    def __init__(self, chain: list[Hints]) -> None:
        tables = []
        pack_numbers: dict[str, int] = {}
        self.literal_base = np.zeros(len(chain) + 1, dtype=np.int64)
        self._lengths: list[np.ndarray] = []
        self._prefix: list[np.ndarray | None] = []
        firsts, batches, offsets, ends = [], [], [], []
        row_base = 0
        for number, hints in enumerate(chain):
            mapping = np.array([pack_numbers.setdefault(p, len(pack_numbers)) for p in hints.packs], dtype="<u4")
            table = hints.batches.copy()
            if len(table):
                table["pack"] = mapping[table["pack"]]
            tables.append(table)
            literals = len(hints.length)
            self.literal_base[number + 1] = self.literal_base[number] + literals
            self._lengths.append(hints.length)
            self._prefix.append(None)
            if literals:
                row = hints.run_batch.astype(np.int64)
                known = row != UNKNOWN
                row[known] += row_base
                firsts.append(hints.run_first + self.literal_base[number])
                batches.append(row)
                offsets.append(hints.run_offset.astype(np.int64))
                sizes = np.add.reduceat(hints.length, hints.run_first, dtype=np.uint64).astype(np.int64)
                ends.append(hints.run_offset.astype(np.int64) + sizes)
            row_base += len(table)
        self.run_first, self.run_batch, self.run_offset, self.run_end = _join(firsts), _join(batches), _join(offsets), _join(ends)
        self.packs = list(pack_numbers)
        self.batches = np.concatenate(tables) if tables else np.zeros(0, BATCH_DTYPE)
        # the chain's operations composed (idlist.compose: the list object first); a segment's
        # literals as joined literal indexes
        levels, segment_literal, segment_count = idlist.compose([(hints.list_name, hints) for hints in reversed(chain)])
        self.segment_first = self.literal_base[len(chain) - 1 - levels] + segment_literal
        self.segment_count = segment_count
        self.segment_start = np.concatenate(([0], np.cumsum(segment_count)))
        self.count = int(self.segment_start[-1])
        if chain and self.count != chain[-1].count:
            raise IntegrityError(f"the location hints of list {chain[-1].list_name[:12]} compose to {self.count} "
                                 f"records, the list has {chain[-1].count}")

    @property
    def literal_count(self) -> int:
        return int(self.literal_base[-1])

    def drop_packs(self, packs_present: set[str]) -> None:
        """Treat every run whose pack is not in ``packs_present`` as unknown (repacked away)."""
        alive = np.array([name in packs_present for name in self.packs], dtype=bool)
        known = self.run_batch != UNKNOWN
        if len(self.batches) and known.any():
            dead = np.zeros(len(self.run_batch), dtype=bool)
            dead[known] = ~alive[self.batches["pack"][self.run_batch[known]]]
            if dead.any():
                self.run_batch = np.where(dead, UNKNOWN, self.run_batch)

    def pieces(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The list as pieces in order: (batch row, start, end in the batch's plaintext, joined
        literal). A piece with batch UNKNOWN is one literal whose place the hints do not give."""
        keep = self.segment_count > 0
        seg_first = self.segment_first[keep]
        seg_last = seg_first + self.segment_count[keep] - 1
        if len(seg_first) == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, empty
        first_run = np.searchsorted(self.run_first, seg_first, side="right") - 1
        last_run = np.searchsorted(self.run_first, seg_last, side="right") - 1
        counts = last_run - first_run + 1
        run = _expand(first_run, counts)
        segment = np.repeat(np.arange(len(counts)), counts)
        at_start = run == first_run[segment]
        at_end = run == last_run[segment]
        run_next = np.append(self.run_first[1:], self.literal_count)
        piece_first = np.where(at_start, seg_first[segment], self.run_first[run])
        piece_last = np.where(at_end, seg_last[segment], run_next[run] - 1)
        batch = self.run_batch[run]
        start = self.run_offset[run].copy()
        end = self.run_end[run].copy()
        known = batch != UNKNOWN
        inside = np.flatnonzero(at_start & known)
        if len(inside):
            start[inside] = self.places(piece_first[inside])[1]
        inside = np.flatnonzero(at_end & known)
        if len(inside):
            _, offset, length = self.places(piece_last[inside])
            end[inside] = offset.astype(np.int64) + length
        # an unknown piece becomes one piece per literal
        if not known.all():
            repeat = np.where(known, 1, piece_last - piece_first + 1)
            literal = _expand(piece_first, repeat)
            return np.repeat(batch, repeat), np.repeat(start, repeat), np.repeat(end, repeat), literal
        return batch, start, end, piece_first

    def literals_at(self, positions: np.ndarray) -> np.ndarray:
        """The joined literal index of each of ``positions`` (any order; int64)."""
        segment = np.searchsorted(self.segment_start, positions, side="right") - 1
        literals: np.ndarray = self.segment_first[segment] + (positions - self.segment_start[segment])
        return literals

    def places(self, literals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(batch row or UNKNOWN as int64, offset, length) of joined literals."""
        run = np.searchsorted(self.run_first, literals, side="right") - 1
        batch = self.run_batch[run].copy()
        offset = np.empty(len(literals), dtype=np.uint32)
        length = np.empty(len(literals), dtype=np.uint32)
        objects = self.object_of(literals)
        for number in np.unique(objects).tolist():
            chosen = np.flatnonzero(objects == number)
            prefix = self._prefix_of(number)
            local = literals[chosen] - self.literal_base[number]
            run_local = self.run_first[run[chosen]] - self.literal_base[number]
            # where the run starts plus the lengths of the literals before this one in the run
            # (uint32 arithmetic, which wraps: exact, as a batch is smaller than 2**32 bytes)
            offset[chosen] = self.run_offset[run[chosen]].astype(np.uint32) + (prefix[local] - prefix[run_local])
            length[chosen] = self._lengths[number][local]
        return batch, offset, length

    def _prefix_of(self, number: int) -> np.ndarray:
        """The lengths of object ``number``'s literals summed before each one (uint32, wrapping)."""
        prefix = self._prefix[number]
        if prefix is None:
            lengths = self._lengths[number]
            prefix = np.cumsum(lengths, dtype=np.uint32)
            prefix -= lengths
            self._prefix[number] = prefix
        return prefix

    def object_of(self, literals: np.ndarray) -> np.ndarray:
        """Which chain object (0 = the full list) each joined literal index belongs to."""
        return np.searchsorted(self.literal_base, literals, side="right") - 1


def _expand(firsts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(f, f + c) for f, c in zip(firsts, counts)])``, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(firsts - (np.cumsum(counts) - counts), counts)
    expanded: np.ndarray = np.arange(total, dtype=np.int64) + offsets
    return expanded


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """The parts concatenated (int64 zeros of length 0 for none)."""
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def load_chain(
    top: str, names: dict[str, str], load: Callable[[str], Hints]
) -> list[Hints] | None:
    """The hint objects of list ``top``'s chain, full list first; None when a list of the chain
    has none in ``names`` (list name -> hint object name). Raises what ``load`` raises, and
    IntegrityError when a hint object describes another list or the chain loops."""
    chain: list[Hints] = []
    current: str | None = top
    while current is not None:
        if len(chain) > 4 * idlist.MAX_DEPTH:
            raise IntegrityError(f"the location hints of list {top[:12]} form a loop")
        hint_name = names.get(current)
        if hint_name is None:
            return None
        hints = load(hint_name)
        if hints.list_name != current:
            raise IntegrityError(f"the location hints {hint_name[:12]} describe another list than {current[:12]}")
        chain.append(hints)
        current = hints.base
    chain.reverse()
    return chain
