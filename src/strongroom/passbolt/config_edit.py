"""Careful edits of passbolt's configuration text: one value at a time, everything else byte for byte.

A restore onto another server changes a few values of the restored configuration
(the datasource when the target database differs, the server key paths when the
layout differs) and must leave the rest exactly as the administrator wrote it:
comments, order, ``env()`` calls and all.

- :func:`set_php_values` edits a ``passbolt.php`` (``return [...]``): a value that is
  a literal is replaced, a value written as ``env('NAME', default)`` gets a new
  default (the environment still wins, as in passbolt), a missing key is added to
  its array. Anything else (a concatenation, a constant) is refused with a message
  saying which key to edit by hand. The result is parsed again and must say the new
  values, or nothing is returned.
- :func:`set_env_values` edits a Docker env file (``NAME=value`` lines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.errors import SourceError
from strongroom.source.php import Token, _Lexer, parse_php, read_dotted

Value = str | int


def php_literal(value: Value) -> str:
    """``value`` as a PHP literal: a single-quoted string or an integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _line_offsets(text: str) -> list[int]:
    offsets = [0, 0]  # lines are numbered from 1
    for index, char in enumerate(text):
        if char == "\n":
            offsets.append(index + 1)
    return offsets


def _string_end(text: str, start: int) -> int:
    """The offset just after the quoted string that starts at ``start``."""
    quote = text[start]
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == quote:
            return position + 1
        position += 1
    raise SourceError("a string in the configuration is never closed")


@dataclass
class _Located:
    token: Token
    start: int
    end: int


@dataclass
class _ArrayFrame:
    path: tuple[str, ...]
    closer: str
    is_array: bool


def _locate(text: str, path: str) -> list[_Located]:
    tokens = _Lexer(text, path).tokens()
    offsets = _line_offsets(text)
    located = []
    for token in tokens:
        start = offsets[token.line] + token.column - 1 if token.line < len(offsets) else len(text)
        if token.kind == "string":
            end = _string_end(text, start)
        elif token.kind == "end":
            end = start
        else:
            end = start + len(str(token.value)) if token.kind in ("punct", "name") else start
            if token.kind == "number":
                match = re.compile(r"[0-9A-Fa-fxXbB_.eE+-]+").match(text, start)
                end = match.end() if match else start
        located.append(_Located(token, start, end))
    return located


@dataclass
class _Slot:
    """Where one key's value is: the span to replace, or (missing) where to insert."""

    start: int
    end: int
    literal_kind: str  # "string", "number" or "null"


_PROPERTY_WORDS = frozenset({"public", "protected", "private", "var", "static"})


def _find_slots(text: str, file_name: str, keys: Sequence[tuple[str, ...]]) -> tuple[dict[tuple[str, ...], _Slot], dict[tuple[str, ...], int]]:
    """The value spans of ``keys`` and, for every array met, the offset of its closing bracket."""
    located = _locate(text, file_name)
    wanted = set(keys)
    slots: dict[tuple[str, ...], _Slot] = {}
    closers: dict[tuple[str, ...], int] = {}
    stack: list[_ArrayFrame] = []
    pending: str | None = None
    index = 0
    while index < len(located):
        item = located[index]
        token = item.token
        following = located[index + 1].token if index + 1 < len(located) else None
        current = stack[-1].path if stack else ()
        if (token.kind == "variable" and index and located[index - 1].token.kind == "name"
                and str(located[index - 1].token.value).lower() in _PROPERTY_WORDS
                and following is not None and following.value == "="):
            # a class property (v1's ``public $default = array(...)``): its array's keys are "$default.host"
            pending = "$" + str(token.value)
            index += 2
            continue
        if token.kind == "string" and following is not None and following.kind == "punct" and following.value == "=>":
            pending = str(token.value)
            key_path = current + (pending,)
            if key_path in wanted and stack and stack[-1].is_array:
                slots[key_path] = _value_slot(located, index + 2, key_path)
            index += 2
            continue
        if token.kind == "punct" and token.value == "[":
            stack.append(_ArrayFrame(current + ((pending,) if pending is not None else ()), "]", True))
            pending = None
        elif token.kind == "name" and str(token.value).lower() == "array" and following is not None and following.value == "(":
            stack.append(_ArrayFrame(current + ((pending,) if pending is not None else ()), ")", True))
            pending = None
            index += 2
            continue
        elif token.kind == "punct" and token.value == "(":
            stack.append(_ArrayFrame(current, ")", False))
        elif token.kind == "punct" and token.value in ("]", ")"):
            if stack:
                frame = stack.pop()
                if frame.is_array:
                    closers.setdefault(frame.path, item.start)
            pending = None
        elif token.kind == "punct" and token.value == ",":
            pending = None
        index += 1
    return slots, closers


