"""sqlguard: real dump shapes pass byte for byte; everything a dump never holds is refused and named."""

from __future__ import annotations

import time

import pytest

from strongroom.drill.sqlguard import (
    GuardStatistics,
    SqlGuard,
    UnsafeDumpError,
    guard_dump,
    mariadb_collation_for,
)
from strongroom.errors import CheckFailed

MARIADB_DUMP = b"""/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;

--
-- Table structure for table `users`
--

DROP TABLE IF EXISTS `users`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8mb4 */;
CREATE TABLE `users` (
  `id` char(36) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
  `username` varchar(255) NOT NULL COMMENT 'a comment; with a semicolon',
  `grant` int(11) DEFAULT NULL,
  `data` blob,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

LOCK TABLES `users` WRITE;
/*!40000 ALTER TABLE `users` DISABLE KEYS */;
INSERT INTO `users` VALUES ('0001','ada@example.com',NULL,0x00FF10);
INSERT INTO `users` VALUES ('0002','it\\'s; INTO OUTFILE \\'/tmp/x\\'',-1.5e3,_binary 'a\\\\');
INSERT INTO `users` VALUES ('0003','don''t \\\\ \\n \\0 ); DROP TABLE users; --',12,'');
INSERT INTO `users` (`id`, `username`, `grant`, `data`) VALUES ('0004','x',1,NULL),('0005','y',2,0x);
/*!40000 ALTER TABLE `users` ENABLE KEYS */;
UNLOCK TABLES;

/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
/*!50003 SET sql_mode              = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION' */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `users_bi` BEFORE INSERT ON `users` FOR EACH ROW BEGIN
  SET NEW.username = LOWER(NEW.username);
END */;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;
/*!50003 DROP PROCEDURE IF EXISTS `touch_users` */;
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `touch_users`()
BEGIN
  UPDATE `users` SET `grant` = 0;
END ;;
DELIMITER ;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;

-- Dump completed on 2026-01-01  0:00:00
"""

POSTGRESQL_DUMP = b"""--
-- PostgreSQL database dump
--

\\restrict AbCdEf0123456789

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET default_table_access_method = heap;

CREATE FUNCTION public.lower_name() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.username := lower(NEW.username);
  RETURN NEW;
END;
$$;

CREATE TABLE public.users (
    id uuid NOT NULL,
    username character varying(255) DEFAULT 'a;b'::character varying NOT NULL,
    data bytea
);

CREATE SEQUENCE public.email_queue_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    CACHE 1;

ALTER SEQUENCE public.email_queue_id_seq OWNED BY public.users.id;

COPY public.users (id, username, data) FROM stdin;
00000000-0000-0000-0000-000000000001\tada@example.com\t\\\\x00ff
00000000-0000-0000-0000-000000000002\t\\\\! touch /tmp/not-a-command; SELECT pg_read_file('/etc/passwd');\t\\N
\\.

SELECT pg_catalog.setval('public.email_queue_id_seq', 18, true);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE UNIQUE INDEX users_username ON public.users USING btree (username);

COMMENT ON TABLE public.users IS 'people; and their keys';

--
-- PostgreSQL database dump complete
--

\\unrestrict AbCdEf0123456789

"""


def _run(data: bytes, dialect: str, chunk: int = 1 << 16, **options: object) -> tuple[bytes, SqlGuard]:
    guard = SqlGuard(dialect, **options)  # type: ignore[arg-type]
    pieces = [guard.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    pieces.append(guard.finish())
    return b"".join(pieces), guard


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
def test_mariadb_dump_passes_unchanged_in_any_chunking(chunk: int) -> None:
    output, guard = _run(MARIADB_DUMP, "mariadb", chunk)
    assert output == MARIADB_DUMP
    assert guard.statistics.rows == 4  # INSERT lines (the fourth holds two rows)
    assert guard.statistics.statements["CREATE TABLE"] == 1
    assert guard.statistics.statements["CREATE ROUTINE"] == 2
    assert guard.statistics.lines == MARIADB_DUMP.count(b"\n")


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 16])
def test_postgresql_dump_passes_unchanged_in_any_chunking(chunk: int) -> None:
    output, guard = _run(POSTGRESQL_DUMP, "postgresql", chunk)
    assert output == POSTGRESQL_DUMP
    assert guard.statistics.rows == 2  # COPY data lines are data, never commands
    assert guard.statistics.statements["COPY"] == 1
    assert guard.statistics.statements["CREATE FUNCTION"] == 1
    assert guard.statistics.statements["\\restrict"] == 1


