"""RowCounter against a plain line-by-line reference, on generated dumps with adversarial content."""

from __future__ import annotations

import io
import random
import re

import numpy as np
import pytest

from strongroom.repository import rowcount
from strongroom.repository.chunker import record_spans
from strongroom.repository.rowcount import RowCounter


def lines_of(data: bytes) -> list[bytes]:
    """The lines of ``data`` split at newlines only, each with its newline (the last one may lack it)."""
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def reference_counts(data: bytes, kind: str) -> dict[str, int]:
    """Rows per table, one line at a time: the rule the counter must follow exactly."""
    counts: dict[str, int] = {}
    table: str | None = None
    for line in lines_of(data):
        if kind == "mariadb-dump":
            match = re.match(rb"INSERT INTO `((?:[^`]|``)+)`", line)
            if match:
                name = match.group(1).decode("utf-8", "replace").replace("``", "`")
                counts[name] = counts.get(name, 0) + 1
        elif table is not None:
            if line in (b"\\.\n", b"\\."):
                table = None
            else:
                counts[table] += 1
        else:
            match = re.match(rb"COPY ([^ ]+) .*FROM stdin;\n", line)
            if match:
                table = match.group(1).decode("utf-8", "replace").rsplit(".", 1)[-1].strip('"').replace('""', '"')
                counts.setdefault(table, 0)
    return dict(sorted(counts.items()))


MARIADB_TABLES = [b"a", b"ab", b"a``b", b"a``", b"we``ird", b"t\xc3\xa2ble", b"secrets"]


def mariadb_dump(generator: random.Random) -> bytes:
    """A dump whose lines try every way to look like, or almost like, a row."""
    lines = [b"-- MariaDB dump\n"]
    for _ in range(generator.randint(1, 12)):
        table = generator.choice(MARIADB_TABLES)
        lines.append(b"LOCK TABLES `" + table + b"` WRITE;\n")
        for _ in range(generator.choice([0, 1, 3, 40, 300])):
            value = generator.choice([b"x" * generator.randint(0, 90), b"INSERT INTO `ab` VALUES (1)", b"\\nINSERT INTO `a` ", b"`"])
            lines.append(b"INSERT INTO `" + table + b"` VALUES ('" + value + b"');\n")
            roll = generator.random()
            if roll < 0.05:
                other = generator.choice(MARIADB_TABLES)
                lines.append(
                    generator.choice(
                        [
                            b"INSERT INTO `" + other + b"`\n",  # nothing after the name
                            b"INSERT INTO `" + other + b"`(`id`) VALUES (2);\n",
                            b"INSERT INTO `" + other + b"`` VALUES (3);\n",
                            b"INSERT INTO `unterminated VALUES (4);\n",
                            b"INSERT INTO `\n",
                            b" INSERT INTO `a` VALUES (5);\n",
                            b"insert into `a` VALUES (6);\n",
                            b"\n",
                        ]
                    )
                )
            elif roll < 0.08:
                # a long row: cut into pieces, one of which may start with row-like text
                lines.append(b"INSERT INTO `" + table + b"` VALUES ('" + b"INSERT INTO `a` VALUES " * generator.randint(2, 9) + b"');\n")
        lines.append(b"UNLOCK TABLES;\n")
    if generator.random() < 0.5:
        lines.append(b"INSERT INTO `" + generator.choice(MARIADB_TABLES) + b"` VALUES (9);")  # the last line lacks its newline
    return b"".join(lines)


POSTGRESQL_TABLES = [b"public.users", b"public.secrets", b'"my schema"."we""ird"', b"public.t\xc3\xa2ble", b"empty"]


def postgresql_dump(generator: random.Random) -> bytes:
    """A plain dump whose rows and other lines look like terminators and headers."""
    lines = [b"--\n-- PostgreSQL database dump\n--\n", b"\\.\n", b"COPY public.users (id) TO stdout;\n"]
    for _ in range(generator.randint(1, 10)):
        table = generator.choice(POSTGRESQL_TABLES)
        lines.append(b"COPY " + table + b" (id, data) FROM stdin;\n")
        for _ in range(generator.choice([0, 1, 2, 50, 300])):
            lines.append(
                generator.choice(
                    [
                        b"1\t" + b"y" * generator.randint(0, 80) + b"\n",
                        b"\\N\tnull first\n",
                        b"\\.x\n",
                        b"2\ta\\.b\\n\\.\\n\n",
                        b"COPY public.secrets (id) FROM stdin;\n",  # inside a COPY block: a row
                        b"\n",
                        b"3\t" + b"\\.\\n" * generator.randint(5, 30) + b"\n",
                    ]
                )
            )
        if generator.random() < 0.9:
            lines.append(b"\\.\n")
        lines.append(b"\n-- Data for Name: next\n\n")
    if generator.random() < 0.3:
        lines.append(b"COPY public.users (id) FROM stdin;\n4\tlast")  # a last row without its newline
    return b"".join(lines)