def _value_slot(located: list[_Located], index: int, key_path: tuple[str, ...]) -> _Slot:
    dotted = ".".join(key_path)
    first = located[index]
    token = first.token
    after = located[index + 1].token if index + 1 < len(located) else None

    def ends_value(candidate: Token | None) -> bool:
        return candidate is not None and candidate.kind == "punct" and candidate.value in (",", "]", ")")

    if token.kind in ("string", "number") and ends_value(after):
        return _Slot(first.start, first.end, token.kind)
    if token.kind == "name" and str(token.value).lower() == "null" and ends_value(after):
        return _Slot(first.start, first.end, "null")
    if token.kind == "name" and token.value in ("env", "getenv") and after is not None and after.value == "(":
        # env('NAME', default): replace the default, or add one.
        name_token = located[index + 2]
        separator = located[index + 3]
        if name_token.token.kind == "string" and separator.token.value == ",":
            default = located[index + 4]
            closing = located[index + 5]
            if default.token.kind in ("string", "number") and closing.token.value == ")":
                return _Slot(default.start, default.end, default.token.kind)
            if default.token.kind == "name" and str(default.token.value).lower() == "null" and closing.token.value == ")":
                return _Slot(default.start, default.end, "null")
        if name_token.token.kind == "string" and separator.token.value == ")" and token.value == "env":
            return _Slot(name_token.end, name_token.end, "insert-default")
    raise SourceError(
        f"the configuration sets {dotted} with an expression strongroom does not rewrite",
        hint=f"edit {dotted} in the restored configuration by hand",
    )


def set_php_values(
    text: str, values: Mapping[str, Value], *, file_name: str = "passbolt.php", constants: Mapping[str, Any] | None = None
) -> str:
    """Return ``text`` with each dotted key of ``values`` set (``Datasources.default.host``; a class
    property's array by the property's name: ``$default.host`` in v1's ``database.php``).

    ``constants`` are the layout's path constants (``CONFIG``, ``DS``), for reading the result back.
    Only the value spans change; a missing key is added at the end of its array
    (whose parent path must exist). The result is parsed again and must read back
    the new values. Raises SourceError naming the key when that cannot be done safely.
    """
    keys = [tuple(dotted.split(".")) for dotted in values]
    slots, closers = _find_slots(text, file_name, keys)
    edits: list[tuple[int, int, str]] = []
    insertions: dict[int, list[str]] = {}
    for dotted, value in values.items():
        key = tuple(dotted.split("."))
        slot = slots.get(key)
        if slot is not None:
            if slot.literal_kind == "insert-default":
                edits.append((slot.start, slot.end, ", " + php_literal(value)))
            else:
                literal = php_literal(int(value) if slot.literal_kind == "number" and str(value).isdigit() else value)
                edits.append((slot.start, slot.end, literal))
            continue
        parent = key[:-1]
        if parent not in closers:
            raise SourceError(
                f"{file_name} has no array {'.'.join(parent)} to add {dotted} to",
                hint=f"add {dotted} to the restored {file_name} by hand",
            )
        insertions.setdefault(closers[parent], []).append(f"{php_literal(key[-1])} => {php_literal(value)},")
    for offset, lines in insertions.items():
        line_start = text.rfind("\n", 0, offset) + 1
        closing_indent = re.match(r"[ \t]*", text[line_start:offset])
        indent = (closing_indent.group(0) if closing_indent else "") + "    "
        before = text[line_start:offset]
        if before.strip():
            # The closing bracket shares a line with a value: put the new entries before it.
            addition = " " + " ".join(lines) + " "
        else:
            addition = "".join(f"    {line}\n{indent[:-4]}" for line in lines)
        previous = len(text[:offset].rstrip()) - 1
        if previous >= 0 and text[previous] not in ",[(":
            # The last entry has no trailing comma: give it one.
            if previous + 1 == offset:
                addition = "," + addition
            else:
                edits.append((previous + 1, previous + 1, ","))
        edits.append((offset, offset, addition))
    result = text
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0], reverse=True):
        if start < end and result[start:end].strip() == "":
            raise SourceError(f"cannot locate a value in {file_name}")
        result = result[:start] + replacement + result[end:]
    check = parse_php(result, path=file_name, environment={}, constants=constants)
    data = check.returned if check.returned is not None else check.configure
    if check.classes:
        data = {**data, **{f"${name}": value for properties in check.classes.values() for name, value in properties.items()}}
    for dotted, value in values.items():
        if str(read_dotted(data, dotted)) != str(value):
            raise SourceError(
                f"rewriting {dotted} in {file_name} did not give the expected value",
                hint=f"edit {dotted} in the restored {file_name} by hand",
            )
    return result


_ENV_LINE = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$")


def env_value(value: str) -> str:
    """``value`` as written in an env file: bare when plain, double-quoted otherwise."""
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,\\-]*", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def set_env_values(text: str, values: Mapping[str, str]) -> str:
    """Return the env file ``text`` with each ``NAME=value`` of ``values`` set (replaced in place, else appended)."""
    lines = text.splitlines(keepends=True)
    remaining = dict(values)
    for number, line in enumerate(lines):
        match = _ENV_LINE.match(line.rstrip("\n"))
        if match and match.group(2) in remaining:
            ending = "\n" if line.endswith("\n") else ""
            lines[number] = f"{match.group(1)}{match.group(2)}{match.group(3)}{env_value(remaining.pop(match.group(2)))}{ending}"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines += [f"{name}={env_value(value)}\n" for name, value in remaining.items()]
    return "".join(lines)


def read_env_values(text: str) -> dict[str, str]:
    """The ``NAME=value`` pairs of an env file (quotes removed; comments and other lines skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        value = match.group(4).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            value = value.replace('\\"', '"').replace("\\$", "$").replace("\\\\", "\\")
        values[match.group(2)] = value
    return values
