"""Configuration passbolt takes from its environment, and turning datasources into targets.

passbolt's ``app.php`` reads its defaults from environment variables (Docker and
env-configured installs): ``DATASOURCES_DEFAULT_*`` (including a ``_URL`` DSN
such as ``postgres://user:pass@db:5432/passbolt?schema=passbolt``, which wins over
the separate variables, as CakePHP merges it), ``PASSBOLT_GPG_SERVER_KEY_*``.
Docker secrets arrive as ``NAME_FILE`` variables naming a file whose content is
the value; :func:`resolve_secret_files` reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import ConfigError, SourceError
from strongroom.execute import register_secret

DATASOURCE_VARIABLES = {
    "driver": "DATASOURCES_DEFAULT_DRIVER",
    "host": "DATASOURCES_DEFAULT_HOST",
    "port": "DATASOURCES_DEFAULT_PORT",
    "username": "DATASOURCES_DEFAULT_USERNAME",
    "password": "DATASOURCES_DEFAULT_PASSWORD",
    "database": "DATASOURCES_DEFAULT_DATABASE",
    "url": "DATASOURCES_DEFAULT_URL",
    "schema": "DATASOURCES_DEFAULT_SCHEMA",
    "encoding": "DATASOURCES_DEFAULT_ENCODING",
    "ssl_key": "DATASOURCES_DEFAULT_SSL_KEY",
    "ssl_cert": "DATASOURCES_DEFAULT_SSL_CERT",
    "ssl_ca": "DATASOURCES_DEFAULT_SSL_CA",
}

# Variables the passbolt image reads from NAME_FILE (Docker secrets).
SECRET_FILE_VARIABLES = (
    "DATASOURCES_DEFAULT_PASSWORD",
    "DATASOURCES_DEFAULT_USERNAME",
    "DATASOURCES_DEFAULT_HOST",
    "DATASOURCES_DEFAULT_DATABASE",
    "DATASOURCES_DEFAULT_URL",
    "PASSBOLT_GPG_SERVER_KEY_PUBLIC",
    "PASSBOLT_GPG_SERVER_KEY_PRIVATE",
    "SECURITY_SALT",
)

SECRET_VARIABLES = frozenset(
    {"DATASOURCES_DEFAULT_PASSWORD", "DATASOURCES_DEFAULT_URL", "SECURITY_SALT", "EMAIL_TRANSPORT_DEFAULT_PASSWORD",
     "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD", "POSTGRES_PASSWORD"}
)


def register_environment_secrets(environment: Mapping[str, str]) -> None:
    """Mask the values of the secret variables of ``environment`` in every message from now on."""
    for name in SECRET_VARIABLES:
        register_secret(environment.get(name))


def resolve_secret_files(
    environment: Mapping[str, str], read: Callable[[PurePosixPath], str]
) -> tuple[dict[str, str], list[str]]:
    """Apply ``NAME_FILE`` variables: the value of NAME becomes the content of that file.

    ``read(path)`` returns a file's text (the path as the container sees it) and
    raises SourceError when it cannot. Returns the new environment and problems
    (one sentence each) for files that could not be read. A NAME that is set
    already wins, as in the passbolt image's entrypoint.
    """
    result = dict(environment)
    problems: list[str] = []
    for name in SECRET_FILE_VARIABLES:
        file_name = environment.get(f"{name}_FILE")
        if not file_name or environment.get(name):
            continue
        try:
            value = read(PurePosixPath(file_name)).rstrip("\r\n")
        except SourceError as exc:
            problems.append(f"{name}_FILE names {file_name}, which cannot be read: {exc.message}")
            continue
        if name in SECRET_VARIABLES:
            register_secret(value)
        result[name] = value
    return result, problems


def datasource_from_environment(environment: Mapping[str, str]) -> dict[str, Any]:
    """The ``Datasources.default`` passbolt's ``app.php`` builds from the environment alone.

    The same defaults as passbolt's ``app.php``: MySQL driver, host ``localhost``.
    """
    values: dict[str, Any] = {"driver": "Cake\\Database\\Driver\\Mysql", "host": "localhost"}
    for key, variable in DATASOURCE_VARIABLES.items():
        if variable in environment:
            values[key] = environment[variable]
    return values


def _text(value: Any) -> str | None:
    if value is None or value is False or value == "":
        return None
    return str(value)


def _engine_of(driver: str | None, v1_datasource: str | None) -> str:
    text = (driver or v1_datasource or "mysql").lower()
    if "postgres" in text:
        return "postgresql"
    if "sqlserver" in text or "sqlite" in text:
        raise SourceError(
            f"the database driver {driver or v1_datasource!r} is not supported",
            hint="passbolt supports MariaDB/MySQL and PostgreSQL; strongroom backs up those",
        )
    return "mysql"


def target_from_datasource(datasource: Mapping[str, Any], *, origin: str) -> DatabaseTarget:
    """A DatabaseTarget from a CakePHP datasource (v2+ keys, or v1's ``login``/``datasource``).

    A ``url`` DSN wins over the separate keys. ``origin`` names the source in
    errors. Raises SourceError when the settings are incomplete or malformed (the
    message never shows the password).
    """
    register_secret(_text(datasource.get("password")))
    url = _text(datasource.get("url"))
    if url is not None:
        try:
            return DatabaseTarget.from_url(url)
        except ConfigError as exc:
            raise SourceError(f"{origin}: {exc.message}", hint=exc.hint) from None
    engine = _engine_of(_text(datasource.get("driver")), _text(datasource.get("datasource")))
    host = _text(datasource.get("host")) or "localhost"
    socket = _text(datasource.get("unix_socket"))
    if host.startswith("/"):
        socket, host = host, "localhost"
    port_value = _text(datasource.get("port"))
    port: int | None = None
    if port_value is not None:
        try:
            port = int(port_value)
        except ValueError:
            raise SourceError(f"{origin}: the database port {port_value!r} is not a number") from None
    user = _text(datasource.get("username")) or _text(datasource.get("login"))
    database = _text(datasource.get("database"))
    missing = [name for name, value in (("database", database), ("username", user)) if value is None]
    if missing:
        raise SourceError(
            f"{origin}: the database settings name no {' and no '.join(missing)}",
            hint="set Datasources.default in passbolt.php (or DATASOURCES_DEFAULT_* variables), "
            "or name them in the [instance] section of strongroom's configuration",
        )
    try:
        return DatabaseTarget(
            engine=engine,  # type: ignore[arg-type]
            host=host,
            port=port,
            socket=socket,
            database=database,
            user=user,
            password=_text(datasource.get("password")),
            ssl_ca=_text(datasource.get("ssl_ca")),
            ssl_cert=_text(datasource.get("ssl_cert")),
            ssl_key=_text(datasource.get("ssl_key")),
            schema=_text(datasource.get("schema")) if engine == "postgresql" else None,
        )
    except ConfigError as exc:
        raise SourceError(f"{origin}: {exc.message}", hint=exc.hint) from None


def server_key_from_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """``fingerprint``, ``public``, ``private`` named by ``PASSBOLT_GPG_SERVER_KEY_*`` (only those set)."""
    result: dict[str, str] = {}
    for key in ("fingerprint", "public", "private"):
        value = environment.get(f"PASSBOLT_GPG_SERVER_KEY_{key.upper()}")
        if value:
            result[key] = value
    return result


def read_host_file(path: Path | None, shown: PurePosixPath) -> str:
    """The text of ``path`` on this host; raises SourceError naming ``shown`` when it cannot be read."""
    if path is None:
        raise SourceError(f"{shown} is not on this host (only inside the container)")
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise SourceError(f"{shown} does not exist") from None
    except OSError as exc:
        raise SourceError(f"cannot read {shown}: {exc.strerror}") from None