MARIADB_REFUSED = [
    (b"SELECT * FROM `users` INTO OUTFILE '/tmp/x';\n", "SELECT ... INTO OUTFILE"),
    (b"SELECT 'a' INTO DUMPFILE '/tmp/x';\n", "SELECT ... INTO DUMPFILE"),
    (b"/*!50000 SELECT 1 INTO OUTFILE '/tmp/x' */;\n", "SELECT ... INTO OUTFILE"),
    (b"LOAD DATA INFILE '/etc/passwd' INTO TABLE `users`;\n", "LOAD DATA"),
    (b"LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE `users`;\n", "LOAD DATA"),
    (b"GRANT ALL ON *.* TO 'x'@'%';\n", "GRANT"),
    (b"CREATE USER 'x'@'%' IDENTIFIED BY 'y';\n", "CREATE USER"),
    (b"SET GLOBAL general_log = 1;\n", "SET GLOBAL"),
    (b"SET @@GLOBAL.general_log = 1;\n", "SET GLOBAL"),
    (b"SET PERSIST local_infile = 1;\n", "SET GLOBAL"),
    (b"/*!40101 SET NAMES gbk */;\n", "SET of the character set gbk"),
    (b"SET @saved_cs_client = 'sjis';\n", "SET of the character set sjis"),
    (b"SET collation_connection = 'gbk_chinese_ci';\n", "SET of the character set gbk"),
    (b"SET @x = 'gb\\k';\n", "SET of the character set gbk"),
    (b"SET @x = CONCAT('g', 'bk');\n", "SET with an expression"),
    (b"SET @x = 'g' 'bk';\n", "SET with an expression"),
    (b"SET @x = 0x67626B;\n", "SET with an expression"),
    (b"INSTALL PLUGIN x SONAME 'x.so';\n", "INSTALL PLUGIN"),
    (b"system touch /tmp/x\n", "client command system"),
    (b"\\! touch /tmp/x\n", "client command \\!"),
    (b"source /etc/passwd\n", "client command source"),
    (b"INSERT INTO `users` VALUES ('1','x',1,NULL); SELECT 1 INTO OUTFILE '/tmp/x';\n", "SELECT ... INTO OUTFILE"),
    (b"INSERT INTO `users` VALUES ('1','x',1,NULL) \\! touch /tmp/x\n", "client command"),
    (b"INSERT INTO `users` VALUES ('1',LOAD_FILE('/etc/passwd'),1,NULL);\n", "LOAD_FILE()"),
    (b"INSERT INTO `users` VALUES ('1',(SELECT 1),1,NULL);\n", "not one row of literal values"),
    (b"INSERT INTO `users` SELECT * FROM `users`;\n", "not one row of literal values"),
    (b"CREATE TABLE `x` SELECT 1;\n", "CREATE TABLE ... SELECT"),
    (b"DROP TABLE IF EXISTS `x`; DROP DATABASE mysql;\n", "several statements on one line"),
    (b"CREATE VIEW `v` AS SELECT 1;\n", "CREATE VIEW"),
    (b"DELETE FROM `users`;\n", "DELETE"),
    (b"CALL `touch_users`();\n", "CALL"),
    (b"USE mysql;\n", "USE"),
    (b"DELIMITER ;;\nCREATE PROCEDURE `p`() BEGIN SELECT 1 INTO OUTFILE '/tmp/x'; END ;;\nDELIMITER ;\n", "SELECT ... INTO OUTFILE"),
]


