"""A streaming filter that lets through only the statements a database dump contains.

A drill or a restore loads a dump taken from a server strongroom does not control:
the dump is untrusted input. :class:`SqlGuard` reads it line by line and passes on
only the statement kinds that ``mariadb-dump --skip-extended-insert --routines
--triggers --hex-blob`` and ``pg_dump -Fp`` write. Anything else raises
:class:`UnsafeDumpError` naming the statement kind and the line where it starts.

MariaDB/MySQL (``dialect="mariadb"``), allowed:

- ``--`` comments, blank lines, MariaDB's sandbox-mode line ``/*M!999999\\- enable the sandbox mode */``;
- ``/*!NNNNN ... */`` version comments, whose content is checked as a statement;
- ``SET`` (session variables and ``@user`` variables; never ``GLOBAL``),
  ``DROP TABLE IF EXISTS``, ``CREATE TABLE`` (not ``... SELECT``), ``LOCK TABLES``,
  ``UNLOCK TABLES``, ``ALTER TABLE ... DISABLE/ENABLE KEYS``, ``DROP TRIGGER/PROCEDURE/FUNCTION IF EXISTS``;
- ``INSERT INTO `t` [(columns)] VALUES (...),...;`` whose values are only literals
  (quoted strings, numbers, ``NULL``, ``0x`` hex, ``_binary '...'``), checked by a
  grammar so that no second statement can hide in a row;
- ``DELIMITER`` lines, and between them ``CREATE [DEFINER=...] TRIGGER / PROCEDURE /
  FUNCTION`` bodies, which must not contain any refused construct.

PostgreSQL (``dialect="postgresql"``), allowed: comments, ``SET``, ``SELECT
pg_catalog.set_config(...)``, ``SELECT pg_catalog.setval(...)``, ``CREATE TABLE /
SEQUENCE / [UNIQUE] INDEX / FUNCTION / TRIGGER / TYPE / SCHEMA``, ``ALTER TABLE ...
ADD CONSTRAINT / OWNER TO / ALTER COLUMN ... SET DEFAULT``, ``ALTER SEQUENCE``,
``ALTER FUNCTION/SCHEMA/TYPE ... OWNER TO``, ``COMMENT ON``, ``COPY table (columns)
FROM stdin;`` followed by its data lines up to ``\\.``, ``\\connect`` to the database
being restored, and pg_dump 15.14+'s ``\\restrict`` / ``\\unrestrict`` lines.

Refused (named in the error): ``SELECT ... INTO OUTFILE/DUMPFILE``, ``LOAD DATA``,
``LOAD_FILE()``, ``GRANT``, ``CREATE USER``, ``SET GLOBAL``, ``INSTALL PLUGIN``,
client commands (``system``, ``source``, ``\\!``, ``\\o``, ``\\copy``, ``\\i``,
``\\setenv`` and every other backslash command), ``COPY ... TO`` or ``FROM 'file'`` or
``PROGRAM``, ``CREATE EXTENSION``, ``lo_import``/``lo_export``, ``pg_read_file`` and
the other server file functions, and every statement kind not listed above.

Speed and memory: a run of ``INSERT`` lines is checked by one compiled regular
expression (and, when merging, joined by ``bytes.replace``: ~180 MB/s of CPU on a
passbolt dump, merging included);
PostgreSQL ``COPY`` data is passed through by searching for its end marker, without
looking at each line. Other statements (a few hundred in a passbolt dump) are lexed
in Python. Memory stays bounded: an ``INSERT`` line longer than
``max_statement_bytes`` is checked by a resumable scanner and passed on as it is
checked (what has been passed on is always the head of a single ``INSERT`` without its
terminator); any other statement longer than the limit is refused.

Output: the input bytes, unchanged, except that with ``map_mysql8_collations=True``
the MySQL 8 collations MariaDB lacks (``utf8mb4_0900_ai_ci`` and the other ``_0900_``
ones) are replaced in statements other than ``INSERT`` (table definitions, ``SET``)
and counted in :attr:`GuardStatistics.mapped_collations`, and that with
``merge_inserts=True`` consecutive single-row ``INSERT`` lines are merged into
multi-row ``INSERT`` statements of at most ``merged_statement_bytes`` (what
:mod:`strongroom.source.sqlmerge` does, done here in the same pass: see
:func:`_merge_rows` for why it is safe). Row data is never changed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from strongroom.errors import CheckFailed

Dialect = Literal["mariadb", "postgresql"]
DIALECTS: tuple[str, ...] = ("mariadb", "postgresql")

DEFAULT_MAX_STATEMENT_BYTES = 16 << 20
# Merged INSERT statements: well below any sane max_allowed_packet, large enough to load fast.
DEFAULT_MERGED_STATEMENT_BYTES = 1 << 20
MINIMUM_MERGED_STATEMENT_BYTES = 1024
# Statements other than INSERT rows (table definitions, routine bodies) are small in a dump.
MAX_OTHER_STATEMENT_BYTES = 1 << 20
MINIMUM_STATEMENT_BYTES = 4096
_EXCERPT = 80


class UnsafeDumpError(CheckFailed):
    """The dump holds a statement a dump never contains; nothing from it was passed on.

    ``kind`` names the statement (``SELECT ... INTO OUTFILE``, ``client command \\!``),
    ``line`` is the 1-based line where it starts.
    """

    def __init__(self, kind: str, line: int, excerpt: str) -> None:
        super().__init__(
            f"the dump was refused: line {line} holds {kind}, which a database dump never contains"
            + (f" ({excerpt})" if excerpt else ""),
            hint="this snapshot's dump was altered or does not come from mariadb-dump/pg_dump; "
            "do not load it anywhere, and find out how it was produced",
        )
        self.kind = kind
        self.line = line


@dataclass
class GuardStatistics:
    """What the guard let through: lines, statements per kind, rows, and mapped collations."""

    lines: int = 0
    bytes: int = 0
    rows: int = 0
    statements: Counter[str] = field(default_factory=Counter)
    mapped_collations: Counter[str] = field(default_factory=Counter)
    long_lines: int = 0
    merged_statements: int = 0


# --------------------------------------------------------------------------- MySQL 8 collations

# MySQL 8's language codes in _0900_ collation names, and MariaDB's utf8mb4 collation for each.
_LANGUAGE_COLLATIONS: dict[str, str] = {
    "cs": "utf8mb4_czech_ci",
    "da": "utf8mb4_danish_ci",
    "de_pb": "utf8mb4_german2_ci",
    "eo": "utf8mb4_esperanto_ci",
    "es": "utf8mb4_spanish_ci",
    "es_trad": "utf8mb4_spanish2_ci",
    "et": "utf8mb4_estonian_ci",
    "hr": "utf8mb4_croatian_ci",
    "hu": "utf8mb4_hungarian_ci",
    "is": "utf8mb4_icelandic_ci",
    "la": "utf8mb4_roman_ci",
    "lt": "utf8mb4_lithuanian_ci",
    "lv": "utf8mb4_latvian_ci",
    "pl": "utf8mb4_polish_ci",
    "ro": "utf8mb4_romanian_ci",
    "sk": "utf8mb4_slovak_ci",
    "sl": "utf8mb4_slovenian_ci",
    "sv": "utf8mb4_swedish_ci",
    "tr": "utf8mb4_turkish_ci",
    "vi": "utf8mb4_vietnamese_ci",
}
_MYSQL8_COLLATION = re.compile(rb"\butf8mb4_(?:([a-z]{2}(?:_[a-z]+)?)_)?0900_(ai_ci|as_ci|as_cs|bin)\b")


def mariadb_collation_for(mysql8_collation: str) -> str:
    """Return the MariaDB collation that replaces a MySQL 8 ``_0900_`` collation.

    Binary and case-sensitive ones become ``utf8mb4_bin``; language ones MariaDB's
    collation for that language when it has one; the rest ``utf8mb4_unicode_ci``.
    """
    match = _MYSQL8_COLLATION.fullmatch(mysql8_collation.encode("ascii", "replace"))
    if match is None:
        return mysql8_collation
    language = match.group(1).decode("ascii") if match.group(1) else None
    variant = match.group(2).decode("ascii")
    if variant in ("bin", "as_cs"):
        return "utf8mb4_bin"
    if language is not None and language in _LANGUAGE_COLLATIONS:
        return _LANGUAGE_COLLATIONS[language]
    return "utf8mb4_unicode_ci"


# --------------------------------------------------------------------------- MariaDB grammar

# INSERT lines: a backquoted table, optional column list, VALUES, tuples of literals.
_IDENTIFIER = rb"`[^`\n]*+(?:``[^`\n]*+)*+`"  # unrolled: per-character alternation is slow
_INSERT_PREFIX = re.compile(
    rb"INSERT INTO " + _IDENTIFIER + rb"(?: \(" + _IDENTIFIER + rb"(?:, ?" + _IDENTIFIER + rb")*+\))? VALUES ?"
)
_NUMBER = rb"-?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?+"
# Strings with backslash escapes; '' inside a string is a quote (both lexers agree on where it ends).
# Written as "unrolled loops" and tried first: most values are strings, and this is the hot path.
_STRING_BACKSLASH = rb"'[^'\\\n]*+(?:\\[^\n][^'\\\n]*+|''[^'\\\n]*+)*+'"
# Under NO_BACKSLASH_ESCAPES the server and a client may disagree on a backslash: allow none.
_STRING_PLAIN = rb"'[^'\\\n]*+(?:''[^'\\\n]*+)*+'"


def _insert_block(string: bytes) -> re.Pattern[bytes]:
    """A pattern for a run of whole INSERT lines whose values are literals only."""
    value = (
        rb"(?:" + string + rb"|0x[0-9A-Fa-f]*+|NULL|" + _NUMBER + rb"|_binary ?" + string + rb"|[Xx]'[0-9A-Fa-f]*+')"
    )
    row = rb"\(" + value + rb"(?:," + value + rb")*+\)"
    return re.compile(rb"(?:" + _INSERT_PREFIX.pattern + row + rb"(?:," + row + rb")*+;\r?\n)*+")


_INSERT_BLOCK_BACKSLASH = _insert_block(_STRING_BACKSLASH)
_INSERT_BLOCK_PLAIN = _insert_block(_STRING_PLAIN)

_SANDBOX_LINE = re.compile(rb"/\*M!999999\\- enable the sandbox mode \*/ ?\r?\n")
_DELIMITER_LINE = re.compile(rb"DELIMITER[ \t]+(\S+)[ \t]*\r?\n", re.IGNORECASE)
_SQL_MODE = re.compile(r"\bSQL_MODE\s*=", re.IGNORECASE)

# The lexer of MariaDB statements other than INSERT: strings, identifiers, comments.
_MYSQL_TOKEN_BACKSLASH = re.compile(
    r"""
    (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<identifier>`(?:[^`]|``)*`)
    |(?P<open>['"`].*)
    |(?P<version>/\*[M]?!\d*)
    |(?P<comment>/\*.*?(?:\*/|\Z))
    |(?P<close>\*/)
    |(?P<line_comment>(?:--(?=[ \t\r\n]|\Z)|\#)[^\n]*)
    |(?P<backslash>\\.?)
    |(?P<code>[^'"`/*\-\#\\]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_MYSQL_TOKEN_PLAIN = re.compile(
    _MYSQL_TOKEN_BACKSLASH.pattern.replace(r"'(?:[^'\\]|\\.|'')*", r"'(?:[^']|'')*").replace(
        r'"(?:[^"\\]|\\.|"")*', r'"(?:[^"]|"")*'
    ),
    re.VERBOSE | re.DOTALL,
)

# Refused anywhere in the code of a MariaDB statement (strings blanked): name, pattern.
_MYSQL_REFUSED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("SELECT ... INTO OUTFILE", r"\bINTO\s+OUTFILE\b"),
        ("SELECT ... INTO DUMPFILE", r"\bINTO\s+DUMPFILE\b"),
        ("LOAD DATA", r"\bLOAD\s+(?:DATA|XML)\b"),
        ("LOAD_FILE()", r"\bLOAD_FILE\s*\("),
        ("GRANT", r"\bGRANT\b"),
        ("REVOKE", r"\bREVOKE\b"),
        ("CREATE USER", r"\b(?:CREATE|ALTER|DROP|RENAME)\s+USER\b"),
        ("CREATE ROLE", r"\bCREATE\s+ROLE\b"),
        ("SET PASSWORD", r"\bSET\s+PASSWORD\b"),
        ("SET GLOBAL", r"\bSET\s+(?:@@)?(?:GLOBAL|PERSIST|PERSIST_ONLY)\b|@@(?:GLOBAL|PERSIST|PERSIST_ONLY)\s*\."),
        ("INSTALL PLUGIN", r"\b(?:INSTALL|UNINSTALL)\s+(?:PLUGIN|SONAME)\b"),
        ("CREATE SERVER", r"\bCREATE\s+SERVER\b"),
        ("SHUTDOWN", r"\bSHUTDOWN\b"),
        ("PREPARE/EXECUTE", r"\b(?:PREPARE|EXECUTE)\b"),
    )
)

# Allowed MariaDB statements, by the start of their code: kind, pattern.
_MYSQL_ALLOWED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for name, pattern in (
        ("SET", r"SET\s+(?!GLOBAL\b|PERSIST\b|PERSIST_ONLY\b|PASSWORD\b|ROLE\b|DEFAULT\s+ROLE\b|STATEMENT\b)"),
        ("DROP TABLE IF EXISTS", r"DROP\s+TABLE\s+IF\s+EXISTS\s"),
        ("DROP VIEW IF EXISTS", r"DROP\s+VIEW\s+IF\s+EXISTS\s"),
        ("CREATE TABLE", r"CREATE\s+TABLE\s"),
        ("LOCK TABLES", r"LOCK\s+TABLES\s"),
        ("UNLOCK TABLES", r"UNLOCK\s+TABLES\s*$"),
        ("ALTER TABLE ... KEYS", r"ALTER\s+TABLE\s+`(?:[^`]|``)*`\s+(?:DISABLE|ENABLE)\s+KEYS\s*$"),
        ("DROP ROUTINE IF EXISTS", r"DROP\s+(?:TRIGGER|PROCEDURE|FUNCTION)\s+IF\s+EXISTS\s"),
        ("CREATE ROUTINE", r"CREATE\s+(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?"
                           r"(?:TRIGGER|PROCEDURE|FUNCTION)\s"),
    )
)

