"""Row counts taken from a dump stream while it is stored, per table.

A drill compares them with the rows it loads, which proves the whole path from
dumper to restore. MariaDB/MySQL dumps (``--skip-extended-insert``): one row per
line that starts with ``INSERT INTO `table```. PostgreSQL plain dumps: the lines
between ``COPY schema.table (...) FROM stdin;`` and ``\\.``, keyed by the table's
name without its schema. Only line starts count: a dumper escapes the newlines
inside values, so text such as ``INSERT INTO`` inside a value never starts a line.

The stream may be cut anywhere between calls: the unfinished last line of a
block is carried into the next one (its first :data:`LINE_HEAD_LIMIT` bytes, all
any rule needs), and a last line without a newline counts as a line.

Speed: a dump keeps each table's rows together, so a block is checked at once. The
counter takes the positions of the block's line starts (the records a caller
already has, or one vectorised search for newlines), gathers the first bytes of
every line in one numpy operation and compares them all with the current table's
``\\nINSERT INTO `table` `` (MariaDB) or with ``\\n\\.\\n`` (PostgreSQL). Only the
lines where that fails (a new table, a terminator, a header) are parsed one by one.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

LINE_HEAD_LIMIT = 1 << 20
"""The most bytes of one line kept while it is unfinished (a row longer than that is
counted by its head: the rules only look at a line's start, and at a ``COPY`` line's end)."""

_MARIADB_INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)`", re.MULTILINE)
_POSTGRESQL_COPY = re.compile(rb"^COPY ([^ ]+) .*FROM stdin;\n", re.MULTILINE)
_INSERT_START = b"\nINSERT INTO `"
_COPY_START = b"\nCOPY "
_COPY_END = b"\n\\.\n"
_FIRST_WINDOW = 64


def _gather(data: bytes | memoryview, positions: np.ndarray, width: int, limit: int) -> np.ndarray:
    """The ``width`` bytes at each of ``positions`` in ``data[:limit]``, as a numpy ``S{width}`` array.

    Every position must satisfy ``position + width <= limit``. Zero bytes inside an
    item do not matter when it is compared with a needle that does not end with one.
    """
    if limit < width:
        return np.empty(0, dtype=f"S{width}")
    items = np.ndarray((limit - width + 1,), dtype=f"S{width}", buffer=data, offset=0, strides=(1,))
    return items[positions]


def _fitting(positions: np.ndarray, width: int, limit: int) -> int:
    """How many of the sorted ``positions`` leave room for ``width`` bytes before ``limit``."""
    return int(np.searchsorted(positions, limit - width, side="right"))


class RowCounter:
    """Counts rows per table for one dump kind: ``mariadb-dump`` or ``postgresql-dump`` (others count nothing)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.counts: Counter[str] = Counter()
        # The head of the line the last block left unfinished (empty: the next byte starts a line).
        self._pending = b""
        self._mariadb_table: str | None = None
        self._mariadb_needle: bytes | None = None
        self._copy_table: str | None = None

    def feed(self, block: bytes | bytearray | memoryview) -> None:
        """Count the rows in ``block``, the next bytes of the dump (cut anywhere)."""
        self.feed_block(block, len(block))

    def feed_spans(self, data: bytes | memoryview, starts: np.ndarray, ends: np.ndarray) -> None:
        """Count the rows in the records ``data[starts[k]:ends[k]]``: the next records of the dump,
        following each other from ``starts[0]`` (0) to ``ends[-1]``, each line starting a record
        (as :func:`strongroom.repository.chunker.record_spans` yields them). The record starts
        spare the search for newlines; the result is that of ``feed_block(data, ends[-1])``."""
        if len(starts):
            self.feed_block(data, int(ends[-1]), starts)

    def feed_block(self, data: bytes | bytearray | memoryview, end: int, record_starts: np.ndarray | None = None) -> None:
        """Count the rows in ``data[:end]``, the next bytes of the dump (cut anywhere).

        ``record_starts``, when given, are sorted positions in ``data[:end]`` that include
        every line start (other positions, such as where a long line was cut, do no harm);
        without them the newlines are found here. ``data`` is only read during the call.
        """
        if self.kind not in ("mariadb-dump", "postgresql-dump") or end <= 0:
            return
        if isinstance(data, bytearray):
            data = memoryview(data)
        first_end = self._finish_pending(data, end)
        if first_end < 0:
            return
        last_newline = _rfind_newline(data, first_end, end)
        region_end = last_newline + 1 if last_newline >= first_end else first_end
        if region_end > first_end:
            if record_starts is not None:
                low = int(np.searchsorted(record_starts, first_end, side="left"))
                high = int(np.searchsorted(record_starts, region_end, side="left"))
                line_starts = record_starts[low:high]
            else:
                raw = np.frombuffer(data, dtype=np.uint8, count=region_end - 1)
                line_starts = np.flatnonzero(raw[first_end - 1 :] == 10) + first_end
            if self.kind == "mariadb-dump":
                self._count_mariadb(data, line_starts, region_end)
            else:
                self._count_postgresql(data, line_starts, region_end, only_line_starts=record_starts is None)
        if region_end < end:
            self._pending = bytes(data[region_end : min(end, region_end + LINE_HEAD_LIMIT)])

    def result(self) -> dict[str, int]:
        """Rows per table, sorted by table name (a last line without its newline counts as a line)."""
        counts = Counter(self.counts)
        if self._pending:
            if self.kind == "mariadb-dump":
                match = _MARIADB_INSERT.match(self._pending)
                if match:
                    counts[_mariadb_name(match)] += 1
            elif self.kind == "postgresql-dump" and self._copy_table is not None and self._pending != b"\\.":
                counts[self._copy_table] += 1
        return dict(sorted(counts.items()))

    # -- the line the previous block left unfinished, or the block's first line

    def _finish_pending(self, data: bytes | memoryview, end: int) -> int:
        """Complete and count the line that starts before or at ``data``'s first byte.

        Returns the position after its newline, or -1 when ``data[:end]`` does not finish it
        (its bytes are then kept, up to :data:`LINE_HEAD_LIMIT`)."""
        newline = _find_newline(data, 0, end)
        room = max(LINE_HEAD_LIMIT - len(self._pending), 0)
        if newline < 0:
            self._pending += bytes(data[: min(end, room)])
            return -1
        line = self._pending + bytes(data[: min(newline + 1, room)])
        self._pending = b""
        self._count_line(line)
        return newline + 1

    def _count_line(self, line: bytes) -> None:
        """Count one whole line (with its newline, or its head when it is longer than the limit)."""
        if self.kind == "mariadb-dump":
            match = _MARIADB_INSERT.match(line)
            if match:
                self._switch_mariadb(match)
        elif self._copy_table is not None:
            if line == b"\\.\n":
                self._copy_table = None
            else:
                self.counts[self._copy_table] += 1
        else:
            match = _POSTGRESQL_COPY.match(line)
            if match:
                self._start_copy(match)

    # -- MariaDB

    def _switch_mariadb(self, match: re.Match[bytes]) -> None:
        """Count the row ``match`` starts and make its table the current one."""
        self._mariadb_table = _mariadb_name(match)
        # The byte after the closing backquote must not be another one (``a`` vs ``a``b``):
        # mariadb-dump writes a space there.
        self._mariadb_needle = b"\n" + match.group(0) + b" "
        self.counts[self._mariadb_table] += 1

    def _count_mariadb(self, data: bytes | memoryview, line_starts: np.ndarray, limit: int) -> None:
        """Count the rows among the lines starting at ``line_starts`` (each preceded by a newline) before ``limit``."""
        needle = self._mariadb_needle
        if needle is not None and self._mariadb_table is not None:
            # The common case: every line of the block is a row of the current table.
            count = len(line_starts)
            if _fitting(line_starts, len(needle) - 1, limit) == count:
                if _gather(data, line_starts - 1, len(needle), limit).tobytes() == needle * count:
                    self.counts[self._mariadb_table] += count
                    return
        fits = _fitting(line_starts, len(_INSERT_START) - 1, limit)
        candidates = line_starts[:fits]
        inserts = candidates[_gather(data, candidates - 1, len(_INSERT_START), limit) == _INSERT_START]
        index = 0
        window = _FIRST_WINDOW
        while index < len(inserts):
            needle = self._mariadb_needle
            if needle is not None and self._mariadb_table is not None:
                # Rows of the current table, a growing window at a time, up to the first other line.
                segment = inserts[index : index + window]
                fitting = _fitting(segment, len(needle) - 1, limit)
                same = _gather(data, segment[:fitting] - 1, len(needle), limit) == needle
                run = int(np.argmin(same)) if not same.all() else fitting
                self.counts[self._mariadb_table] += run
                index += run
                if run == len(segment):
                    window *= 2
                    continue
                window = _FIRST_WINDOW
            start = int(inserts[index])
            match = _MARIADB_INSERT.match(data, start, _line_end(data, start, limit))
            if match:
                self._switch_mariadb(match)
            index += 1

    # -- PostgreSQL

    def _start_copy(self, match: re.Match[bytes]) -> None:
        # "public.users" or '"my schema"."users"': rows are counted per table, as the live counts are.
        table = match.group(1).decode("utf-8", "replace").rsplit(".", 1)[-1].strip('"').replace('""', '"')
        self._copy_table = table
        self.counts.setdefault(table, 0)

    def _count_postgresql(
        self, data: bytes | memoryview, line_starts: np.ndarray, limit: int, *, only_line_starts: bool
    ) -> None:
        """Count the rows among the lines starting at ``line_starts`` (each just after a newline
        unless not ``only_line_starts``: then other positions are dropped first) before ``limit``."""
        if not only_line_starts:
            raw = np.frombuffer(data, dtype=np.uint8, count=limit)
            line_starts = line_starts[raw[line_starts - 1] == 10]
        index = 0
        while index < len(line_starts):
            rest = line_starts[index:]
            if self._copy_table is not None:
                fits = _fitting(rest, len(_COPY_END) - 1, limit)
                ends = np.flatnonzero(_gather(data, rest[:fits] - 1, len(_COPY_END), limit) == _COPY_END)
                if len(ends) == 0:
                    self.counts[self._copy_table] += len(rest)
                    return
                self.counts[self._copy_table] += int(ends[0])
                self._copy_table = None
                index += int(ends[0]) + 1
                continue
            fits = _fitting(rest, len(_COPY_START) - 1, limit)
            headers = np.flatnonzero(_gather(data, rest[:fits] - 1, len(_COPY_START), limit) == _COPY_START)
            if len(headers) == 0:
                return
            index += int(headers[0])
            start = int(line_starts[index])
            match = _POSTGRESQL_COPY.match(data, start, _line_end(data, start, limit))
            if match:
                self._start_copy(match)
            index += 1