@pytest.mark.parametrize("statement, kind", MARIADB_REFUSED, ids=[k for _, k in MARIADB_REFUSED])
def test_mariadb_refuses_and_names_the_statement_and_line(statement: bytes, kind: str) -> None:
    head = b"-- dump\nSET NAMES utf8mb4;\n"
    dump = head + statement + b"UNLOCK TABLES;\n"
    guard = SqlGuard("mariadb")
    with pytest.raises(UnsafeDumpError) as caught:
        guard.feed(dump)
        guard.finish()
    error = caught.value
    assert isinstance(error, CheckFailed)
    assert kind.lower() in error.kind.lower()
    line = 4 if statement.startswith(b"DELIMITER") else 3  # the routine starts after its DELIMITER line
    assert error.line == line
    assert f"line {line} holds" in error.message
    with pytest.raises(UnsafeDumpError):
        guard.feed(b"")  # a refused dump stays refused


def test_refused_statement_is_never_passed_on() -> None:
    bad = b"SELECT * FROM `users` INTO OUTFILE '/tmp/x';\n"
    passed: list[bytes] = []
    with pytest.raises(UnsafeDumpError):
        for piece in guard_dump([MARIADB_DUMP[:400], bad, MARIADB_DUMP[400:]], "mariadb"):
            passed.append(piece)
    assert b"OUTFILE" not in b"".join(passed)
    # What was passed on is the vetted head of the dump, nothing more.
    assert MARIADB_DUMP.startswith(b"".join(passed))


PG_REFUSED = [
    (b"\\! touch /tmp/x\n", "psql meta-command \\!"),
    (b"\\o /tmp/x\n", "psql meta-command \\o"),
    (b"\\copy users to '/tmp/x'\n", "psql meta-command \\copy"),
    (b"\\i /etc/passwd\n", "psql meta-command \\i"),
    (b"\\setenv PAGER x\n", "psql meta-command \\setenv"),
    (b"\\connect postgres\n", "\\connect to another database"),
    (b"SELECT 1; \\! touch /tmp/x\n", "psql meta-command \\!"),
    (b"COPY public.users TO '/tmp/x';\n", "COPY ... TO"),
    (b"COPY public.users FROM '/etc/passwd';\n", "COPY ... FROM a file"),
    (b"COPY public.users FROM PROGRAM 'touch /tmp/x';\n", "COPY ... PROGRAM"),
    (b"CREATE EXTENSION plpython3u;\n", "CREATE EXTENSION"),
    (b"SELECT lo_import('/etc/passwd');\n", "lo_import"),
    (b"SELECT lo_export(1, '/tmp/x');\n", "lo_export"),
    (b"SELECT pg_read_file('/etc/passwd');\n", "pg_read_file"),
    (b"CREATE TABLE public.t AS SELECT pg_read_file('/etc/passwd');\n", "pg_read_file"),
    (b"GRANT ALL ON public.users TO PUBLIC;\n", "GRANT"),
    (b"CREATE ROLE x SUPERUSER;\n", "CREATE ROLE"),
    (b"ALTER SYSTEM SET archive_command = 'x';\n", "ALTER SYSTEM"),
    (b"SELECT pg_catalog.setval('x', 1, true); SELECT 1;\n", "several statements on one line"),
    (b"SET standard_conforming_strings = off;\n", "standard_conforming_strings = off"),
    (b"SET client_encoding = 'SJIS';\n", "SET of the character set sjis"),
    (b"DO $$ BEGIN PERFORM 1; END $$;\n", "DO"),
    (b"DROP TABLE public.users;\n", "DROP"),
]


@pytest.mark.parametrize("statement, kind", PG_REFUSED, ids=[k for _, k in PG_REFUSED])
def test_postgresql_refuses_and_names_the_statement_and_line(statement: bytes, kind: str) -> None:
    dump = b"--\nSET client_encoding = 'UTF8';\n" + statement + b"SET row_security = off;\n"
    with pytest.raises(UnsafeDumpError) as caught:
        _run(dump, "postgresql")
    assert kind.lower() in caught.value.kind.lower()
    assert caught.value.line == 3


