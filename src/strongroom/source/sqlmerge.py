"""Merge a one-row-per-line MariaDB/MySQL dump into multi-row INSERTs, streaming.

strongroom dumps with ``mariadb-dump --skip-extended-insert`` (one ``INSERT`` per
row, so that the repository can deduplicate rows), but loading one statement per row
is slow. :class:`InsertMerger` turns consecutive lines of the form::

    INSERT INTO `t` VALUES (...);

into statements of the form ``INSERT INTO `t` VALUES (...),(...),...;`` of at most
``max_statement_bytes`` bytes (1 MiB by default, well below any sane
``max_allowed_packet``) and copies every other byte of the dump unchanged.

Why the result loads to the same database:

- only whole lines that the grammar below accepts completely are merged; anything
  else (a line it does not understand, a line longer than the limit, a row split
  over lines) is copied byte for byte, after closing the statement being built;
- rows are merged only when their statement prefix (``INSERT INTO `t` VALUES ``,
  with ``INSERT IGNORE``/``REPLACE`` and an optional column list) is byte-identical,
  so the merged statement says the same thing about every row;
- nothing is merged while a ``DELIMITER`` other than ``;`` is in force (trigger and
  routine bodies are copied as they are), nor on a line that does not begin a new
  statement (the previous line did not end one);
- a quoted string follows the escaping rules in force: backslash escapes, or only
  doubled quotes after a ``SQL_MODE`` that names ``NO_BACKSLASH_ESCAPES``. Inside a
  string, ``);``, ``,(``, quotes, backslashes and escaped newlines are data; binary
  values are ``0x...`` hex or ``_binary '...'`` strings, NULL is a bare word.

Memory stays bounded by about ``max_statement_bytes`` plus one input chunk: a line
longer than the limit is streamed through unchanged as it arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DEFAULT_MAX_STATEMENT_BYTES = 1 << 20
MINIMUM_STATEMENT_BYTES = 1024

# The statement prefix: INSERT [IGNORE] INTO / REPLACE INTO, a backquoted table name,
# an optional column list of backquoted names, then " VALUES ".
_IDENTIFIER = rb"`(?:[^`\n]|``)++`"
_PREFIX = re.compile(
    rb"(?:INSERT(?: IGNORE)?|REPLACE) INTO "
    + _IDENTIFIER
    + rb"(?: \("
    + _IDENTIFIER
    + rb"(?:, ?"
    + _IDENTIFIER
    + rb")*+\))? VALUES ?"
)


def _tuples_pattern(string: bytes) -> re.Pattern[bytes]:
    """A pattern for ``(v, ...)[,(v, ...)]*``: values are bare words/numbers or quoted strings."""
    tuple_ = rb"\((?:[^'()\n]++|" + string + rb")*+\)"
    return re.compile(tuple_ + rb"(?:," + tuple_ + rb")*+")


# A quoted string with backslash escapes ('it\'s', 'a\\b', 'x\ny'); '' is two strings side by side.
_TUPLES_BACKSLASH = _tuples_pattern(rb"'[^'\\\n]*+(?:\\[^\n][^'\\\n]*+)*+'")
# Under NO_BACKSLASH_ESCAPES a backslash is an ordinary character; quotes are doubled.
_TUPLES_PLAIN = _tuples_pattern(rb"'[^'\n]*+'")

_DELIMITER = re.compile(rb"\s*DELIMITER\s+(\S+)\s*\Z", re.IGNORECASE)
_SQL_MODE = re.compile(rb"SQL_MODE\s*=", re.IGNORECASE)


@dataclass
class MergeStatistics:
    """What a merger did: lines read, rows merged and statements written for them."""

    lines: int = 0
    rows: int = 0
    statements: int = 0
    copied_lines: int = 0
    long_lines: int = 0


class InsertMerger:
    """A push-style merger: :meth:`feed` it chunks, then :meth:`finish`; both return output bytes.

    Concatenating every returned piece gives the merged dump. The merger keeps at most
    ``max_statement_bytes`` of an unfinished line; ``statistics`` counts its work.
    Raises ValueError for a limit below 1 KiB.
    """

    def __init__(self, max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES) -> None:
        if max_statement_bytes < MINIMUM_STATEMENT_BYTES:
            raise ValueError(f"max_statement_bytes must be at least {MINIMUM_STATEMENT_BYTES}")
        self.max_statement_bytes = max_statement_bytes
        self.statistics = MergeStatistics()
        self._pending = b""  # the start of a line whose end has not arrived
        self._streaming = False  # in the middle of a long line copied as it arrives
        self._streaming_start = b""
        self._streaming_tail = b""
        self._delimiter = b";"
        self._backslash_escapes = True
        self._at_statement_start = True
        self._group_prefix: bytes | None = None  # prefix of the statement being built
        self._group_size = 0
        self._finished = False

    @property
    def buffered_bytes(self) -> int:
        """How many input bytes the merger holds (always at most ``max_statement_bytes``)."""
        return len(self._pending)

    # -- the public interface -----------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take the next chunk of the dump; return the output it completes (maybe empty)."""
        if self._finished:
            raise ValueError("feed() after finish()")
        out = bytearray()
        if self._streaming:
            end = data.find(b"\n")
            if end < 0:
                out += data
                self._remember_tail(data)
                return bytes(out)
            out += data[: end + 1]
            self._remember_tail(data[:end])
            self._end_long_line()
            data = data[end + 1 :]
        buffer = self._pending + data if self._pending else data
        position = 0
        length = len(buffer)
        while position < length:
            end = buffer.find(b"\n", position)
            if end < 0:
                break
            self._line(buffer[position : end + 1], out)
            position = end + 1
        rest = buffer[position:]
        if len(rest) > self.max_statement_bytes:
            self._close_group(out)
            out += rest
            self._streaming = True
            self._streaming_start = rest[:2]
            self._streaming_tail = b""
            self._remember_tail(rest)
            self.statistics.long_lines += 1
            self._pending = b""
        else:
            self._pending = rest
        return bytes(out)

    def finish(self) -> bytes:
        """End of input: return the last output (the closing of a statement, an unfinished last line)."""
        out = bytearray()
        if not self._finished:
            self._finished = True
            if self._streaming:
                self._end_long_line()
            elif self._pending:
                # A last line without a newline is copied as it is, never merged.
                self._close_group(out)
                out += self._pending
                self.statistics.lines += 1
                self.statistics.copied_lines += 1
                self._pending = b""
            self._close_group(out)
        return bytes(out)

    # -- lines --------------------------------------------------------------------------

    def _line(self, line: bytes, out: bytearray) -> None:
        """Handle one whole line (with its newline): merge it or copy it."""
        self.statistics.lines += 1
        if self._delimiter == b";" and self._at_statement_start and line.startswith((b"INSERT", b"REPLACE")):
            values = self._mergeable(line)
            if values is not None:
                prefix, start = values
                self._add_row(line, prefix, start, out)
                return
        self._close_group(out)
        out += line
        self.statistics.copied_lines += 1
        self._after_copied_line(line[:-1])

    def _mergeable(self, line: bytes) -> tuple[bytes, int] | None:
        """Return (prefix, start of the values) when ``line`` is a complete INSERT, else None."""
        if len(line) < 4 or line[-2:-1] != b";":
            return None
        match = _PREFIX.match(line)
        if match is None:
            return None
        tuples = _TUPLES_BACKSLASH if self._backslash_escapes else _TUPLES_PLAIN
        if tuples.fullmatch(line, match.end(), len(line) - 2) is None:
            return None
        return match.group(0), match.end()

    def _add_row(self, line: bytes, prefix: bytes, start: int, out: bytearray) -> None:
        values = line[start:-2]  # without ";\n"
        self.statistics.rows += 1
        self._at_statement_start = True
        if (
            self._group_prefix == prefix
            and self._group_size + 1 + len(values) + 2 <= self.max_statement_bytes
        ):
            out += b","
            out += values
            self._group_size += 1 + len(values)
            return
        self._close_group(out)
        out += prefix
        out += values
        self._group_prefix = prefix
        self._group_size = len(prefix) + len(values)
        self.statistics.statements += 1

    def _close_group(self, out: bytearray) -> None:
        if self._group_prefix is not None:
            out += b";\n"
            self._group_prefix = None
            self._group_size = 0

    def _after_copied_line(self, content: bytes) -> None:
        """Follow the state a copied line changes: delimiter, escaping, statement boundary."""
        if len(content) < 256:
            delimiter = _DELIMITER.match(content)
            if delimiter is not None:
                self._delimiter = delimiter.group(1)
                self._at_statement_start = True
                return
        if _SQL_MODE.search(content) is not None:
            self._backslash_escapes = b"NO_BACKSLASH_ESCAPES" not in content.upper()
        self._at_statement_start = self._ends_statement(content[:2], content[-64:])

    def _ends_statement(self, start: bytes, tail: bytes) -> bool:
        """True when a line (given by its first bytes and its last bytes) leaves no statement open."""
        stripped = tail.rstrip()
        if not stripped and not start.strip():
            return True  # an empty line
        if start == b"--":
            return True  # a comment line
        return stripped.endswith(self._delimiter)

    # -- long lines ---------------------------------------------------------------------

    def _remember_tail(self, data: bytes) -> None:
        self._streaming_tail = (self._streaming_tail + data[-64:])[-64:]

    def _end_long_line(self) -> None:
        self._streaming = False
        self.statistics.lines += 1
        self.statistics.copied_lines += 1
        self._at_statement_start = self._ends_statement(self._streaming_start, self._streaming_tail)
        self._streaming_start = b""
        self._streaming_tail = b""


def merge_inserts(
    chunks: Iterable[bytes], *, max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES
) -> Iterator[bytes]:
    """Yield the dump read from ``chunks`` with consecutive single-row INSERTs merged.

    Chunks may split the dump anywhere. Pieces of output are yielded as they are ready
    (empty pieces are not). Raises ValueError for a limit below 1 KiB.
    """
    merger = InsertMerger(max_statement_bytes)
    for chunk in chunks:
        piece = merger.feed(chunk)
        if piece:
            yield piece
    piece = merger.finish()
    if piece:
        yield piece