def _mariadb_name(match: re.Match[bytes]) -> str:
    """The table name an ``INSERT INTO `name``` match holds (doubled backquotes undone)."""
    return match.group(1).decode("utf-8", "replace").replace("``", "`")


def _find_newline(data: bytes | memoryview, start: int, end: int) -> int:
    """The position of the first newline in ``data[start:end]``, or -1."""
    if not isinstance(data, memoryview):
        return data.find(b"\n", start, end)
    # memoryview has no find: search copies of growing windows (a line is usually short).
    step = 4096
    while start < end:
        stop = min(end, start + step)
        found = bytes(data[start:stop]).find(b"\n")
        if found >= 0:
            return start + found
        start = stop
        step *= 4
    return -1


def _rfind_newline(data: bytes | memoryview, start: int, end: int) -> int:
    """The position of the last newline in ``data[start:end]``, or -1."""
    if not isinstance(data, memoryview):
        return data.rfind(b"\n", start, end)
    step = 4096
    while end > start:
        low = max(start, end - step)
        found = bytes(data[low:end]).rfind(b"\n")
        if found >= 0:
            return low + found
        end = low
        step *= 4
    return -1


def _line_end(data: bytes | memoryview, start: int, limit: int) -> int:
    """The position after the newline ending the line at ``start`` (``limit`` when there is none before it)."""
    newline = _find_newline(data, start, limit)
    return limit if newline < 0 else newline + 1
