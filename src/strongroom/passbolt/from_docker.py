"""A ``passbolt.php`` for a package or source install, written from a Docker deployment's environment.

The passbolt Docker image has no ``passbolt.php`` of its own: its configuration is
the container's environment (``APP_FULL_BASE_URL``, ``DATASOURCES_DEFAULT_*``,
``EMAIL_*``, ``PASSBOLT_*``), which passbolt's default configuration reads through
``env()``. A package or source install reads ``/etc/passbolt/passbolt.php``
(source: ``config/passbolt.php``) instead. Restoring a Docker snapshot onto such a
server therefore writes that file, in the shape of passbolt's
``passbolt.default.php``, with the values the environment gave:

- ``App.fullBaseUrl`` from ``APP_FULL_BASE_URL``;
- ``Datasources.default`` from the target database (its host, port, account,
  database; the PostgreSQL driver and schema), plus ``encoding`` when the
  environment set one;
- ``EmailTransport.default`` and ``Email.default.from`` from ``EMAIL_*``;
- ``passbolt.gpg.serverKey`` with the fingerprint and the target layout's key paths;
- ``passbolt.ssl.force`` and ``passbolt.registration.public`` when set.

Values are literals (the file is for a host whose environment does not carry
them). Every other variable of the environment is named in :attr:`GeneratedConfig.left`,
so that the administrator can carry it over by hand; the variables only the image's
entrypoint reads (key generation, ``*_FILE`` secrets already applied) are not.
``SECURITY_SALT`` is returned apart: it belongs in ``app.php``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import SourceError
from strongroom.source.envconfig import DATASOURCE_VARIABLES, SECRET_FILE_VARIABLES
from strongroom.source.php import parse_php

# Variables read by the image's entrypoint only (server key generation, the keyring, waiting
# for the database), or by the datasource written from the target database.
_NOT_CONFIGURATION = frozenset(
    {
        "PASSBOLT_KEY_EMAIL", "PASSBOLT_KEY_NAME", "PASSBOLT_KEY_LENGTH", "PASSBOLT_SUBKEY_LENGTH",
        "PASSBOLT_KEY_EXPIRATION", "PASSBOLT_GPG_SERVER_KEY_PUBLIC", "PASSBOLT_GPG_SERVER_KEY_PRIVATE",
        "GNUPGHOME", "SECURITY_SALT", "PATH", "HOME", "HOSTNAME", "TERM", "PWD", "SHLVL",
    }
    | {f"{name}_FILE" for name in SECRET_FILE_VARIABLES}
)
# Datasource variables that the target database replaces (host, port, account, database, driver).
_DATASOURCE_REPLACED = frozenset(
    DATASOURCE_VARIABLES[key] for key in ("driver", "host", "port", "username", "password", "database", "url", "schema")
)
_TRANSPORT = {
    "EMAIL_TRANSPORT_DEFAULT_HOST": ("host", str),
    "EMAIL_TRANSPORT_DEFAULT_PORT": ("port", int),
    "EMAIL_TRANSPORT_DEFAULT_USERNAME": ("username", str),
    "EMAIL_TRANSPORT_DEFAULT_PASSWORD": ("password", str),
    "EMAIL_TRANSPORT_DEFAULT_TLS": ("tls", bool),
    "EMAIL_TRANSPORT_DEFAULT_TIMEOUT": ("timeout", int),
    "EMAIL_TRANSPORT_DEFAULT_CLIENT": ("client", str),
}
_PASSBOLT_FLAGS = {
    "PASSBOLT_SSL_FORCE": ("ssl", "force"),
    "PASSBOLT_REGISTRATION_PUBLIC": ("registration", "public"),
}
_POSTGRES_DRIVER = "Cake\\Database\\Driver\\Postgres"


@dataclass(frozen=True)
class GeneratedConfig:
    """A generated ``passbolt.php``: its ``text``, the variables written into it (``carried``),
    those it has no place for (``left``) and the ``salt`` for ``app.php`` (None when unset)."""

    text: str
    carried: tuple[str, ...]
    left: tuple[str, ...]
    salt: str | None


def _boolean(value: str) -> bool:
    """PHP's FILTER_VALIDATE_BOOLEAN reading of an environment value."""
    return value.strip().lower() in ("1", "true", "on", "yes")


def _typed(value: str, kind: type) -> Any:
    if kind is bool:
        return _boolean(value)
    if kind is int:
        return int(value) if value.strip().isdigit() else value
    return value