# What to call a statement that is not allowed, from its first words.
_MYSQL_KIND_NAMES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("client command system", r"(?:system|\\!)\b"),
        ("client command source", r"(?:source|\\\.)\s"),
        ("SELECT", r"SELECT\b"),
        ("CREATE VIEW", r"CREATE\s+(?:.*\s)?VIEW\b"),
        ("CREATE DATABASE", r"CREATE\s+(?:DATABASE|SCHEMA)\b"),
        ("DROP DATABASE", r"DROP\s+(?:DATABASE|SCHEMA)\b"),
        ("USE", r"USE\b"),
        ("CALL", r"CALL\b"),
        ("DELETE", r"DELETE\b"),
        ("UPDATE", r"UPDATE\b"),
    )
)

_MYSQL_CLIENT_COMMANDS = re.compile(
    r"(?:\?|clear|connect|delimiter|edit|ego|exit|go|help|nopager|notee|nowarning|pager|print|prompt|"
    r"quit|rehash|source|status|system|tee|use|charset|warnings)(?:\s|;|$)",
    re.IGNORECASE,
)


def _first_words(text: str, count: int = 4) -> str:
    return " ".join(text.split()[:count])


# --------------------------------------------------------------------------- PostgreSQL grammar

_PG_TOKEN = re.compile(
    r"""
    (?P<string>[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
    |(?P<identifier>"(?:[^"]|"")*")
    |(?P<open>(?:[Ee]?'|").*)
    |(?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
    |(?P<comment>/\*.*?(?:\*/|\Z))
    |(?P<line_comment>--[^\n]*)
    |(?P<backslash>\\)
    |(?P<code>[^'"$/\-\\Ee]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_PG_REFUSED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for name, pattern in (
        ("COPY ... PROGRAM", r"\bCOPY\b.*\bPROGRAM\b"),
        ("lo_import", r"\blo_import\b"),
        ("lo_export", r"\blo_export\b"),
        ("pg_read_file", r"\bpg_read_(?:binary_)?file\b"),
        ("pg_ls_dir", r"\bpg_ls_\w+\b"),
        ("pg_stat_file", r"\bpg_stat_file\b"),
        ("pg_execute_server_program", r"\bpg_execute_server_program\b"),
        ("dblink", r"\bdblink\w*\b"),
        ("CREATE EXTENSION", r"\bCREATE\s+EXTENSION\b"),
        ("GRANT", r"\bGRANT\b"),
        ("CREATE ROLE", r"\bCREATE\s+(?:ROLE|USER)\b"),
        ("ALTER SYSTEM", r"\bALTER\s+SYSTEM\b"),
        ("CREATE LANGUAGE", r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TRUSTED\s+)?(?:PROCEDURAL\s+)?LANGUAGE\b"),
    )
)

_PG_IDENT = r'(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)'
_PG_NAME = _PG_IDENT + r"(?:\." + _PG_IDENT + r")?"
_PG_COPY = re.compile(r"COPY\s+" + _PG_NAME + r"\s*(?:\([^()]*\)\s*)?FROM\s+stdin\s*;\s*$", re.IGNORECASE)

_PG_ALLOWED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for name, pattern in (
        ("SET", r"SET\s+(?!ROLE\b|SESSION\s+AUTHORIZATION\b)"),
        ("SELECT pg_catalog.set_config", r"SELECT\s+pg_catalog\.set_config\s*\([^;]*\)\s*;\s*$"),
        ("SELECT pg_catalog.setval", r"SELECT\s+pg_catalog\.setval\s*\([^;]*\)\s*;\s*$"),
        ("CREATE TABLE", r"CREATE\s+(?:UNLOGGED\s+)?TABLE\s"),
        ("CREATE SEQUENCE", r"CREATE\s+SEQUENCE\s"),
        ("CREATE INDEX", r"CREATE\s+(?:UNIQUE\s+)?INDEX\s"),
        ("CREATE FUNCTION", r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s"),
        ("CREATE TRIGGER", r"CREATE\s+(?:CONSTRAINT\s+)?TRIGGER\s"),
        ("CREATE TYPE", r"CREATE\s+TYPE\s"),
        ("CREATE SCHEMA", r"CREATE\s+SCHEMA\s"),
        ("ALTER TABLE", r"ALTER\s+TABLE\s+(?:ONLY\s+)?" + _PG_NAME + r"\s+(?:ADD\s+CONSTRAINT\s|OWNER\s+TO\s"
                        r"|ALTER\s+COLUMN\s+" + _PG_IDENT + r"\s+(?:SET\s+DEFAULT\s|ADD\s+GENERATED\s)"
                        r"|CLUSTER\s+ON\s|REPLICA\s+IDENTITY\s|ENABLE\s+TRIGGER\s)"),
        ("ALTER SEQUENCE", r"ALTER\s+SEQUENCE\s"),
        ("ALTER OWNER", r"ALTER\s+(?:FUNCTION|SCHEMA|TYPE|SEQUENCE|INDEX)\s+[^;]*\sOWNER\s+TO\s"),
        ("COMMENT ON", r"COMMENT\s+ON\s"),
    )
)

_PG_KIND_NAMES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for name, pattern in (
        ("COPY ... TO", r"COPY\s.*\sTO\s"),
        ("COPY ... FROM a file", r"COPY\s.*\sFROM\s+'"),
        ("SELECT", r"SELECT\b"),
        ("DO", r"DO\b"),
        ("CREATE DATABASE", r"CREATE\s+DATABASE\b"),
        ("DROP", r"DROP\b"),
        ("DELETE", r"DELETE\b"),
        ("UPDATE", r"UPDATE\b"),
        ("INSERT", r"INSERT\b"),
    )
)

# Client character sets with multi-byte characters whose second byte can be 0x5C (MySQL and PostgreSQL names).
_UNSAFE_CHARSET = re.compile(
    r"(?<![a-z0-9])(?:big5|cp932|gbk|sjis|gb18030|shift_jis(?:_2004)?|uhc|johab|eucjpms)(?![a-z0-9])", re.IGNORECASE
)
# In the code of a MariaDB SET (strings blanked to ''): a call, a hex or bit literal, strings side by side.
# mariadb-dump sets plain values; these are how a value could be built that the text does not show.
_SET_EXPRESSION = re.compile(r"\(|\b0[xb][0-9a-f]|\b[xb]''|''\s*''", re.IGNORECASE)
_NON_STANDARD_STRINGS = re.compile(r"standard_conforming_strings\s*(?:=|TO)\s*'?(?:off|false|0)\b", re.IGNORECASE)

_PG_META_LINE = re.compile(rb"\\(restrict|unrestrict|connect|c)(?:[ \t]+([^\r\n]*?))?[ \t]*\r?\n")
_PG_RESTRICT_KEY = re.compile(rb"[A-Za-z0-9]{1,128}")
_PG_COPY_END = b"\\.\n"


def _match_kind(code: str, table: tuple[tuple[str, re.Pattern[str]], ...]) -> str | None:
    for name, pattern in table:
        if pattern.match(code):
            return name
    return None


# Words at least one of which every refused pattern contains: a quick test before the patterns.
_MYSQL_REFUSED_WORDS = (
    "OUTFILE", "DUMPFILE", "LOAD", "GRANT", "REVOKE", "USER", "ROLE", "PASSWORD", "GLOBAL",
    "PLUGIN", "SONAME", "SERVER", "SHUTDOWN", "PREPARE", "EXECUTE", "PERSIST",
)
_PG_REFUSED_WORDS = (
    "PROGRAM", "LO_IMPORT", "LO_EXPORT", "PG_READ", "PG_LS_", "PG_STAT_FILE", "PG_EXECUTE", "DBLINK",
    "EXTENSION", "GRANT", "ROLE", "USER", "SYSTEM", "LANGUAGE",
)


def _search_kind(code: str, table: tuple[tuple[str, re.Pattern[str]], ...], words: tuple[str, ...] = ()) -> str | None:
    """Return the name of the first pattern of ``table`` found in ``code``, or None."""
    if words:
        upper = code.upper()
        if not any(word in upper for word in words):
            return None
    for name, pattern in table:
        if pattern.search(code):
            return name
    return None


# --------------------------------------------------------------------------- the guard


@dataclass
class _Lexed:
    """A statement lexed: its code (strings blanked, comments removed), whether a string is open."""

    code: str
    open: bool
    backslash: str | None


class SqlGuard:
    """A push-style filter: :meth:`feed` it chunks of a dump, then :meth:`finish`; both return bytes to pass on.

    ``dialect`` is ``mariadb`` (also MySQL) or ``postgresql``. ``database`` is the name
    a PostgreSQL ``\\connect`` may name (None: no ``\\connect`` is allowed).
    ``map_mysql8_collations`` replaces MySQL 8 collations MariaDB lacks.
    ``merge_inserts`` (MariaDB only) merges consecutive single-row INSERT lines into
    statements of at most ``merged_statement_bytes`` (a longer single row stays as it is);
    a statement never spans two calls of :meth:`feed`, so feed chunks of about that size.
    Raises UnsafeDumpError for a refused statement (and for every call after it),
    ValueError for an unknown dialect, a limit below 4 KiB or a merged statement limit
    below 1 KiB.
    """

    def __init__(
        self,
        dialect: str,
        *,
        map_mysql8_collations: bool = False,
        database: str | None = None,
        max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES,
        merge_inserts: bool = False,
        merged_statement_bytes: int = DEFAULT_MERGED_STATEMENT_BYTES,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
        if max_statement_bytes < MINIMUM_STATEMENT_BYTES:
            raise ValueError(f"max_statement_bytes must be at least {MINIMUM_STATEMENT_BYTES}")
        if merged_statement_bytes < MINIMUM_MERGED_STATEMENT_BYTES:
            raise ValueError(f"merged_statement_bytes must be at least {MINIMUM_MERGED_STATEMENT_BYTES}")
        # None: INSERT lines pass unchanged.
        self._merge_limit = merged_statement_bytes if merge_inserts and dialect == "mariadb" else None
        self.dialect = dialect
        self.map_mysql8_collations = map_mysql8_collations
        self.database = database
        self.max_statement_bytes = max_statement_bytes
        self.statistics = GuardStatistics()
        self._mysql = dialect == "mariadb"
        self._pending = b""  # the start of a line whose end has not arrived
        self._line = 0  # lines completed so far
        self._statement: list[bytes] = []  # lines of an unfinished multi-line statement
        self._statement_bytes = 0
        self._statement_line = 0
        self._delimiter = ";"
        self._backslash_escapes = True
        self._in_copy = False
        self._long: _LongInsert | None = None
        self._long_copy_line = False
        self._failed: UnsafeDumpError | None = None
        self._finished = False

    # -- the public interface -----------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take the next chunk of the dump; return the vetted bytes it completes (maybe empty).

        Raises UnsafeDumpError when the dump holds a refused statement.
        """
        if self._failed is not None:
            raise self._failed
        if self._finished:
            raise ValueError("feed() after finish()")
        try:
            return self._feed(data)
        except UnsafeDumpError as error:
            self._failed = error
            raise

    def finish(self) -> bytes:
        """End of input: return the last vetted bytes.

        An unfinished last line or statement is checked as if it ended there.
        Raises UnsafeDumpError for a refused or unfinished statement.
        """
        if self._failed is not None:
            raise self._failed
        if self._finished:
            return b""
        self._finished = True
        try:
            out: list[bytes] = []
            if self._long is not None:
                out.append(self._long.finish(self._line + 1))
                self._long = None
                self._line += 1
            elif self._long_copy_line:
                raise UnsafeDumpError("a COPY without its end marker (\\.)", self._statement_line, "")
            elif self._pending:
                pending, self._pending = self._pending, b""
                self._handle_lines(pending + b"\n", out)
                # The added newline is not part of the dump.
                if out and out[-1].endswith(b"\n"):
                    out[-1] = out[-1][:-1]
            if self._statement:
                raise UnsafeDumpError(
                    f"an unfinished statement ({_first_words(self._statement[0].decode('utf-8', 'replace'))})",
                    self._statement_line,
                    "",
                )
            if self._in_copy:
                raise UnsafeDumpError("a COPY without its end marker (\\.)", self._statement_line, "")
            return b"".join(out)
        except UnsafeDumpError as error:
            self._failed = error
            raise

    # -- lines --------------------------------------------------------------------------

    def _feed(self, data: bytes) -> bytes:
        self.statistics.bytes += len(data)
        out: list[bytes] = []
        if self._long is not None or self._long_copy_line:
            end = data.find(b"\n")
            if end < 0:
                out.append(self._long.feed(data) if self._long is not None else data)
                return b"".join(out)
            if self._long is not None:
                out.append(self._long.feed(data[: end + 1]))
                out.append(self._long.finish(self._line + 1))
                self._long = None
            else:
                out.append(data[: end + 1])
                self._long_copy_line = False
            self._line += 1
            self.statistics.lines += 1
            self.statistics.rows += 1
            data = data[end + 1 :]
        buffer = self._pending + data if self._pending else data
        consumed = self._handle_lines(buffer, out)
        rest = buffer[consumed:]
        if len(rest) > self.max_statement_bytes:
            if self._in_copy:
                out.append(rest)  # COPY data is inert: a long row streams through as it is
                self._long_copy_line = True
            else:
                self._start_long_line(rest, out)
            self._pending = b""
        else:
            self._pending = rest
        return b"".join(out)

    def _handle_lines(self, buffer: bytes, out: list[bytes]) -> int:
        """Check the whole lines in ``buffer``; append what passes to ``out``; return bytes consumed."""
        position = 0
        length = len(buffer)
        emit_from = 0  # start of the run of accepted, unchanged bytes not yet appended
        mysql = self._mysql
        block = _INSERT_BLOCK_BACKSLASH if self._backslash_escapes else _INSERT_BLOCK_PLAIN
        while position < length:
            if self._in_copy:
                end = self._copy_end(buffer, position)
                if end < 0:
                    # Pass on the whole data lines; keep the last partial line for the end search.
                    last = buffer.rfind(b"\n", position)
                    if last < 0:
                        break
                    self._count_copy_lines(buffer, position, last + 1)
                    position = last + 1
                    continue
                self._count_copy_lines(buffer, position, end)
                position = end + len(_PG_COPY_END)
                self._line += 1
                self.statistics.lines += 1
                self._in_copy = False
                continue
            if mysql and not self._statement and buffer.startswith(b"INSERT INTO ", position):
                # The hot path: one call checks a whole run of INSERT lines.
                if self._delimiter == ";":
                    run = block.match(buffer, position)
                    run_end = run.end() if run is not None else position
                    if run_end > position:
                        if self._merge_limit is not None:
                            if emit_from < position:
                                out.append(buffer[emit_from:position])
                            merged, rows, statements = _merge_rows(buffer, position, run_end, self._merge_limit)
                            out.extend(merged)
                            self.statistics.merged_statements += statements
                            emit_from = run_end
                        else:
                            rows = buffer.count(b"\n", position, run_end)
                        self._line += rows
                        self.statistics.lines += rows
                        self.statistics.rows += rows
                        position = run_end
                        continue
                end = buffer.find(b"\n", position)
                if end < 0:
                    break
                self._line += 1
                raise UnsafeDumpError(
                    self._insert_problem(buffer[position : end + 1]), self._line, _excerpt(buffer[position : end + 1])
                )
            end = buffer.find(b"\n", position)
            if end < 0:
                break
            next_position = end + 1
            self._line += 1
            self.statistics.lines += 1
            replacement = self._other_line(buffer[position:next_position])
            if replacement is not None:
                # The line changed (or belongs to a held statement): flush the unchanged run first.
                if emit_from < position:
                    out.append(buffer[emit_from:position])
                if replacement:
                    out.append(replacement)
                emit_from = next_position
            block = _INSERT_BLOCK_BACKSLASH if self._backslash_escapes else _INSERT_BLOCK_PLAIN
            position = next_position
        if emit_from < position:
            out.append(buffer[emit_from:position])
        return position

    @staticmethod
    def _copy_end(buffer: bytes, position: int) -> int:
        """Return where the ``\\.`` line ending a COPY starts, at or after line start ``position``, or -1."""
        if buffer.startswith(_PG_COPY_END, position):
            return position
        found = buffer.find(b"\n" + _PG_COPY_END, position)
        return found + 1 if found >= 0 else -1

    def _count_copy_lines(self, buffer: bytes, start: int, end: int) -> None:
        lines = buffer.count(b"\n", start, end)
        self._line += lines
        self.statistics.lines += lines
        self.statistics.rows += lines

    def _other_line(self, line: bytes) -> bytes | None:
        """Handle a line that is not an INSERT row nor COPY data.

        Returns None when the line passes unchanged right away, b"" when it is held
        (part of an unfinished statement), or the bytes to pass on in its place
        (a completed statement, possibly with collations mapped).
        """
        if not self._statement:
            stripped = line.strip()
            if not stripped or stripped.startswith(b"--") and (len(stripped) == 2 or stripped[2:3] in b" \t"):
                return None  # a blank line or a comment line
            if self._mysql:
                if _SANDBOX_LINE.fullmatch(line):
                    return None
                delimiter = _DELIMITER_LINE.fullmatch(line.lstrip())
                if delimiter is not None:
                    self._delimiter = delimiter.group(1).decode("utf-8", "replace")
                    if "\\" in self._delimiter:
                        raise UnsafeDumpError("a DELIMITER with a backslash", self._line, _excerpt(line))
                    self.statistics.statements["DELIMITER"] += 1
                    return None
            elif line.startswith(b"\\"):
                self._meta_command(line)
                return None
            self._statement_line = self._line
        self._statement.append(line)
        self._statement_bytes += len(line)
        limit = min(self.max_statement_bytes, MAX_OTHER_STATEMENT_BYTES)
        if self._statement_bytes > limit:
            raise UnsafeDumpError(
                f"a statement longer than {limit} bytes that is not an INSERT",
                self._statement_line,
                _excerpt(self._statement[0]),
            )
        terminator = self._delimiter.encode("utf-8") if self._mysql else b";"
        if len(self._statement) > 1 and not line.rstrip().endswith(terminator):
            return b""  # cannot end the statement: lexed once it can (keeps long statements linear)
        text = b"".join(self._statement).decode("utf-8", "surrogateescape")
        lexed = self._lex(text)
        if lexed.backslash is not None:
            raise UnsafeDumpError(
                f"client command {lexed.backslash}" if self._mysql else f"psql meta-command {lexed.backslash}",
                self._statement_line,
                _excerpt(self._statement[0]),
            )
        if lexed.open or not self._statement_complete(lexed.code):
            if len(self._statement) == 1 and self._mysql and self._delimiter == ";":
                self._check_not_client_command(lexed.code)
            return b""
        statement = b"".join(self._statement)
        self._statement = []
        self._statement_bytes = 0
        self._check_statement(lexed.code, statement)
        if self._mysql and self.map_mysql8_collations:
            statement = self._map_collations(statement)
        return statement

    def _statement_complete(self, code: str) -> bool:
        stripped = code.rstrip()
        delimiter = self._delimiter if self._mysql else ";"
        return stripped.endswith(delimiter)

    # -- lexing and checking ------------------------------------------------------------

    def _lex(self, text: str) -> _Lexed:
        if self._mysql:
            return self._lex_mysql(text)
        return self._lex_postgresql(text)

    def _lex_mysql(self, text: str) -> _Lexed:
        pattern = _MYSQL_TOKEN_BACKSLASH if self._backslash_escapes else _MYSQL_TOKEN_PLAIN
        parts: list[str] = []
        open_ = False
        backslash = None
        version_depth = 0
        for match in pattern.finditer(text):
            kind = match.lastgroup
            value = match.group()
            if kind == "string":
                parts.append("''")
            elif kind == "open":
                open_ = True
                parts.append(" ")
            elif kind == "identifier":
                # Names are blanked too: a column called `grant` is no GRANT statement.
                parts.append("``")
            elif kind == "version":
                version_depth += 1
                parts.append(" ")
            elif kind == "close":
                if version_depth == 0:
                    parts.append("*/")
                else:
                    version_depth -= 1
                    parts.append(" ")
            elif kind == "comment":
                if not value.endswith("*/"):
                    open_ = True
                parts.append(" ")
            elif kind == "line_comment":
                parts.append(" ")
            elif kind == "backslash":
                if backslash is None:
                    backslash = value
                parts.append(" ")
            else:
                parts.append(value)
        if version_depth:
            open_ = True
        return _Lexed("".join(parts), open_, backslash)

    def _lex_postgresql(self, text: str) -> _Lexed:
        parts: list[str] = []
        open_ = False
        backslash = None
        position = 0
        length = len(text)
        while position < length:
            match = _PG_TOKEN.match(text, position)
            assert match is not None
            kind = match.lastgroup
            value = match.group()
            position = match.end()
            if kind == "string":
                parts.append("''")
            elif kind == "open":
                open_ = True
                parts.append(" ")
            elif kind == "identifier":
                parts.append('""')
            elif kind == "dollar":
                close = text.find(value, position)
                if close < 0:
                    open_ = True
                    # The body is still checked for refused functions below.
                    parts.append(" " + text[position:] + " ")
                    position = length
                else:
                    # A dollar-quoted body is code for the refused-function search, not for statement ends.
                    body = text[position:close]
                    parts.append(" $$" + body.replace(";", " ").replace("\\", " ") + "$$ ")
                    position = close + len(value)
            elif kind == "comment":
                if not value.endswith("*/"):
                    open_ = True
                parts.append(" ")
            elif kind == "line_comment":
                parts.append(" ")
            elif kind == "backslash":
                if backslash is None:
                    word = re.match(r"\\[A-Za-z!?.]*", text[match.start():])
                    backslash = word.group() if word else "\\"
                parts.append(" ")
            else:
                parts.append(value)
        return _Lexed("".join(parts), open_, backslash)

    def _check_not_client_command(self, code: str) -> None:
        """Refuse a first line that the mariadb client would run as a command (``system ls``)."""
        if _MYSQL_CLIENT_COMMANDS.match(code.lstrip()):
            word = code.split()[0] if code.split() else code
            raise UnsafeDumpError(f"client command {word}", self._statement_line, _excerpt(self._statement[0]))

    def _check_statement(self, code: str, statement: bytes) -> None:
        """Raise UnsafeDumpError unless the statement (its code, strings blanked) is an allowed kind."""
        line = self._statement_line
        body = code.strip()
        if self._mysql:
            if _MYSQL_CLIENT_COMMANDS.match(body) and not body.upper().startswith("USE "):
                raise UnsafeDumpError(f"client command {body.split()[0]}", line, _excerpt(statement))
            refused = _search_kind(code, _MYSQL_REFUSED, _MYSQL_REFUSED_WORDS)
            if refused is not None:
                raise UnsafeDumpError(refused, line, _excerpt(statement))
            terminator = self._delimiter
            inner = body[: -len(terminator)].rstrip()
            if terminator in inner:
                pieces = [piece for piece in inner.split(terminator) if piece.strip()]
                # Trigger and routine bodies hold ';' while the delimiter is something else.
                if terminator == ";" or len(pieces) > 1:
                    raise UnsafeDumpError("several statements on one line", line, _excerpt(statement))
            kind = _match_kind(inner + " ", _MYSQL_ALLOWED)
            if kind == "CREATE TABLE" and re.search(r"\bSELECT\b", inner, re.IGNORECASE):
                raise UnsafeDumpError("CREATE TABLE ... SELECT", line, _excerpt(statement))
            if kind == "CREATE ROUTINE" and self._delimiter == ";" and ";" in inner:
                raise UnsafeDumpError("a routine body outside DELIMITER", line, _excerpt(statement))
            if kind == "SET":
                if _SET_EXPRESSION.search(inner):
                    raise UnsafeDumpError("SET with an expression (a dump sets plain values)", line, _excerpt(statement))
                self._check_set(statement)
                if _SQL_MODE.search(inner):
                    self._follow_sql_mode(statement)
        else:
            if _PG_COPY.match(body):
                self.statistics.statements["COPY"] += 1
                self._in_copy = True
                return
            refused = _search_kind(code, _PG_REFUSED, _PG_REFUSED_WORDS)
            if refused is not None:
                raise UnsafeDumpError(refused, line, _excerpt(statement))
            inner = body[:-1].rstrip()
            if ";" in inner:
                raise UnsafeDumpError("several statements on one line", line, _excerpt(statement))
            kind = _match_kind(body, _PG_ALLOWED)
            if kind == "SET":
                self._check_set(statement)
        if kind is None:
            table = _MYSQL_KIND_NAMES if self._mysql else _PG_KIND_NAMES
            named = _match_kind(body, table) or f"the statement {_first_words(body)!r}"
            raise UnsafeDumpError(named, line, _excerpt(statement))
        self.statistics.statements[kind] += 1

    def _check_set(self, statement: bytes) -> None:
        """Refuse a SET that would make the client lex the rest of the dump differently from the guard.

        The guard reads bytes; a client whose character set has multi-byte characters
        ending in 0x5C (a backslash) would see a quote where the guard sees an escape, so
        such character sets are refused. PostgreSQL dumps always turn
        ``standard_conforming_strings`` on; off would make ``\\'`` an escape for psql only.
        """
        # Backslashes out: 'gb\\k' is gbk to MySQL.
        text = statement.decode("utf-8", "replace").replace("\\", "")
        unsafe = _UNSAFE_CHARSET.search(text)
        if unsafe is not None:
            raise UnsafeDumpError(
                f"SET of the character set {unsafe.group().lower()} (its characters can hide a quote)",
                self._statement_line,
                _excerpt(statement),
            )
        if not self._mysql and _NON_STANDARD_STRINGS.search(text):
            raise UnsafeDumpError("SET standard_conforming_strings = off", self._statement_line, _excerpt(statement))

    def _follow_sql_mode(self, statement: bytes) -> None:
        """Follow SQL_MODE: under NO_BACKSLASH_ESCAPES a backslash in a string is an ordinary character."""
        text = statement.decode("utf-8", "replace").upper()
        if "@OLD_SQL_MODE" in text and "SQL_MODE=@OLD_SQL_MODE" in text.replace(" ", ""):
            self._backslash_escapes = True
            return
        if "@SAVED_SQL_MODE" in text.replace(" ", "") and "=@SAVED_SQL_MODE" in text.replace(" ", ""):
            self._backslash_escapes = True
            return
        self._backslash_escapes = "NO_BACKSLASH_ESCAPES" not in text

    def _meta_command(self, line: bytes) -> None:
        """Allow psql's ``\\restrict KEY``, ``\\unrestrict KEY`` and ``\\connect`` to the same database."""
        match = _PG_META_LINE.fullmatch(line)
        if match is None:
            word = re.match(rb"\\[A-Za-z!?.]*", line)
            name = word.group().decode("utf-8", "replace") if word else "\\"
            raise UnsafeDumpError(f"psql meta-command {name}", self._line, _excerpt(line))
        command = match.group(1).decode()
        argument = (match.group(2) or b"").strip()
        if command in ("restrict", "unrestrict"):
            if not _PG_RESTRICT_KEY.fullmatch(argument):
                raise UnsafeDumpError(f"psql meta-command \\{command} with an unexpected key", self._line, _excerpt(line))
            self.statistics.statements[f"\\{command}"] += 1
            return
        name = argument.decode("utf-8", "replace")
        if name.startswith('"') and name.endswith('"') and len(name) >= 2:
            name = name[1:-1].replace('""', '"')
        if self.database is None or name != self.database:
            raise UnsafeDumpError(
                "psql meta-command \\connect to another database", self._line, _excerpt(line)
            )
        self.statistics.statements["\\connect"] += 1

    def _insert_problem(self, line: bytes) -> str:
        """Name what is wrong with an INSERT line the grammar refused."""
        if self._delimiter != ";":
            return "an INSERT inside a DELIMITER block"
        text = line.decode("utf-8", "replace")
        refused = _search_kind(text, _MYSQL_REFUSED)
        if refused is not None:
            return refused
        if "\\!" in text or re.search(r"\bsystem\b", text, re.IGNORECASE):
            return "an INSERT carrying something other than values (a client command?)"
        return "an INSERT that is not one row of literal values"

    def _map_collations(self, statement: bytes) -> bytes:
        def replace(match: re.Match[bytes]) -> bytes:
            name = match.group().decode("ascii")
            self.statistics.mapped_collations[name] += 1
            return mariadb_collation_for(name).encode("ascii")

        if b"0900_" not in statement:
            return statement
        return _MYSQL8_COLLATION.sub(replace, statement)

    # -- long INSERT lines --------------------------------------------------------------

    def _start_long_line(self, head: bytes, out: list[bytes]) -> None:
        """A line longer than the limit: it must be an INSERT, checked and passed on as it streams."""
        line_number = self._line + 1
        if not self._mysql or self._statement or self._delimiter != ";" or not head.startswith(b"INSERT INTO "):
            raise UnsafeDumpError(
                f"a line longer than {self.max_statement_bytes} bytes that is not an INSERT row",
                line_number,
                _excerpt(head),
            )
        match = _INSERT_PREFIX.match(head)
        if match is None:
            raise UnsafeDumpError("an INSERT that is not one row of literal values", line_number, _excerpt(head))
        self.statistics.long_lines += 1
        self._long = _LongInsert(self._backslash_escapes, line_number)
        out.append(head[: match.end()])
        out.append(self._long.feed(head[match.end() :]))


def _merge_rows(buffer: bytes, start: int, end: int, limit: int) -> tuple[list[bytes], int, int]:
    """Merge ``buffer[start:end]``, a run of INSERT lines the grammar accepted, into multi-row INSERTs.

    Returns the pieces of the merged run, how many lines the run held and how many
    statements the pieces hold. Each statement is at most ``limit`` bytes, unless
    one row alone is longer.

    Why plain byte operations are safe here: the INSERT grammar allows no newline
    inside a string, an identifier or an escape, so in an accepted run every ``\n``
    ends a line and every line is exactly one ``INSERT INTO `t` [(columns)] VALUES
    rows;``. Two neighbouring lines are joined (``;\n`` and the second line's
    statement prefix become ``,``) only when both have the byte-identical prefix, so
    the merged statement says the same about every row; a line ending in ``;\r\n``
    is never joined to the next.
    """
    pieces: list[bytes] = []
    lines_total = 0
    statements = 0
    while start < end:
        stop = end
        if end - start > limit:
            cut = buffer.rfind(b"\n", start, start + limit)
            stop = cut + 1 if cut >= 0 else buffer.index(b"\n", start) + 1
        segment = buffer[start:stop]
        start = stop
        prefix_match = _INSERT_PREFIX.match(segment)
        assert prefix_match is not None  # the grammar accepted these lines
        prefix = prefix_match.group()
        lines = segment.count(b"\n")
        lines_total += lines
        if segment.count(b"\n" + prefix) == lines - 1:
            # Every line has the first one's prefix (the usual run: one table's rows).
            merged = segment.replace(b";\n" + prefix, b",")
            # Each join shortened the segment by the separator less the comma.
            statements += lines - (len(segment) - len(merged)) // (len(prefix) + 1)
        else:
            merged = _merge_mixed_rows(segment)
            statements += merged.count(b"\n")
        pieces.append(merged)
    return pieces, lines_total, statements


def _merge_mixed_rows(segment: bytes) -> bytes:
    """Merge a segment of accepted INSERT lines whose prefixes differ, line by line (rare)."""
    lines = segment.split(b"\n")
    lines.pop()  # the segment ends with a newline
    out = bytearray()
    previous_prefix = b""
    previous_line = b""
    for line in lines:
        match = _INSERT_PREFIX.match(line)
        assert match is not None
        prefix = match.group()
        if out and prefix == previous_prefix and previous_line.endswith(b";"):
            del out[-2:]  # the previous line's ";\n"
            out += b","
            out += line[len(prefix) :]
        else:
            out += line
        out += b"\n"
        previous_prefix = prefix
        previous_line = line
    return bytes(out)


def _excerpt(data: bytes) -> str:
    text = data[:_EXCERPT].decode("utf-8", "replace").rstrip("\r\n")
    text = "".join(character if character.isprintable() else "?" for character in text)
    return text + ("..." if len(data) > _EXCERPT else "")


# One token of an INSERT's values, outside strings (for lines checked piece by piece).
_LONG_TOKEN = re.compile(rb"[ \t]*+(?:(\()|(\))|(,)|(')|(_binary ?')|(;[ \t]*+\r?\n)|(0x[0-9A-Fa-f]*+)|(NULL|" + _NUMBER + rb"|[Xx]'[0-9A-Fa-f]*+'))")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]*+")
_STRING_RUN_BACKSLASH = re.compile(rb"[^'\\\n]*+")
_STRING_RUN_PLAIN = re.compile(rb"[^'\\\n]*+")
_CARRY = 64