def dump_for(kind: str, generator: random.Random) -> bytes:
    return mariadb_dump(generator) if kind == "mariadb-dump" else postgresql_dump(generator)


KINDS = ["mariadb-dump", "postgresql-dump"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_spans_count_like_the_line_by_line_reference(kind: str, seed: int) -> None:
    generator = random.Random(seed)
    for _ in range(12):
        data = dump_for(kind, generator)
        expected = reference_counts(data, kind)
        read_size, max_record = generator.choice([(7, 5), (64, 30), (1000, 40), (5000, 1 << 20), (1 << 22, 1 << 20)])
        counter = RowCounter(kind)
        for block, starts, ends in record_spans(io.BytesIO(data), read_size=read_size, max_record=max_record):
            counter.feed_spans(block, starts, ends)
        assert counter.result() == expected, (seed, read_size, max_record)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_blocks_cut_anywhere_count_like_the_reference(kind: str, seed: int) -> None:
    generator = random.Random(100 + seed)
    for _ in range(12):
        data = dump_for(kind, generator)
        counter = RowCounter(kind)
        position = 0
        while position < len(data):
            size = generator.choice([1, 2, 13, 100, 4096, 1 << 20])
            piece = data[position : position + size]
            if generator.random() < 0.5:
                counter.feed(bytearray(piece))
            else:
                # bytes past ``end`` are not the counter's: give it some that would count
                counter.feed_block(piece + b"\nINSERT INTO `zz` VALUES (1);\n\\.\n", len(piece))
            position += size
        assert counter.result() == reference_counts(data, kind), seed


def test_a_row_of_a_table_whose_name_extends_the_current_one_is_not_the_current_tables() -> None:
    data = b"INSERT INTO `a` VALUES (1);\n" * 3 + b"INSERT INTO `a``b` VALUES (2);\n" * 2 + b"INSERT INTO `a` VALUES (3);\n"
    counter = RowCounter("mariadb-dump")
    counter.feed_spans(*next(record_spans(io.BytesIO(data))))
    assert counter.result() == {"a": 4, "a`b": 2}


def test_a_line_longer_than_the_head_limit_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rowcount, "LINE_HEAD_LIMIT", 40)
    long_row = b"INSERT INTO `blobs` VALUES ('" + b"\\nINSERT INTO `blobs` VALUES " * 20 + b"');\n"
    data = b"INSERT INTO `blobs` VALUES (1);\n" + long_row * 3 + b"INSERT INTO `x` VALUES (2);\n"
    for read_size, max_record in [(16, 7), (50, 30), (1000, 100)]:
        counter = RowCounter("mariadb-dump")
        for block, starts, ends in record_spans(io.BytesIO(data), read_size=read_size, max_record=max_record):
            counter.feed_spans(block, starts, ends)
        assert counter.result() == {"blobs": 4, "x": 1}, (read_size, max_record)
    copy = b"COPY public.blobs (data) FROM stdin;\n" + b"1\t" + b"\\\\.\\n" * 30 + b"\n\\.\n"
    counter = RowCounter("postgresql-dump")
    for position in range(0, len(copy), 9):
        counter.feed(copy[position : position + 9])
    assert counter.result() == {"blobs": 1}


def test_rows_of_one_table_are_checked_at_once_not_parsed_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = []

    class CountingPattern:
        def __init__(self, pattern: re.Pattern[bytes]) -> None:
            self.pattern = pattern

        def match(self, *arguments: object) -> re.Match[bytes] | None:
            parsed.append(arguments)
            return self.pattern.match(*arguments)  # type: ignore[arg-type]

    monkeypatch.setattr(rowcount, "_MARIADB_INSERT", CountingPattern(rowcount._MARIADB_INSERT))
    data = b"".join(b"INSERT INTO `%s` VALUES (%d);\n" % (table, k) for table in (b"one", b"two") for k in range(20000))
    counter = RowCounter("mariadb-dump")
    for block, starts, ends in record_spans(io.BytesIO(data), read_size=1 << 16):
        counter.feed_spans(block, starts, ends)
    assert counter.result() == {"one": 20000, "two": 20000}
    assert len(parsed) < 80, "a line is parsed only where the table changes or a block starts"


def test_feed_spans_ignores_record_starts_that_are_not_line_starts() -> None:
    # records may also start inside a line, here where the text would count at a line start
    data = b"COPY public.t (a) FROM stdin;\n1\tx\n\\.\nCOPY public.u (a) FROM stdin;\n2\tINSERT INTO `a` \n\\.\n"
    line_starts = [0] + [k + 1 for k, byte in enumerate(data[:-1]) if byte == 10]
    inside = [data.index(b"x\n") + 1, data.index(b"INSERT")]
    starts = np.array(sorted(line_starts + inside), dtype=np.int64)
    ends = np.append(starts[1:], len(data))
    for kind, expected in [("postgresql-dump", {"t": 1, "u": 1}), ("mariadb-dump", {})]:
        counter = RowCounter(kind)
        counter.feed_spans(data, starts, ends)
        assert counter.result() == expected, kind
