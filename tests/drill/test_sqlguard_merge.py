"""sqlguard's INSERT merging (one pass for vetting and merging): same rows, same tables, bounded statements."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from strongroom import execute
from strongroom.actions.database_restore import load_dump_file
from strongroom.dbserver import ThrowawayServer, mysql_option_file
from strongroom.dbserver.load import load_dump
from strongroom.drill.sqlguard import GuardStatistics, SqlGuard, UnsafeDumpError, guard_dump
from strongroom.source.sqlmerge import merge_inserts

HEADER = (
    b"/*M!999999\\- enable the sandbox mode */ \n"
    b"-- MariaDB dump 10.19\n"
    b"/*!40101 SET NAMES utf8mb4 */;\n"
    b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
    b"LOCK TABLES `t` WRITE;\n"
)
TRICKY_VALUES = [
    rb"'a);b'",
    rb"'),('",
    rb"'it\'s'",
    rb"'it''s'",
    rb"'back\\slash\\'",
    rb"'line\nbreak\r\n'",
    rb"';\nINSERT INTO `t` VALUES '",
    rb"'INSERT INTO `t` VALUES (9);'",
    b"'\xf0\x9f\x94\x92 utf-8'",
    rb"0x00FF7F27",
    rb"_binary 'raw;)'",
    rb"NULL",
    rb"-1.5e-10",
    rb"''",
]


def _merged(data: bytes, *, chunk: int | None = None, limit: int = 1 << 20) -> bytes:
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return b"".join(guard_dump(pieces, "mariadb", merge_inserts=True, merged_statement_bytes=limit))


_ROW = re.compile(rb"\((?:[^'()\n]|'(?:[^'\\\n]|\\.|'')*')*\)")
_PREFIX = re.compile(rb"INSERT INTO `[^`]*`(?: \([^)]*\))? VALUES ?")


def _rows(dump: bytes) -> list[tuple[bytes, bytes]]:
    """Every (statement prefix, row) of the dump's INSERT lines, in order."""
    found = []
    for line in dump.split(b"\n"):
        prefix = _PREFIX.match(line)
        if prefix is None:
            continue
        for row in _ROW.finditer(line, prefix.end()):
            found.append((prefix.group(), row.group()))
    return found


def _others(dump: bytes) -> list[bytes]:
    return [line for line in dump.split(b"\n") if not line.startswith(b"INSERT INTO")]


def _table_rows(count: int, table: bytes = b"t") -> bytes:
    return b"".join(
        b"INSERT INTO `" + table + b"` VALUES (%d," % index + TRICKY_VALUES[index % len(TRICKY_VALUES)] + b");\n"
        for index in range(count)
    )


def test_merges_runs_of_one_table_into_one_statement() -> None:
    dump = HEADER + _table_rows(3) + b"UNLOCK TABLES;\n"
    assert _merged(dump) == HEADER + (
        b"INSERT INTO `t` VALUES (0,'a);b'),(1,'),('),(2,'it\\'s');\n" b"UNLOCK TABLES;\n"
    )


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_tricky_values_are_merged_intact(value: bytes) -> None:
    dump = b"INSERT INTO `t` VALUES (1," + value + b");\nINSERT INTO `t` VALUES (2," + value + b");\n"
    assert _merged(dump) == b"INSERT INTO `t` VALUES (1," + value + b"),(2," + value + b");\n"


def test_same_output_as_the_separate_merger_when_nothing_splits_it() -> None:
    dump = HEADER + _table_rows(500) + b"UNLOCK TABLES;\n" + _table_rows(20, b"u") + b"-- Dump completed\n"
    separate = b"".join(merge_inserts([dump], max_statement_bytes=1 << 30))
    assert _merged(dump, limit=1 << 30) == separate
    assert sum(line.startswith(b"INSERT INTO") for line in separate.split(b"\n")) == 2


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, None])
@pytest.mark.parametrize("limit", [1024, 1 << 20])
def test_any_chunking_and_limit_keep_every_row_and_every_other_line(chunk: int | None, limit: int) -> None:
    dump = HEADER + _table_rows(400) + b"UNLOCK TABLES;\n" + _table_rows(50, b"u") + b"-- Dump completed\n"
    merged = _merged(dump, chunk=chunk, limit=limit)
    assert _rows(merged) == _rows(dump)
    assert _others(merged) == _others(dump)
    statements = [line for line in merged.split(b"\n") if line.startswith(b"INSERT INTO")]
    assert all(len(line) + 1 <= limit for line in statements)
    if chunk is None or chunk >= 4096:
        # Statements end where a chunk ends: merging pays off with the chunks a load uses (1 MiB).
        assert len(statements) < 450 / 4


