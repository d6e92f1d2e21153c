"""Row counts taken from a dump stream while it is stored, per table.

A drill compares them with the rows it loads, which proves the whole path from
dumper to restore. MariaDB/MySQL dumps (``--skip-extended-insert``): one row per
``INSERT INTO `table``` line. PostgreSQL plain dumps: the lines between
``COPY schema.table (...) FROM stdin;`` and ``\\.``. Blocks given to
:meth:`RowCounter.feed` must end at a line end (the last one may not).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

_MARIADB_INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)`", re.MULTILINE)
_POSTGRESQL_COPY = re.compile(rb"^COPY ([^ ]+) .*FROM stdin;\n", re.MULTILINE)
_POSTGRESQL_END = b"\\.\n"
_INSERT_PREFIX = b"INSERT INTO `"


def _starts_with(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, prefix: bytes) -> np.ndarray:
    """Which of the spans ``raw[starts[k]:ends[k]]`` begin with ``prefix`` (a boolean array)."""
    width = len(prefix)
    long_enough = ends - starts >= width
    if len(raw) == 0 or not long_enough.any():
        return long_enough
    gathered = raw[np.minimum(starts[:, None] + np.arange(width), len(raw) - 1)]
    return long_enough & (gathered == np.frombuffer(prefix, dtype=np.uint8)).all(axis=1)


class RowCounter:
    """Counts rows per table for one dump kind: ``mariadb-dump`` or ``postgresql-dump`` (others count nothing)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.counts: Counter[str] = Counter()
        self._copy_table: str | None = None
        self._at_line_start = True
        self._mariadb_prefix: bytes | None = None
        self._mariadb_table: str | None = None

    def feed(self, block: bytes, records: list[bytes] | None = None) -> None:
        """Count the rows in ``block`` (the next bytes of the dump); ``records`` are its records, if known."""
        if self.kind == "mariadb-dump":
            if b"INSERT INTO `" in block:
                self._feed_mariadb(records if records is not None else block.splitlines(keepends=True))
            self._at_line_start = block.endswith(b"\n")
        elif self.kind == "postgresql-dump":
            self._feed_postgresql(block)
            self._at_line_start = block.endswith(b"\n")

    def feed_spans(self, data: bytes | memoryview, starts: np.ndarray, ends: np.ndarray) -> None:
        """Count the rows in the records ``data[starts[k]:ends[k]]`` (the next records of the dump,
        following each other from ``starts[0]``). Vectorised for MariaDB dumps: each record's
        first bytes are compared with the current table's ``INSERT INTO `table``` prefix at once."""
        if len(starts) == 0:
            return
        if self.kind != "mariadb-dump":
            self.feed(bytes(data[int(starts[0]) : int(ends[-1])]))
            return
        raw = np.frombuffer(data, dtype=np.uint8)
        at_line_start = np.empty(len(starts), dtype=bool)
        at_line_start[0] = self._at_line_start
        at_line_start[1:] = raw[ends[:-1] - 1] == 10
        self._at_line_start = bool(raw[ends[-1] - 1] == 10)
        first = 0
        while first < len(starts):
            candidates = first + np.flatnonzero(
                at_line_start[first:] & _starts_with(raw, starts[first:], ends[first:], _INSERT_PREFIX)
            )
            if len(candidates) == 0:
                return
            prefix = self._mariadb_prefix
            if prefix is not None:
                same = _starts_with(raw, starts[candidates], ends[candidates], prefix)
                other = np.flatnonzero(~same)
            else:
                other = np.zeros(1, dtype=np.int64)
            if len(other) == 0:
                self.counts[self._mariadb_table or ""] += len(candidates)
                return
            switch = int(other[0])
            if switch and self._mariadb_table is not None:
                self.counts[self._mariadb_table] += switch
            row = int(candidates[switch])
            match = _MARIADB_INSERT.match(data, int(starts[row]), int(ends[row]))
            if match:
                self._mariadb_table = match.group(1).decode("utf-8", "replace").replace("``", "`")
                self._mariadb_prefix = match.group(0)
                self.counts[self._mariadb_table] += 1
            first = row + 1

    def _feed_mariadb(self, records: list[bytes]) -> None:
        # Dumps keep each table's rows together: test each record against the current
        # table's prefix (one startswith a row) and parse the name only when it changes.
        prefix = self._mariadb_prefix
        table = self._mariadb_table
        count = 0
        at_line_start = self._at_line_start
        for record in records:
            if at_line_start:
                if prefix and record.startswith(prefix):
                    count += 1
                elif record.startswith(b"INSERT INTO `"):
                    match = _MARIADB_INSERT.match(record)
                    if match:
                        if table is not None and count:
                            self.counts[table] += count
                        table = match.group(1).decode("utf-8", "replace").replace("``", "`")
                        prefix = match.group(0)
                        count = 1
            at_line_start = record[-1:] == b"\n"
        if table is not None and count:
            self.counts[table] += count
        self._mariadb_prefix = prefix
        self._mariadb_table = table

    def _feed_postgresql(self, block: bytes) -> None:
        position = 0
        if not self._at_line_start:
            cut = block.find(b"\n")
            if cut < 0:
                return
            position = cut + 1
        while position < len(block):
            if self._copy_table is not None:
                # ``position`` is at a line start: the terminator is this line or a later one.
                if block.startswith(_POSTGRESQL_END, position):
                    end = position
                else:
                    found = block.find(b"\n" + _POSTGRESQL_END, position)
                    end = -1 if found < 0 else found + 1
                if end < 0:
                    self.counts[self._copy_table] += block.count(b"\n", position)
                    return
                self.counts[self._copy_table] += block.count(b"\n", position, end)
                self._copy_table = None
                position = end + len(_POSTGRESQL_END)
                continue
            match = _POSTGRESQL_COPY.search(block, position)
            if match is None:
                return
            # "public.users" or '"my schema"."users"': rows are counted per table, as the live counts are.
            table = match.group(1).decode("utf-8", "replace").rsplit(".", 1)[-1].strip('"').replace('""', '"')
            self._copy_table = table
            self.counts.setdefault(table, 0)
            position = match.end()

    def result(self) -> dict[str, int]:
        """Rows per table, sorted by table name."""
        return dict(sorted(self.counts.items()))