def test_postgresql_connect_to_the_same_database_is_allowed() -> None:
    dump = b"\\connect passbolt\nSET row_security = off;\n"
    output, guard = _run(dump, "postgresql", database="passbolt")
    assert output == dump
    with pytest.raises(UnsafeDumpError):
        _run(dump, "postgresql", database="other")


def test_unfinished_statements_and_copies_are_refused() -> None:
    with pytest.raises(UnsafeDumpError, match="unfinished statement"):
        _run(b"CREATE TABLE `t` (\n  `id` int\n", "mariadb")
    with pytest.raises(UnsafeDumpError, match="COPY without its end marker"):
        _run(b"COPY public.users (id) FROM stdin;\n1\n2\n", "postgresql")


def test_no_backslash_escapes_mode_allows_no_backslash_in_values() -> None:
    mode = b"/*!40101 SET SQL_MODE='NO_BACKSLASH_ESCAPES' */;\n"
    fine = mode + b"INSERT INTO `t` VALUES ('a''b');\n"
    assert _run(fine, "mariadb")[0] == fine
    # The server would end the string at the backslash-quote; a client might not: refused.
    tricky = mode + b"INSERT INTO `t` VALUES ('a\\');\n"
    with pytest.raises(UnsafeDumpError):
        _run(tricky, "mariadb")


def test_long_insert_lines_stream_with_bounded_memory() -> None:
    blob = "AB" * 50_000
    line = f"INSERT INTO `avatars` VALUES ('1',0x{blob},'it\\'s ''quoted'' \\\\',NULL,-3.5),('2',_binary 'x',1e5,0x);\n"
    dump = b"SET NAMES utf8mb4;\n" + line.encode() + b"UNLOCK TABLES;\n"
    for chunk in (1000, 4096, 65_537):
        guard = SqlGuard("mariadb", max_statement_bytes=4096)
        pieces = []
        for i in range(0, len(dump), chunk):
            pieces.append(guard.feed(dump[i : i + chunk]))
            assert len(guard._pending) <= 4096 + chunk
        pieces.append(guard.finish())
        assert b"".join(pieces) == dump
        assert guard.statistics.long_lines == 1
        assert guard.statistics.rows == 1


@pytest.mark.parametrize(
    "tail",
    [
        b"); SELECT 1 INTO OUTFILE '/tmp/x';\n",
        b") \\! touch /tmp/x\n",
        b",LOAD_FILE('/etc/passwd'));\n",
        b"\n",
    ],
)
def test_long_insert_lines_are_checked_to_their_end(tail: bytes) -> None:
    head = b"INSERT INTO `avatars` VALUES ('1',0x" + b"00" * 20_000 + b",'x'"
    guard = SqlGuard("mariadb", max_statement_bytes=4096)
    passed = []
    with pytest.raises(UnsafeDumpError, match="not one row of literal values"):
        for i in range(0, len(head + tail), 3000):
            passed.append(guard.feed((head + tail)[i : i + 3000]))
        guard.finish()
    assert b";" not in b"".join(passed)


def test_long_lines_other_than_inserts_are_refused() -> None:
    with pytest.raises(UnsafeDumpError, match="longer than"):
        _run(b"CREATE TABLE `t` (" + b" " * 10_000 + b");\n", "mariadb", max_statement_bytes=4096)