def passbolt_php_from_environment(
    environment: Mapping[str, str], database: DatabaseTarget, gpg_directory: PurePosixPath
) -> GeneratedConfig:
    """The ``passbolt.php`` that gives a package or source install what ``environment`` gave the
    Docker image, with ``database`` as its datasource and the server key files in ``gpg_directory``.

    The text is parsed back before it is returned and must read every value written.
    Raises SourceError when the environment names no server key fingerprint or no base URL.
    """
    carried: list[str] = []

    def take(name: str) -> str | None:
        value = environment.get(name)
        if value is None or value == "":
            return None
        carried.append(name)
        return value

    base_url = take("APP_FULL_BASE_URL")
    fingerprint = take("PASSBOLT_GPG_SERVER_KEY_FINGERPRINT")
    if base_url is None or fingerprint is None:
        missing = " and ".join(name for name, value in (("APP_FULL_BASE_URL", base_url),
                                                        ("PASSBOLT_GPG_SERVER_KEY_FINGERPRINT", fingerprint)) if value is None)
        raise SourceError(f"the snapshot's Docker environment has no {missing}: no passbolt.php can be written from it",
                          hint="restore with --to DIR and write passbolt.php by hand from passbolt.default.php")
    datasource: dict[str, Any] = {}
    if database.engine == "postgresql":
        datasource["driver"] = _POSTGRES_DRIVER
    datasource["host"] = database.host
    datasource["port"] = database.effective_port
    if database.socket and database.engine != "postgresql":
        datasource["unix_socket"] = database.socket
    datasource["username"] = database.user or ""
    datasource["password"] = database.password or ""
    datasource["database"] = database.database or ""
    if database.engine == "postgresql":
        datasource["schema"] = database.schema or "public"
    carried.extend(name for name in _DATASOURCE_REPLACED if environment.get(name))
    encoding = take(DATASOURCE_VARIABLES["encoding"])
    if encoding is not None:
        datasource["encoding"] = encoding
    transport: dict[str, Any] = {}
    for name, (key, kind) in _TRANSPORT.items():
        value = take(name)
        if value is not None:
            transport[key] = _typed(value, kind)
    sender = take("EMAIL_DEFAULT_FROM")
    sender_name = take("EMAIL_DEFAULT_FROM_NAME") or "Passbolt"
    tree: dict[str, Any] = {
        "App": {"fullBaseUrl": base_url},
        "Datasources": {"default": datasource},
    }
    if transport:
        tree["EmailTransport"] = {"default": transport}
    if sender is not None:
        tree["Email"] = {"default": {"from": {sender: sender_name}}}
    passbolt: dict[str, Any] = {
        "gpg": {
            "serverKey": {
                "fingerprint": fingerprint,
                "public": str(gpg_directory / "serverkey.asc"),
                "private": str(gpg_directory / "serverkey_private.asc"),
            }
        }
    }
    for name, (section, key) in _PASSBOLT_FLAGS.items():
        value = take(name)
        if value is not None:
            passbolt[section] = {key: _boolean(value)}
    tree["passbolt"] = passbolt
    text = render_php_config(tree)
    _check_reads_back(text, tree)
    left = sorted(name for name in environment
                  if name not in carried and name not in _NOT_CONFIGURATION and name not in _DATASOURCE_REPLACED)
    salt = environment.get("SECURITY_SALT") or None
    return GeneratedConfig(text, tuple(sorted(set(carried))), tuple(left), salt)


_HEADER = """<?php
/**
 * passbolt.php written by strongroom when a Docker deployment was restored onto this
 * server: the values the container's environment gave passbolt. See passbolt's
 * config/passbolt.default.php for every other setting.
 */
"""


def render_php_config(tree: Mapping[str, Any]) -> str:
    """``tree`` (nested dicts of strings, integers, booleans and None) as a ``passbolt.php``
    that returns it."""
    return _HEADER + "return " + _php_value(tree, "") + ";\n"


def _php_value(value: Any, indent: str) -> str:
    if isinstance(value, Mapping):
        inner = indent + "    "
        lines = [f"{inner}{_php_value(str(key), inner)} => {_php_value(item, inner)}," for key, item in value.items()]
        return "[\n" + "\n".join(lines) + f"\n{indent}]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_reads_back(text: str, tree: Mapping[str, Any]) -> None:
    """Parse ``text`` and compare every leaf with ``tree``. Raises SourceError on a difference."""
    parsed = parse_php(text, path="passbolt.php", environment={})
    data = parsed.returned if isinstance(parsed.returned, dict) else {}

    def leaves(node: Mapping[str, Any], prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
        found: list[tuple[tuple[str, ...], Any]] = []
        for key, item in node.items():
            path = (*prefix, str(key))
            found.extend(leaves(item, path) if isinstance(item, Mapping) else [(path, item)])
        return found

    for path, expected in leaves(tree, ()):
        current: Any = data
        for key in path:
            current = current.get(key) if isinstance(current, dict) else None
        if current != expected or type(current) is not type(expected):
            raise SourceError(f"the written passbolt.php does not read back {'.'.join(path)}",
                              hint="report this; restore with --to DIR and write passbolt.php by hand")
