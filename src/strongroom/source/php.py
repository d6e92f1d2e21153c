"""A reader for the PHP that passbolt configuration files are written in, without running PHP.

passbolt's configuration (``passbolt.php``, ``app.php``, ``version.php``, v1's
``database.php`` and ``app.php``) is PHP source that builds arrays. This module
reads the subset those files use and evaluates it to Python values:

- ``<?php`` ... ``?>``, comments of all three kinds (``//``, ``#``, ``/* */``);
- ``return [...];``, ``$config = [...];`` and ``$config['a']['b'] = ...;``;
- ``class DATABASE_CONFIG { public $default = array(...); }`` (v1);
- ``Configure::write('Key.path', value);`` and ``define('NAME', value);``;
- ``namespace``, ``use`` and ``declare(...)`` statements (ignored);
- array literals (``[...]`` and ``array(...)``, keyed, unkeyed, nested, trailing commas),
  strings in both quote styles with their escapes (no interpolation of variables),
  integers, floats, ``true``/``false``/``null``;
- constants with values for the layout (``CONFIG``, ``ROOT``, ``APP``, ``DS``, ``TMP``,
  ...), ``__DIR__``, ``__FILE__``, ``Name::class``;
- ``env('NAME', default)`` and ``getenv('NAME')`` with the given environment,
  ``filter_var(value, FILTER_VALIDATE_BOOLEAN|FILTER_VALIDATE_INT)``, casts
  ``(int)``/``(bool)``/``(string)``/``(float)``, ``.`` concatenation, ``??``,
  ``?:`` and ``a ? b : c``, ``!``, unary ``-``/``~``, ``|``/``&`` (for ``E_ALL & ~E_DEPRECATED``)
  and ``==``/``===``/``!=``/``!==``.

Anything else raises :class:`~strongroom.errors.SourceError` naming the file, the
line and column and what was not understood. PHP arrays become ``dict`` when any
entry has a key and ``list`` otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.errors import SourceError

# PHP's predefined constants that passbolt's files use, with PHP 8's values.
PHP_CONSTANTS: dict[str, Any] = {
    "E_ERROR": 1,
    "E_WARNING": 2,
    "E_PARSE": 4,
    "E_NOTICE": 8,
    "E_CORE_ERROR": 16,
    "E_CORE_WARNING": 32,
    "E_COMPILE_ERROR": 64,
    "E_COMPILE_WARNING": 128,
    "E_USER_ERROR": 256,
    "E_USER_WARNING": 512,
    "E_USER_NOTICE": 1024,
    "E_STRICT": 2048,
    "E_RECOVERABLE_ERROR": 4096,
    "E_DEPRECATED": 8192,
    "E_USER_DEPRECATED": 16384,
    "E_ALL": 32767,
    "FILTER_VALIDATE_BOOLEAN": 258,
    "FILTER_VALIDATE_BOOL": 258,
    "FILTER_VALIDATE_INT": 257,
    "FILTER_VALIDATE_FLOAT": 259,
    "FILTER_DEFAULT": 516,
    "FILTER_NULL_ON_FAILURE": 134217728,
    "PHP_INT_MAX": 9223372036854775807,
    "PHP_EOL": "\n",
    "DIRECTORY_SEPARATOR": "/",
}

_KEYWORD_VALUES: dict[str, Any] = {"true": True, "false": False, "null": None}

_PUNCTUATION = (
    "===", "!==", "...", "=>", "::", "??", "?:", "==", "!=", "<>", "&&", "||",
    "[", "]", "(", ")", "{", "}", ",", ";", "=", ".", "?", ":", "!", "-", "+", "~", "|", "&", "*", "/", "<", ">", "@",
)

_UNSUPPORTED_STATEMENTS = frozenset(
    "if else elseif for foreach while do switch function fn echo print include include_once require "
    "require_once eval exit die try throw goto global static unset list new".split()
)

_CASTS = {"int": int, "integer": int, "bool": bool, "boolean": bool, "string": str, "float": float, "double": float}


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind (``string``, ``number``, ``name``, ``variable``, ``punct``, ``end``)."""

    kind: str
    value: Any
    line: int
    column: int


