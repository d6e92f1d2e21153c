"""The multi-row INSERT merger: tricky values, chunking, bounds, and a real MariaDB round trip."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from strongroom import execute
from strongroom.dbserver import ThrowawayServer, mysql_option_file
from strongroom.source.sqlmerge import InsertMerger, merge_inserts


def _merge(data: bytes, *, limit: int = 1 << 20, chunk: int | None = None) -> bytes:
    if chunk is None:
        return b"".join(merge_inserts([data], max_statement_bytes=limit))
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return b"".join(merge_inserts(pieces, max_statement_bytes=limit))


# --------------------------------------------------------------------------- unit cases


def test_merges_consecutive_rows_of_one_table() -> None:
    dump = (
        b"LOCK TABLES `t` WRITE;\n"
        b"INSERT INTO `t` VALUES (1,'a');\n"
        b"INSERT INTO `t` VALUES (2,'b');\n"
        b"INSERT INTO `u` VALUES (3);\n"
        b"INSERT INTO `u` VALUES (4);\n"
        b"UNLOCK TABLES;\n"
    )
    assert _merge(dump) == (
        b"LOCK TABLES `t` WRITE;\n"
        b"INSERT INTO `t` VALUES (1,'a'),(2,'b');\n"
        b"INSERT INTO `u` VALUES (3),(4);\n"
        b"UNLOCK TABLES;\n"
    )


@pytest.mark.parametrize(
    "value",
    [
        rb"'a);b'",
        rb"'),('",
        rb"'it\'s'",
        rb"'it''s'",
        rb"'back\\slash\\'",
        rb"'line\nbreak\r\n'",
        rb"'\0\Z\t\"'",
        rb"'ends with backslash quote \\\''",
        rb"'INSERT INTO `t` VALUES (9);'",
        b"'\xf0\x9f\x94\x92 utf-8'",
        rb"0x00FF7F27",
        rb"_binary 'raw;)'",
        rb"NULL",
        rb"-1.5e-10",
        rb"''",
        rb"b'0101'",
    ],
)
def test_tricky_values_are_merged_intact(value: bytes) -> None:
    dump = b"INSERT INTO `t` VALUES (1," + value + b");\nINSERT INTO `t` VALUES (2," + value + b");\n"
    assert _merge(dump) == b"INSERT INTO `t` VALUES (1," + value + b"),(2," + value + b");\n"


@pytest.mark.parametrize(
    "line",
    [
        b"INSERT INTO `t` VALUES (1,'unterminated);",  # a string that goes on to the next line
        b"INSERT INTO `t` VALUES (1,'a') ;",  # not the shape mariadb-dump writes
        b"INSERT INTO `t` VALUES (1,'a');\r",  # CRLF line ending
        b"INSERT INTO t VALUES (1);",  # unquoted table name
        b"INSERT INTO `t` VALUES (1,(SELECT 2));",  # an expression, not a literal
        b"INSERT INTO `t` VALUES (1);  -- trailing comment",
    ],
)
def test_lines_outside_the_grammar_are_copied(line: bytes) -> None:
    dump = b"INSERT INTO `t` VALUES (0);\n" + line + b"\nINSERT INTO `t` VALUES (5);\n"
    merged = _merge(dump)
    assert merged == dump  # nothing to merge: no two mergeable lines are adjacent
    assert line + b"\n" in merged


def test_other_lines_are_copied_byte_for_byte() -> None:
    dump = (
        b"/*M!999999\\- enable the sandbox mode */ \n"
        b"-- MariaDB dump 10.19\n"
        b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
        b"\n"
        b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL COMMENT 'x);',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n"
        b"/*!40000 ALTER TABLE `t` DISABLE KEYS */;\n"
        b"\xff\xfe not utf-8 at all\n"
        b"trailing line without newline"
    )
    assert _merge(dump) == dump
    assert _merge(dump, chunk=7) == dump


def test_routine_and_trigger_bodies_are_not_touched() -> None:
    body = (
        b"DELIMITER ;;\n"
        b"CREATE PROCEDURE `p`()\nBEGIN\n"
        b"INSERT INTO `t` VALUES (5);\n"
        b"INSERT INTO `t` VALUES (6);\n"
        b"END ;;\n"
        b"DELIMITER ;\n"
    )
    rows = b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\n"
    assert _merge(rows + body + rows) == (
        b"INSERT INTO `t` VALUES (1),(2);\n" + body + b"INSERT INTO `t` VALUES (1),(2);\n"
    )


def test_no_merge_inside_an_unfinished_statement() -> None:
    dump = (
        b"CREATE TABLE `t` (\n"
        b"INSERT INTO `t` VALUES (1);\n"  # inside a statement that did not end: copied
        b"INSERT INTO `t` VALUES (2);\n"
        b"INSERT INTO `t` VALUES (3);\n"
    )
    assert _merge(dump) == (
        b"CREATE TABLE `t` (\n" b"INSERT INTO `t` VALUES (1);\n" b"INSERT INTO `t` VALUES (2),(3);\n"
    )


def test_no_backslash_escapes_mode() -> None:
    # Under NO_BACKSLASH_ESCAPES, 'a\' is a complete string: a backslash then the end.
    rows = b"INSERT INTO `t` VALUES (1,'a\\');\nINSERT INTO `t` VALUES (2,'b''c');\n"
    mode = b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO,NO_BACKSLASH_ESCAPES' */;\n"
    assert _merge(mode + rows) == mode + b"INSERT INTO `t` VALUES (1,'a\\'),(2,'b''c');\n"
    # With backslash escapes the same first line has an unterminated string: copied.
    assert _merge(rows) == rows


def test_prefix_variants_merge_only_with_their_own_kind() -> None:
    dump = (
        b"INSERT INTO `t` (`a`, `b`) VALUES (1,2);\n"
        b"INSERT INTO `t` (`a`, `b`) VALUES (3,4);\n"
        b"INSERT IGNORE INTO `t` VALUES (5,6);\n"
        b"REPLACE INTO `t` VALUES (7,8);\n"
        b"REPLACE INTO `t` VALUES (9,10);\n"
        b"INSERT INTO `we``ird` VALUES (1),(2);\n"
        b"INSERT INTO `we``ird` VALUES (3);\n"
    )
    assert _merge(dump) == (
        b"INSERT INTO `t` (`a`, `b`) VALUES (1,2),(3,4);\n"
        b"INSERT IGNORE INTO `t` VALUES (5,6);\n"
        b"REPLACE INTO `t` VALUES (7,8),(9,10);\n"
        b"INSERT INTO `we``ird` VALUES (1),(2),(3);\n"
    )


def test_statements_stay_below_the_limit_and_chunking_does_not_matter() -> None:
    lines = [b"INSERT INTO `t` VALUES (%d,'%s');\n" % (i, b"x" * (i % 97)) for i in range(2000)]
    dump = b"".join(lines)
    merged = _merge(dump, limit=4096)
    statements = merged.splitlines(keepends=True)
    assert 1 < len(statements) < 200
    assert all(len(statement) <= 4096 for statement in statements)
    assert sum(statement.count(b"),(") + 1 for statement in statements) == 2000
    for chunk in (1, 13, 4095, 4096, 4097, 65536):
        assert _merge(dump, limit=4096, chunk=chunk) == merged


def test_long_lines_stream_in_bounded_memory() -> None:
    big = b"INSERT INTO `t` VALUES (2,'" + b"y\\n" * 700_000 + b"');\n"  # 2.1 MB, over the limit
    dump = (
        b"INSERT INTO `t` VALUES (1,'a');\n" + big + b"INSERT INTO `t` VALUES (3,'c');\n"
        b"INSERT INTO `t` VALUES (4,'d');\n" + b"-- " + b"z" * 3_000_000 + b";\n" + b"INSERT INTO `t` VALUES (5,'e');\n"
        b"INSERT INTO `t` VALUES (6,'f');\n"
    )
    merger = InsertMerger(max_statement_bytes=64 * 1024)
    output = bytearray()
    high_water = 0
    for start in range(0, len(dump), 10_000):
        output += merger.feed(dump[start : start + 10_000])
        high_water = max(high_water, merger.buffered_bytes)
    output += merger.finish()
    assert high_water <= 64 * 1024
    assert bytes(output) == (
        b"INSERT INTO `t` VALUES (1,'a');\n" + big + b"INSERT INTO `t` VALUES (3,'c'),(4,'d');\n"
        b"-- " + b"z" * 3_000_000 + b";\n" + b"INSERT INTO `t` VALUES (5,'e'),(6,'f');\n"
    )
    assert merger.statistics.long_lines == 2
    assert merger.statistics.rows == 5


def test_limit_must_be_sane() -> None:
    with pytest.raises(ValueError):
        InsertMerger(max_statement_bytes=10)


# --------------------------------------------------------------------------- real round trip


def _client(name: str) -> str:
    try:
        return execute.find_program(name)
    except Exception:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed; CI=true forbids skipping", pytrace=False)
        pytest.skip(f"{name} is not installed")


AWKWARD_STRINGS = [
    "a);b",
    "'),('",
    "it's",
    "back\\slash\\",
    "line\nbreak\r\nand\ttab",
    "nul\x00byte and ctrl-z \x1a",
    "INSERT INTO `awkward` VALUES (1);",
    "🔒 ünïcödé",
    "",
    "ends with backslash\\",
    "quote at end'",
]


def _fill_source(connection: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE `awkward` (`id` int NOT NULL PRIMARY KEY, `s` text NULL, `b` mediumblob NULL,"
            " `n` int NULL, `f` double NULL, `d` datetime NULL, `bits` bit(8) NULL)"
            " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )
        cursor.execute("CREATE TABLE `many` (`id` int NOT NULL PRIMARY KEY, `v` varchar(200) NOT NULL)")
        cursor.execute("CREATE TABLE `audit` (`id` int NOT NULL AUTO_INCREMENT PRIMARY KEY, `what` varchar(50))")
        rows = []
        for index, text in enumerate(AWKWARD_STRINGS):
            rows.append((index, text, text.encode("utf-8"), None, -1.5 * index, "2024-02-29 23:59:59", index))
        rows.append((100, None, bytes(range(256)), 2**31 - 1, None, None, 255))
        rows.append((101, "big", os.urandom(300_000), -(2**31), 1e308, None, 0))  # a line over the limit
        cursor.executemany("INSERT INTO `awkward` VALUES (%s,%s,%s,%s,%s,%s,%s)", rows)
        cursor.executemany(
            "INSERT INTO `many` VALUES (%s,%s)", [(i, f"row {i} ');\\ {'x' * (i % 150)}") for i in range(5000)]
        )
        cursor.execute(
            "CREATE TRIGGER `many_insert` AFTER INSERT ON `many` FOR EACH ROW\n"
            "INSERT INTO `audit` (`what`) VALUES ('insert);')"
        )
        cursor.execute(
            "CREATE PROCEDURE `fill`()\nBEGIN\nINSERT INTO `audit` VALUES (1000,'a');\n"
            "INSERT INTO `audit` VALUES (1001,'b');\nEND"
        )
    connection.commit()


def _checksums(connection: Any) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("CHECKSUM TABLE `awkward`, `many`, `audit` EXTENDED")
        return {str(row[0]).split(".")[-1]: int(row[1]) for row in cursor.fetchall()}


def _routines(connection: Any, database: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s",
            (database,),
        )
        routines = list(cursor.fetchall())
        cursor.execute(
            "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s",
            (database,),
        )
        return routines + list(cursor.fetchall())


def test_round_trip_through_mariadb(mariadb_server: ThrowawayServer, tmp_path: Path) -> None:
    dumper = _client("mariadb-dump")
    client = _client("mariadb")
    # The admin account (with a password) dumps: it may read the routines' bodies.
    source = mariadb_server.create_database("sqlmerge_source")
    mariadb_server.create_database("sqlmerge_target")
    connection = mariadb_server.connect("sqlmerge_source")
    try:
        _fill_source(connection)
        expected = _checksums(connection)
    finally:
        connection.close()

    # database="": the option file must not carry database=, which mariadb-dump misreads.
    with execute.secret_file(mysql_option_file(source, database=""), name="client.cnf") as options:
        running = execute.start(
            [
                dumper,
                f"--defaults-extra-file={options}",
                "--skip-extended-insert",
                "--single-transaction",
                "--no-tablespaces",
                "--hex-blob",
                "--routines",
                "--triggers",
                "sqlmerge_source",
            ],
            what="dumping the test database",
        )
        with running:
            original = running.stdout.read()
            running.wait()
    assert source.password is not None and source.password.encode() not in original
    assert b"\nINSERT INTO `many` VALUES (0,'row 0 \\');\\\\ ');\n" in original

    merger = InsertMerger(max_statement_bytes=64 * 1024)
    merged = bytearray()
    for start in range(0, len(original), 8192):
        merged += merger.feed(original[start : start + 8192])
    merged += merger.finish()
    # Every row but the 300 kB one, which is a line over the limit and copied as it is.
    assert merger.statistics.rows == len(AWKWARD_STRINGS) + 1 + 5000
    assert merger.statistics.statements < 200
    assert merger.statistics.long_lines == 1
    merged_lines = bytes(merged).split(b"\n")
    assert all(len(line) + 1 <= 64 * 1024 for line in merged_lines if b"),(" in line)
    assert sum(len(line) > 64 * 1024 for line in merged_lines) == 1  # the copied long line
    # Everything but the INSERT lines is unchanged.
    def others(dump: bytes) -> list[bytes]:
        return [line for line in dump.split(b"\n") if not line.startswith(b"INSERT INTO")]

    assert others(bytes(merged)) == others(original)

    merged_path = tmp_path / "merged.sql"
    merged_path.write_bytes(merged)
    admin = mariadb_server.target.with_database("sqlmerge_target")
    with (
        execute.secret_file(mysql_option_file(admin, database=""), name="client.cnf") as options,
        merged_path.open("rb") as stdin,
    ):
        running = execute.start(
            [client, f"--defaults-extra-file={options}", "--binary-mode", "sqlmerge_target"],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            what="loading the merged dump",
        )
        with running:
            running.wait(timeout=120)

    connection = mariadb_server.connect("sqlmerge_target")
    try:
        assert _checksums(connection) == expected
        routines = _routines(connection, "sqlmerge_target")
    finally:
        connection.close()
    connection = mariadb_server.connect("sqlmerge_source")
    try:
        assert routines and routines == _routines(connection, "sqlmerge_source")
    finally:
        connection.close()
    assert re.search(rb"INSERT INTO `many` VALUES \(0,.*\),\(1,", merged)
    assert shutil.which(client)