class _LongInsert:
    """Checks the values of one very long INSERT line piece by piece; passes on what it checked.

    The grammar is the same as the one-line pattern: rows of literals separated by
    commas, a ``;`` and the end of the line. The ``;`` and the newline are passed on
    only once both arrived, so what was passed on before a refusal never ends a statement.
    """

    def __init__(self, backslash_escapes: bool, line: int) -> None:
        self.backslash_escapes = backslash_escapes
        self.line = line
        self.carry = b""
        self.state = "row_start"  # row_start, value, after_value, after_row, string, hex, done
        self.in_row = False
        self.bytes = 0

    def _refuse(self, data: bytes, position: int) -> UnsafeDumpError:
        return UnsafeDumpError("an INSERT that is not one row of literal values", self.line, _excerpt(data[position:]))

    def feed(self, data: bytes) -> bytes:
        """Check the next piece of the line; return the bytes safe to pass on. Raises UnsafeDumpError."""
        buffer = self.carry + data if self.carry else data
        self.bytes += len(data)
        position = 0
        length = len(buffer)
        while position < length:
            state = self.state
            if state == "string":
                run = _STRING_RUN_BACKSLASH.match(buffer, position)
                assert run is not None
                position = run.end()
                if position >= length:
                    break
                character = buffer[position]
                if character == 0x5C:  # backslash
                    if not self.backslash_escapes:
                        raise self._refuse(buffer, position)
                    if position + 1 >= length:
                        break
                    if buffer[position + 1] == 0x0A:
                        raise self._refuse(buffer, position)
                    position += 2
                    continue
                if character == 0x0A:
                    raise self._refuse(buffer, position)
                # A quote: doubled (data) or closing.
                if position + 1 >= length:
                    break
                if buffer[position + 1] == 0x27:
                    position += 2
                    continue
                position += 1
                self.state = "after_value"
                continue
            if state == "hex":
                run = _HEX_DIGITS.match(buffer, position)
                assert run is not None
                position = run.end()
                if position >= length:
                    break
                self.state = "after_value"
                continue
            if state == "done":
                raise self._refuse(buffer, position)
            match = _LONG_TOKEN.match(buffer, position)
            if match is None or match.lastindex == 8 and match.end() == length:
                if length - position < _CARRY:
                    break  # maybe a token cut by the chunk boundary: wait for the rest
                raise self._refuse(buffer, position)
            token = match.lastindex
            if state == "row_start":
                if token != 1:
                    raise self._refuse(buffer, position)
                self.state = "value"
            elif state == "value":
                if token == 4:
                    self.state = "string"
                elif token == 5:
                    self.state = "string"
                elif token == 7:
                    self.state = "hex"
                elif token == 8:
                    self.state = "after_value"
                else:
                    raise self._refuse(buffer, position)
            elif state == "after_value":
                if token == 3:
                    self.state = "value"
                elif token == 2:
                    self.state = "after_row"
                else:
                    raise self._refuse(buffer, position)
            elif state == "after_row":
                if token == 3:
                    self.state = "row_start"
                elif token == 6:
                    self.state = "done"
                    position = match.end()
                    continue
                else:
                    raise self._refuse(buffer, position)
            position = match.end()
        self.carry = buffer[position:]
        return buffer[:position]

    def finish(self, line: int) -> bytes:
        """The line ended: return the rest. Raises UnsafeDumpError unless the INSERT ended properly."""
        if self.state != "done" or self.carry.strip():
            raise UnsafeDumpError("an INSERT that is not one row of literal values", line, _excerpt(self.carry))
        return b""


def guard_dump(
    chunks: Iterable[bytes],
    dialect: str,
    *,
    map_mysql8_collations: bool = False,
    database: str | None = None,
    statistics: GuardStatistics | None = None,
    merge_inserts: bool = False,
    merged_statement_bytes: int = DEFAULT_MERGED_STATEMENT_BYTES,
) -> Iterator[bytes]:
    """Yield the dump read from ``chunks`` with every statement vetted (see the module docstring).

    Chunks may split the dump anywhere; empty pieces are not yielded. When
    ``statistics`` is given it is filled in as the dump passes. ``merge_inserts``
    merges MariaDB INSERT rows into multi-row statements (see :class:`SqlGuard`).
    Raises UnsafeDumpError at the first refused statement, before passing it on,
    and ValueError for a bad dialect or limit.
    """
    guard = SqlGuard(
        dialect,
        map_mysql8_collations=map_mysql8_collations,
        database=database,
        merge_inserts=merge_inserts,
        merged_statement_bytes=merged_statement_bytes,
    )
    if statistics is not None:
        guard.statistics = statistics
    for chunk in chunks:
        piece = guard.feed(chunk)
        if piece:
            yield piece
    piece = guard.finish()
    if piece:
        yield piece