@dataclass
class PhpFile:
    """What evaluating a PHP configuration file produced.

    ``returned`` is the value of its ``return`` statement (None when it has none),
    ``variables`` its top-level assignments, ``classes`` each class's public
    properties, ``configure`` the values of ``Configure::write`` calls (dotted keys
    expanded into nested dicts), ``constants`` those made by ``define``.
    """

    path: str
    returned: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    configure: dict[str, Any] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    has_return: bool = False


class _Lexer:
    """Turns PHP source into tokens; the text before ``<?php`` and after ``?>`` is skipped."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.position = 0
        self.line = 1
        self.line_start = 0

    def error(self, message: str, line: int | None = None, column: int | None = None) -> SourceError:
        line = self.line if line is None else line
        column = (self.position - self.line_start + 1) if column is None else column
        return parse_error(self.path, line, column, message)

    def _advance(self, count: int) -> None:
        chunk = self.text[self.position : self.position + count]
        newlines = chunk.count("\n")
        if newlines:
            self.line += newlines
            self.line_start = self.position + chunk.rfind("\n") + 1
        self.position += count

    def tokens(self) -> list[Token]:
        opening = re.search(r"<\?php\b|<\?=", self.text)
        if opening is None:
            raise self.error("no '<?php' opening tag: this is not a PHP file", 1, 1)
        self._advance(opening.end())
        result: list[Token] = []
        text = self.text
        while True:
            self._skip_space_and_comments()
            if self.position >= len(text):
                break
            line, column = self.line, self.position - self.line_start + 1
            rest = text[self.position : self.position + 3]
            if rest.startswith("?>"):
                break
            char = text[self.position]
            if char in "'\"":
                result.append(Token("string", self._string(char), line, column))
                continue
            if char == "$":
                match = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)").match(text, self.position)
                if match is None:
                    raise self.error("a '$' not followed by a variable name")
                self._advance(match.end() - self.position)
                result.append(Token("variable", match.group(1), line, column))
                continue
            number = re.compile(r"0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?|\.\d+").match(
                text, self.position
            )
            if number is not None and (char.isdigit() or char == "."):
                if char != "." or number.group(0) != ".":
                    self._advance(number.end() - self.position)
                    result.append(Token("number", _number(number.group(0)), line, column))
                    continue
            name = re.compile(r"\\?[A-Za-z_][A-Za-z0-9_]*(\\[A-Za-z_][A-Za-z0-9_]*)*").match(text, self.position)
            if name is not None:
                self._advance(name.end() - self.position)
                result.append(Token("name", name.group(0), line, column))
                continue
            for punct in _PUNCTUATION:
                if text.startswith(punct, self.position):
                    self._advance(len(punct))
                    result.append(Token("punct", punct, line, column))
                    break
            else:
                raise self.error(f"unexpected character {char!r}")
        result.append(Token("end", None, self.line, self.position - self.line_start + 1))
        return result

    def _skip_space_and_comments(self) -> None:
        text = self.text
        while self.position < len(text):
            char = text[self.position]
            if char.isspace():
                self._advance(1)
            elif text.startswith("//", self.position) or (char == "#" and not text.startswith("#[", self.position)):
                end = text.find("\n", self.position)
                close = text.find("?>", self.position)
                if close != -1 and (end == -1 or close < end):
                    end = close
                self._advance((len(text) if end == -1 else end) - self.position)
            elif text.startswith("/*", self.position):
                end = text.find("*/", self.position + 2)
                if end == -1:
                    raise self.error("a '/*' comment is never closed")
                self._advance(end + 2 - self.position)
            else:
                return

    def _string(self, quote: str) -> str:
        start_line, start_column = self.line, self.position - self.line_start + 1
        self._advance(1)
        pieces: list[str] = []
        text = self.text
        while True:
            if self.position >= len(text):
                raise self.error("a string is never closed", start_line, start_column)
            char = text[self.position]
            if char == quote:
                self._advance(1)
                return "".join(pieces)
            if char == "\\" and self.position + 1 < len(text):
                following = text[self.position + 1]
                if quote == "'":
                    if following in "'\\":
                        pieces.append(following)
                        self._advance(2)
                    else:
                        pieces.append("\\")
                        self._advance(1)
                    continue
                self._advance(2)
                pieces.append(self._double_quoted_escape(following))
                continue
            if quote == '"' and char == "$" and re.match(r"[A-Za-z_{]", text[self.position + 1 : self.position + 2]):
                raise self.error("variables inside double-quoted strings are not supported")
            pieces.append(char)
            self._advance(1)

    def _double_quoted_escape(self, following: str) -> str:
        simple = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "e": "\x1b", "f": "\f", "\\": "\\", "$": "$", '"': '"', "0": "\0"}
        if following == "x":
            match = re.compile(r"[0-9A-Fa-f]{1,2}").match(self.text, self.position)
            if match:
                self._advance(len(match.group(0)))
                return chr(int(match.group(0), 16))
        if following == "u" and self.text.startswith("{", self.position):
            end = self.text.find("}", self.position)
            if end != -1:
                code = self.text[self.position + 1 : end]
                self._advance(end + 1 - self.position)
                return chr(int(code, 16))
        if following in "01234567":
            match = re.compile(r"[0-7]{0,2}").match(self.text, self.position)
            digits = following + (match.group(0) if match else "")
            self._advance(len(digits) - 1)
            return chr(int(digits, 8) & 0xFF)
        if following in simple:
            return simple[following]
        return "\\" + following


def _number(text: str) -> int | float:
    cleaned = text.replace("_", "")
    if cleaned[:2] in ("0x", "0X"):
        return int(cleaned, 16)
    if cleaned[:2] in ("0b", "0B"):
        return int(cleaned, 2)
    if any(c in cleaned for c in ".eE"):
        return float(cleaned)
    if len(cleaned) > 1 and cleaned.startswith("0"):
        return int(cleaned, 8)
    return int(cleaned)


def parse_error(path: str, line: int, column: int, message: str) -> SourceError:
    """The SourceError for something not understood at ``path:line:column``."""
    return SourceError(
        f"cannot read {path}: line {line}, column {column}: {message}",
        hint="strongroom reads passbolt's configuration without running PHP and understands array literals, "
        "strings, env(), constants and concatenation; fix the file (check it with 'php -l') "
        "or name the values explicitly in the [instance] section of strongroom's configuration",
    )


def to_boolean(value: Any) -> bool | None:
    """PHP's ``filter_var(value, FILTER_VALIDATE_BOOLEAN)``: True, False, or None when not a boolean word."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no", ""):
        return False
    return None