def test_a_row_longer_than_the_limit_stays_a_statement_of_its_own() -> None:
    long_row = b"INSERT INTO `t` VALUES (99,'" + b"x" * 5000 + b"');\n"
    dump = _table_rows(30) + long_row + _table_rows(30)
    merged = _merged(dump, limit=1024)
    assert long_row in merged
    assert _rows(merged) == _rows(dump)


@pytest.mark.parametrize(
    "dump, expected",
    [
        (  # another table between two runs of the same table: three statements
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `b` VALUES (2);\nINSERT INTO `a` VALUES (3);\n",
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `b` VALUES (2);\nINSERT INTO `a` VALUES (3);\n",
        ),
        (
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `a` VALUES (2);\nINSERT INTO `b` VALUES (3);\n"
            b"INSERT INTO `b` VALUES (4);\nINSERT INTO `a` VALUES (5);\nINSERT INTO `a` VALUES (6);\n",
            b"INSERT INTO `a` VALUES (1),(2);\nINSERT INTO `b` VALUES (3),(4);\nINSERT INTO `a` VALUES (5),(6);\n",
        ),
        (  # a table whose name starts with the other's
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `ab` VALUES (2);\nINSERT INTO `a` VALUES (3);\n",
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `ab` VALUES (2);\nINSERT INTO `a` VALUES (3);\n",
        ),
        (  # a column list is part of what the statement says
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `a` (`x`) VALUES (2);\nINSERT INTO `a` (`x`) VALUES (3);\n",
            b"INSERT INTO `a` VALUES (1);\nINSERT INTO `a` (`x`) VALUES (2),(3);\n",
        ),
        (  # a line ending in CRLF is never joined to the next
            b"INSERT INTO `a` VALUES (1);\r\nINSERT INTO `a` VALUES (2);\nINSERT INTO `a` VALUES (3);\n",
            b"INSERT INTO `a` VALUES (1);\r\nINSERT INTO `a` VALUES (2),(3);\n",
        ),
        (  # a name holding what looks like a prefix
            b"INSERT INTO `a VALUES (` VALUES (1);\nINSERT INTO `a VALUES (` VALUES (2);\n",
            b"INSERT INTO `a VALUES (` VALUES (1),(2);\n",
        ),
        (  # multi-row lines merge too
            b"INSERT INTO `a` VALUES (1),(2);\nINSERT INTO `a` VALUES (3);\n",
            b"INSERT INTO `a` VALUES (1),(2),(3);\n",
        ),
    ],
)
def test_only_lines_with_the_same_statement_prefix_are_joined(dump: bytes, expected: bytes) -> None:
    assert _merged(dump) == expected
    for chunk in (1, 5, 33):
        assert _rows(_merged(dump, chunk=chunk)) == _rows(dump)


def test_routine_bodies_and_unmerged_dialects_are_untouched() -> None:
    body = (
        b"DELIMITER ;;\n"
        b"CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()\nBEGIN\n"
        b"  INSERT INTO `t` VALUES (5);\n"
        b"END ;;\n"
        b"DELIMITER ;\n"
    )
    rows = b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\n"
    assert _merged(rows + body + rows) == b"INSERT INTO `t` VALUES (1),(2);\n" + body + b"INSERT INTO `t` VALUES (1),(2);\n"
    copy = b"COPY public.t (id) FROM stdin;\n1\n2\n\\.\n"
    assert b"".join(guard_dump([copy], "postgresql", merge_inserts=True)) == copy