def test_mysql8_collations_are_mapped_when_asked_and_counted() -> None:
    dump = (
        b"/*!40101 SET NAMES utf8mb4 COLLATE utf8mb4_0900_ai_ci */;\n"
        b"CREATE TABLE `t` (\n  `a` varchar(5) COLLATE utf8mb4_0900_as_cs,\n  `b` text COLLATE utf8mb4_de_pb_0900_ai_ci\n"
        b") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;\n"
        b"INSERT INTO `t` VALUES ('utf8mb4_0900_ai_ci','x');\n"
    )
    unchanged, guard = _run(dump, "mariadb")
    assert unchanged == dump and not guard.statistics.mapped_collations
    mapped, guard = _run(dump, "mariadb", 5, map_mysql8_collations=True)
    assert b"COLLATE=utf8mb4_unicode_ci;" in mapped
    assert b"COLLATE utf8mb4_bin" in mapped and b"COLLATE utf8mb4_german2_ci" in mapped
    assert b"VALUES ('utf8mb4_0900_ai_ci','x')" in mapped  # row data is never changed
    assert guard.statistics.mapped_collations == {
        "utf8mb4_0900_ai_ci": 2, "utf8mb4_0900_as_cs": 1, "utf8mb4_de_pb_0900_ai_ci": 1,
    }
    assert mariadb_collation_for("utf8mb4_0900_bin") == "utf8mb4_bin"
    assert mariadb_collation_for("utf8mb4_ja_0900_as_cs") == "utf8mb4_bin"
    assert mariadb_collation_for("utf8mb4_sv_0900_ai_ci") == "utf8mb4_swedish_ci"


def test_throughput_on_a_row_heavy_dump() -> None:
    """Measures MB/s on passbolt-like rows (armored messages, UUIDs); prints it, asserts a floor."""
    message = "-----BEGIN PGP MESSAGE-----\\n\\n" + "wcBMA0xyz+abc/" * 50 + "\\n-----END PGP MESSAGE-----\\n"
    rows = []
    for index in range(20_000):
        rows.append(
            f"INSERT INTO `secrets` VALUES ('{index:08d}-1111-4222-8333-444455556666','0b3c0c7e-0f1e-4c1f-9f0e-1c2b3a4d5e6f',"
            f"'7c1a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c','{message}','2024-01-01 00:00:00','2024-01-01 00:00:00',NULL,NULL,NULL,NULL);\n"
        )
        rows.append(
            f"INSERT INTO `action_logs` VALUES ('{index:08d}-aaaa-4bbb-8ccc-dddddddddddd','9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a',"
            f"'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d','/resources.json',1,'2024-01-01 00:00:00');\n"
        )
    dump = ("".join(rows)).encode()
    guard = SqlGuard("mariadb")
    started = time.perf_counter()
    for i in range(0, len(dump), 1 << 20):
        guard.feed(dump[i : i + (1 << 20)])
    guard.finish()
    seconds = time.perf_counter() - started
    rate = len(dump) / seconds / 1e6
    print(f"sqlguard: {len(dump) / 1e6:.1f} MB in {seconds:.2f} s = {rate:.0f} MB/s")
    assert guard.statistics.rows == 40_000
    assert rate > 20  # a floor far below the measured rate, so a loaded machine does not fail it


def test_mapped_mysql8_dump_loads_into_mariadb(mariadb_server) -> None:  # type: ignore[no-untyped-def]
    """A MySQL 8 table definition fails on MariaDB as it is and loads once its collations are mapped."""
    from strongroom.dbserver.load import load_dump
    from strongroom.errors import DatabaseError

    dump = (
        b"/*!40101 SET NAMES utf8mb4 */;\n"
        b"DROP TABLE IF EXISTS `t`;\n"
        b"CREATE TABLE `t` (\n  `id` char(36) NOT NULL,\n  `name` varchar(20) COLLATE utf8mb4_0900_ai_ci,\n"
        b"  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;\n"
        b"INSERT INTO `t` VALUES ('1','ada');\n"
    )
    target = mariadb_server.create_database("sqlguard_collations", user="sqlguard_collations")
    with pytest.raises(DatabaseError, match="0900"):
        load_dump(target, guard_dump([dump], "mariadb"), bin_dir=mariadb_server.bin_dir)
    statistics = GuardStatistics()
    load_dump(
        target,
        guard_dump([dump], "mariadb", map_mysql8_collations=True, statistics=statistics),
        bin_dir=mariadb_server.bin_dir,
    )
    assert statistics.mapped_collations == {"utf8mb4_0900_ai_ci": 2}