def php_string(value: Any) -> str:
    """How PHP turns ``value`` into a string (concatenation, ``(string)``)."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return "Array"
    return str(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if value is None:
        return 0
    match = re.match(r"\s*[+-]?\d+", str(value))
    return int(match.group(0)) if match else 0


def _loose_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return _truthy(left) == _truthy(right)
    if left is None or right is None:
        return not _truthy(left) and not _truthy(right)
    if isinstance(left, (int, float)) and isinstance(right, str) or isinstance(right, (int, float)) and isinstance(left, str):
        try:
            return float(left) == float(right)
        except ValueError:
            return php_string(left) == php_string(right)
    return bool(left == right)


class _Parser:
    """Recursive descent over the tokens, evaluating expressions as it goes."""

    def __init__(
        self,
        tokens: list[Token],
        path: str,
        constants: Mapping[str, Any],
        environment: Mapping[str, str],
        directory: str,
    ) -> None:
        self.tokens = tokens
        self.index = 0
        self.path = path
        self.constants: dict[str, Any] = {**PHP_CONSTANTS, **constants}
        self.environment = environment
        self.directory = directory
        self.result = PhpFile(path=path)
        self.functions: dict[str, Callable[[list[Any], Token], Any]] = {
            "env": self._env,
            "getenv": self._getenv,
            "filter_var": self._filter_var,
            "define": self._define,
            "defined": lambda args, token: self._name_arg(args, token, "defined") in self.constants,
            "constant": self._constant,
            "dirname": self._dirname,
            "intval": lambda args, token: _to_int(args[0] if args else None),
            "boolval": lambda args, token: _truthy(args[0] if args else None),
            "strval": lambda args, token: php_string(args[0] if args else None),
            "trim": lambda args, token: php_string(args[0] if args else "").strip(),
            "strtolower": lambda args, token: php_string(args[0] if args else "").lower(),
            "is_null": lambda args, token: (args[0] if args else None) is None,
        }

    # -- helpers ---------------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def error(self, message: str, token: Token | None = None) -> SourceError:
        token = token or self.current
        return parse_error(self.path, token.line, token.column, message)

    def describe(self, token: Token) -> str:
        if token.kind == "end":
            return "the end of the file"
        if token.kind == "string":
            return f"the string {token.value!r}"
        if token.kind == "variable":
            return f"${token.value}"
        return repr(token.value)

    def take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, value: str, kind: str = "punct") -> bool:
        token = self.current
        if kind == "name":
            return token.kind == "name" and str(token.value).lower() == value
        return token.kind == kind and token.value == value

    def accept(self, value: str, kind: str = "punct") -> bool:
        if self.at(value, kind):
            self.take()
            return True
        return False

    def expect(self, value: str, what: str) -> Token:
        if not self.at(value):
            raise self.error(f"expected '{value}' {what}, found {self.describe(self.current)}")
        return self.take()

    def end_statement(self) -> None:
        if self.current.kind == "end":
            return
        self.expect(";", "at the end of the statement")

    # -- statements ------------------------------------------------------------

    def parse_file(self) -> PhpFile:
        while self.current.kind != "end":
            if self.statement():
                break
        return self.result

    def statement(self) -> bool:
        """Parse one statement; return True after a ``return`` (the rest is never reached)."""
        token = self.current
        if token.kind == "punct" and token.value == ";":
            self.take()
            return False
        if token.kind == "name":
            word = str(token.value).lower()
            if word == "return":
                self.take()
                self.result.returned = None if self.at(";") else self.expression()
                self.result.has_return = True
                self.end_statement()
                return True
            if word in ("namespace", "use"):
                self.take()
                while not self.at(";") and self.current.kind != "end":
                    self.take()
                self.end_statement()
                return False
            if word == "declare":
                self.take()
                self.expect("(", "after declare")
                while not self.at(")") and self.current.kind != "end":
                    self.take()
                self.expect(")", "closing declare(")
                self.end_statement()
                return False
            if word in ("class", "final", "abstract"):
                self.class_declaration()
                return False
            if word in _UNSUPPORTED_STATEMENTS:
                raise self.error(f"the PHP statement '{token.value}' is not understood (only data, no code)")
        if token.kind == "variable":
            self.assignment()
            return False
        self.expression()
        self.end_statement()
        return False

    def assignment(self) -> None:
        name_token = self.take()
        keys: list[Any] = []
        while self.accept("["):
            if self.at("]"):
                raise self.error("appending with '[]' is not supported")
            keys.append(self.expression())
            self.expect("]", "closing the index")
        self.expect("=", f"after ${name_token.value}")
        value = self.expression()
        self.end_statement()
        name = str(name_token.value)
        if not keys:
            self.result.variables[name] = value
            return
        target = self.result.variables.setdefault(name, {})
        for key in keys[:-1]:
            if not isinstance(target, dict):
                raise self.error(f"${name} is not an array here", name_token)
            target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise self.error(f"${name} is not an array here", name_token)
        target[keys[-1]] = value

    def class_declaration(self) -> None:
        while self.at("final", "name") or self.at("abstract", "name"):
            self.take()
        if not self.accept("class", "name"):
            raise self.error(f"expected 'class', found {self.describe(self.current)}")
        name_token = self.take()
        if name_token.kind != "name":
            raise self.error("expected a class name", name_token)
        if self.accept("extends", "name"):
            self.take()
        self.expect("{", "opening the class body")
        properties: dict[str, Any] = {}
        while not self.accept("}"):
            if self.current.kind == "end":
                raise self.error(f"class {name_token.value} is never closed", name_token)
            visibility = False
            while self.current.kind == "name" and str(self.current.value).lower() in (
                "public", "var", "protected", "private", "static", "readonly",
            ):
                self.take()
                visibility = True
            if self.current.kind == "name" and str(self.current.value).lower() in ("function", "const"):
                raise self.error(f"{self.current.value} declarations inside a class are not supported")
            if not visibility or self.current.kind != "variable":
                raise self.error(f"expected a property declaration, found {self.describe(self.current)}")
            property_name = str(self.take().value)
            properties[property_name] = self.expression() if self.accept("=") else None
            self.expect(";", "after the property")
        self.result.classes[str(name_token.value)] = properties

    # -- expressions -----------------------------------------------------------

    def expression(self) -> Any:
        return self.ternary()

    def ternary(self) -> Any:
        condition = self.coalesce()
        if self.accept("?:"):
            alternative = self.ternary()
            return condition if _truthy(condition) else alternative
        if self.accept("?"):
            if self.accept(":"):
                alternative = self.ternary()
                return condition if _truthy(condition) else alternative
            when_true = self.ternary()
            self.expect(":", "in the '? :' expression")
            when_false = self.ternary()
            return when_true if _truthy(condition) else when_false
        return condition

    def coalesce(self) -> Any:
        left = self.logical_or()
        if self.accept("??"):
            right = self.coalesce()
            return right if left is None else left
        return left

    def logical_or(self) -> Any:
        left = self.logical_and()
        while self.at("||") or self.at("or", "name"):
            self.take()
            right = self.logical_and()
            left = _truthy(left) or _truthy(right)
        return left

    def logical_and(self) -> Any:
        left = self.bitwise_or()
        while self.at("&&") or self.at("and", "name"):
            self.take()
            right = self.bitwise_or()
            left = _truthy(left) and _truthy(right)
        return left

    def bitwise_or(self) -> Any:
        left = self.bitwise_and()
        while self.at("|"):
            self.take()
            left = _to_int(left) | _to_int(self.bitwise_and())
        return left

    def bitwise_and(self) -> Any:
        left = self.equality()
        while self.at("&"):
            self.take()
            left = _to_int(left) & _to_int(self.equality())
        return left

    def equality(self) -> Any:
        left = self.concatenation()
        while self.current.kind == "punct" and self.current.value in ("==", "===", "!=", "!==", "<>"):
            operator = self.take().value
            right = self.concatenation()
            if operator == "===":
                left = type(left) is type(right) and left == right
            elif operator == "!==":
                left = not (type(left) is type(right) and left == right)
            elif operator == "==":
                left = _loose_equal(left, right)
            else:
                left = not _loose_equal(left, right)
        return left

    def concatenation(self) -> Any:
        left = self.additive()
        while self.at("."):
            self.take()
            left = php_string(left) + php_string(self.additive())
        return left

    def additive(self) -> Any:
        left = self.multiplicative()
        while self.at("+") or self.at("-"):
            operator = self.take()
            right = self.multiplicative()
            for value in (left, right):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise self.error(f"'{operator.value}' is only understood between numbers", operator)
            left = left + right if operator.value == "+" else left - right
        return left

    def multiplicative(self) -> Any:
        left = self.unary()
        while self.at("*") or self.at("/"):
            operator = self.take()
            right = self.unary()
            for value in (left, right):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise self.error(f"'{operator.value}' is only understood between numbers", operator)
            if operator.value == "*":
                left = left * right
            else:
                if right == 0:
                    raise self.error("division by zero", operator)
                result = left / right
                left = int(result) if result.is_integer() else result
        return left

    def unary(self) -> Any:
        token = self.current
        if self.accept("!"):
            return not _truthy(self.unary())
        if self.accept("@"):
            return self.unary()
        if self.accept("-") or self.accept("+"):
            value = self.unary()
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise self.error(f"'{token.value}' is only understood before a number", token)
            return -value if token.value == "-" else value
        if self.accept("~"):
            return ~_to_int(self.unary())
        if (
            token.kind == "punct"
            and token.value == "("
            and self.tokens[self.index + 1].kind == "name"
            and str(self.tokens[self.index + 1].value).lower() in _CASTS
            and self.tokens[self.index + 2].kind == "punct"
            and self.tokens[self.index + 2].value == ")"
        ):
            self.take()
            cast = _CASTS[str(self.take().value).lower()]
            self.take()
            value = self.unary()
            if cast is int:
                return _to_int(value)
            if cast is bool:
                return _truthy(value)
            if cast is float:
                return float(_to_int(value)) if not isinstance(value, (int, float)) else float(value)
            return php_string(value)
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.at("["):
            bracket = self.take()
            key = self.expression()
            self.expect("]", "closing the index")
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
                value = value[key]
            else:
                raise self.error(f"index {key!r} does not exist here", bracket)
        return value

    def primary(self) -> Any:
        token = self.take()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "variable":
            if token.value not in self.result.variables:
                raise self.error(f"the variable ${token.value} is used before it is set", token)
            return self.result.variables[token.value]
        if token.kind == "punct":
            if token.value == "[":
                return self.array_items("]", token)
            if token.value == "(":
                value = self.expression()
                self.expect(")", "closing the parenthesis")
                return value
            raise self.error(f"unexpected {self.describe(token)}", token)
        if token.kind == "name":
            return self.name_expression(token)
        raise self.error(f"unexpected {self.describe(token)}", token)

    def name_expression(self, token: Token) -> Any:
        name = str(token.value)
        lower = name.lower().lstrip("\\")
        if lower in _KEYWORD_VALUES:
            return _KEYWORD_VALUES[lower]
        if lower == "array" and self.at("("):
            opening = self.take()
            return self.array_items(")", opening)
        if name == "__DIR__":
            return self.directory
        if name == "__FILE__":
            return self.path
        if self.at("::"):
            self.take()
            member = self.take()
            if member.kind == "name" and str(member.value).lower() == "class":
                return name.lstrip("\\")
            if member.kind == "name" and self.at("("):
                arguments = self.arguments()
                return self.static_call(name.lstrip("\\"), str(member.value), arguments, token)
            raise self.error(f"{name}::{member.value} is not understood", token)
        if self.at("("):
            function = self.functions.get(lower)
            if function is None:
                raise self.error(f"the function {name}() is not understood", token)
            return function(self.arguments(), token)
        if name.lstrip("\\") in self.constants:
            return self.constants[name.lstrip("\\")]
        raise self.error(f"the constant {name} has no known value", token)

    def arguments(self) -> list[Any]:
        self.expect("(", "opening the argument list")
        values: list[Any] = []
        while not self.accept(")"):
            values.append(self.expression())
            if not self.accept(","):
                self.expect(")", "closing the argument list")
                break
        return values

    def array_items(self, closing: str, opening: Token) -> Any:
        keyed: dict[Any, Any] = {}
        any_key = False
        next_index = 0
        while not self.accept(closing):
            if self.current.kind == "end":
                raise self.error(f"the array opened here is never closed with '{closing}'", opening)
            if self.at("..."):
                raise self.error("spreading arrays with '...' is not supported")
            value = self.expression()
            if self.accept("=>"):
                key = value
                value = self.expression()
                if isinstance(key, bool) or key is None:
                    key = int(bool(key)) if key is not None else ""
                elif isinstance(key, float):
                    key = int(key)
                elif isinstance(key, str) and re.fullmatch(r"-?[1-9]\d*|0", key):
                    key = int(key)
                elif not isinstance(key, (str, int)):
                    raise self.error("an array key must be a string or a number", opening)
                any_key = True
                keyed[key] = value
                if isinstance(key, int) and key >= next_index:
                    next_index = key + 1
            else:
                keyed[next_index] = value
                next_index += 1
            if not self.accept(","):
                if not self.at(closing):
                    raise self.error(
                        f"expected ',' or '{closing}' in the array, found {self.describe(self.current)}"
                    )
        if not any_key:
            return list(keyed.values())
        return keyed

    # -- functions ---------------------------------------------------------------

    def _name_arg(self, arguments: list[Any], token: Token, function: str) -> str:
        if not arguments or not isinstance(arguments[0], str):
            raise self.error(f"{function}() needs a name as its first argument", token)
        return arguments[0]

    def _env(self, arguments: list[Any], token: Token) -> Any:
        name = self._name_arg(arguments, token, "env")
        if name in self.environment:
            value: Any = self.environment[name]
            # CakePHP's env() turns these words into PHP values.
            lowered = str(value).lower()
            if lowered in ("true", "(true)"):
                return True
            if lowered in ("false", "(false)"):
                return False
            if lowered in ("null", "(null)"):
                return None
            if lowered in ("empty", "(empty)"):
                return ""
            return value
        return arguments[1] if len(arguments) > 1 else None

    def _getenv(self, arguments: list[Any], token: Token) -> Any:
        name = self._name_arg(arguments, token, "getenv")
        return self.environment.get(name, False)

    def _filter_var(self, arguments: list[Any], token: Token) -> Any:
        if not arguments:
            raise self.error("filter_var() needs a value", token)
        value = arguments[0]
        kind = arguments[1] if len(arguments) > 1 else PHP_CONSTANTS["FILTER_DEFAULT"]
        flags = arguments[2] if len(arguments) > 2 else 0
        null_on_failure = isinstance(flags, int) and bool(flags & PHP_CONSTANTS["FILTER_NULL_ON_FAILURE"])
        if kind == PHP_CONSTANTS["FILTER_VALIDATE_BOOLEAN"]:
            result = to_boolean(value)
            if result is None:
                return None if null_on_failure else False
            return result
        if kind == PHP_CONSTANTS["FILTER_VALIDATE_INT"]:
            text = php_string(value).strip()
            if re.fullmatch(r"[+-]?\d+", text):
                return int(text)
            return None if null_on_failure else False
        if kind == PHP_CONSTANTS["FILTER_VALIDATE_FLOAT"]:
            try:
                return float(php_string(value))
            except ValueError:
                return None if null_on_failure else False
        if kind == PHP_CONSTANTS["FILTER_DEFAULT"]:
            return php_string(value)
        raise self.error(f"filter_var() with filter {kind!r} is not understood", token)

    def _define(self, arguments: list[Any], token: Token) -> bool:
        name = self._name_arg(arguments, token, "define")
        value = arguments[1] if len(arguments) > 1 else None
        self.constants[name] = value
        self.result.constants[name] = value
        return True

    def _constant(self, arguments: list[Any], token: Token) -> Any:
        name = self._name_arg(arguments, token, "constant")
        if name not in self.constants:
            raise self.error(f"the constant {name} has no known value", token)
        return self.constants[name]

    def _dirname(self, arguments: list[Any], token: Token) -> str:
        if not arguments:
            raise self.error("dirname() needs a path", token)
        levels = _to_int(arguments[1]) if len(arguments) > 1 else 1
        path = php_string(arguments[0])
        for _ in range(max(levels, 1)):
            path = os.path.dirname(path.rstrip("/")) or "/"
        return path

    def static_call(self, owner: str, method: str, arguments: list[Any], token: Token) -> Any:
        short = owner.rsplit("\\", 1)[-1]
        if short == "Configure" and method == "write":
            if not arguments:
                raise self.error("Configure::write() needs a key", token)
            key = arguments[0]
            if isinstance(key, dict):
                for name, value in key.items():
                    _write_dotted(self.result.configure, str(name), value)
            else:
                _write_dotted(self.result.configure, php_string(key), arguments[1] if len(arguments) > 1 else None)
            return True
        if short == "Configure" and method == "read":
            if not arguments:
                return self.result.configure
            return read_dotted(self.result.configure, php_string(arguments[0]))
        raise self.error(f"{owner}::{method}() is not understood", token)


def _write_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        existing = target.get(part)
        if not isinstance(existing, dict):
            existing = {}
            target[part] = existing
        target = existing
    target[parts[-1]] = value


def read_dotted(data: Any, dotted: str, default: Any = None) -> Any:
    """The value at ``dotted`` ("Datasources.default.host") in nested dicts, or ``default``."""
    current = data
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return default
    return current


def parse_php(
    text: str,
    *,
    path: str = "<string>",
    constants: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
    directory: str | None = None,
) -> PhpFile:
    """Evaluate the PHP configuration ``text`` (named ``path`` in errors) without running PHP.

    ``constants`` gives values to names like ``CONFIG`` and ``DS``; ``environment``
    is what ``env()`` reads; ``directory`` is ``__DIR__`` (default: the directory of
    ``path``). Returns a :class:`PhpFile`. Raises SourceError naming the line and
    column of anything not understood.
    """
    tokens = _Lexer(text, path).tokens()
    parser = _Parser(
        tokens,
        path,
        constants or {},
        environment or {},
        directory if directory is not None else os.path.dirname(path),
    )
    return parser.parse_file()


def read_php_file(
    path: Path,
    *,
    shown_as: str | None = None,
    constants: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
    directory: str | None = None,
) -> PhpFile:
    """Read and evaluate the PHP file at ``path``; ``shown_as`` is its name in messages and ``__FILE__``.

    Raises SourceError when the file cannot be read or is not understood.
    """
    name = shown_as or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{name} does not exist") from None
    except PermissionError:
        raise SourceError(
            f"cannot read {name}: permission denied", hint="run strongroom as root or as passbolt's web user"
        ) from None
    except IsADirectoryError:
        raise SourceError(f"{name} is a directory, not a PHP file") from None
    except OSError as error:
        raise SourceError(f"cannot read {name}: {error.strerror}") from None
    text = raw.decode("utf-8", "replace")
    return parse_php(
        text,
        path=name,
        constants=constants,
        environment=environment,
        directory=directory if directory is not None else os.path.dirname(name),
    )