def test_refused_statement_is_never_passed_on_while_merging() -> None:
    bad = b"INSERT INTO `t` VALUES (3,'x'); SELECT 1 INTO OUTFILE '/tmp/x';\n"
    dump = _table_rows(50) + bad + _table_rows(50)
    passed: list[bytes] = []
    with pytest.raises(UnsafeDumpError) as caught:
        for piece in guard_dump([dump[i : i + 64] for i in range(0, len(dump), 64)], "mariadb", merge_inserts=True):
            passed.append(piece)
    assert caught.value.line == 51
    assert b"OUTFILE" not in b"".join(passed)
    assert len(_rows(b"".join(passed))) <= 50


def test_statistics_count_rows_and_statements() -> None:
    guard = SqlGuard("mariadb", merge_inserts=True, merged_statement_bytes=2048)
    out = guard.feed(_table_rows(200)) + guard.finish()
    assert guard.statistics.rows == 200
    assert guard.statistics.merged_statements == out.count(b"\nINSERT INTO") + 1 > 1
    with pytest.raises(ValueError):
        SqlGuard("mariadb", merge_inserts=True, merged_statement_bytes=10)


# --------------------------------------------------------------------------- the drill's path into MariaDB


def _program(name: str) -> str:
    try:
        return execute.find_program(name)
    except Exception:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed; CI=true forbids skipping", pytrace=False)
        pytest.skip(f"{name} is not installed")


AWKWARD = ["a);b", "'),('", "it's", "back\\slash\\", "line\nbreak\r\n", "nul\x00", "🔒 ünïcödé", "", "end\\"]


def _fill(connection: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE `awkward` (`id` int NOT NULL PRIMARY KEY, `s` text NULL, `b` mediumblob NULL, `f` double NULL)"
            " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )
        cursor.execute("CREATE TABLE `many` (`id` int NOT NULL PRIMARY KEY, `v` varchar(200) NOT NULL)")
        cursor.executemany(
            "INSERT INTO `awkward` VALUES (%s,%s,%s,%s)",
            [(index, text, text.encode(), -1.5 * index) for index, text in enumerate(AWKWARD)]
            + [(100, None, os.urandom(200_000), None)],
        )
        cursor.executemany("INSERT INTO `many` VALUES (%s,%s)", [(i, f"row {i} ');\\ " + "x" * (i % 150)) for i in range(5000)])
    connection.commit()


def _checksums(connection: Any) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("CHECKSUM TABLE `awkward`, `many` EXTENDED")
        return {str(row[0]).split(".")[-1]: int(row[1]) for row in cursor.fetchall()}


def test_drill_path_and_plain_file_load_give_the_same_tables(mariadb_server: ThrowawayServer, tmp_path: Path) -> None:
    dumper = _program("mariadb-dump")
    source = mariadb_server.create_database("guardmerge_source")
    connection = mariadb_server.connect("guardmerge_source")
    try:
        _fill(connection)
        expected = _checksums(connection)
    finally:
        connection.close()
    with execute.secret_file(mysql_option_file(source, database=""), name="client.cnf") as options:
        running = execute.start(
            [dumper, f"--defaults-extra-file={options}", "--skip-extended-insert", "--hex-blob", "guardmerge_source"],
            what="dumping the test database",
        )
        with running:
            dump = running.stdout.read()
            running.wait()
    dump_path = tmp_path / "dump.sql"
    dump_path.write_bytes(dump)

    # The drill's path: guard and merger in one pass, through a pipe to the client.
    target = mariadb_server.create_database("guardmerge_drill")
    read: list[int] = []
    statistics: GuardStatistics = load_dump_file(
        dump_path, "mariadb", target, bin_dir=mariadb_server.bin_dir, on_bytes=read.append
    )
    assert sum(read) == len(dump)
    assert statistics.rows == len(AWKWARD) + 1 + 5000
    assert 2 <= statistics.merged_statements < 100
    # The plain client reading a file as its stdin.
    plain = mariadb_server.create_database("guardmerge_plain")
    merged_path = tmp_path / "merged.sql"
    merged_path.write_bytes(b"".join(guard_dump([dump], "mariadb", merge_inserts=True)))
    result = load_dump(plain, merged_path, bin_dir=mariadb_server.bin_dir)
    assert result.bytes == merged_path.stat().st_size
    for name in ("guardmerge_drill", "guardmerge_plain"):
        connection = mariadb_server.connect(name)
        try:
            assert _checksums(connection) == expected, name
        finally:
            connection.close()
