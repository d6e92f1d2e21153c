"""Where a database is and how to talk to it: :class:`DatabaseTarget` and :func:`connect`.

A target is parsed once (from a URL or built by the caller) into a frozen value.
:func:`connect` opens a DB-API connection with the matching driver (pymysql for
MariaDB/MySQL, psycopg 3 for PostgreSQL) and translates every driver error into
:class:`~strongroom.errors.DatabaseError` whose message says what is wrong and what
to do, never containing the password.

The drivers are imported only when a connection is opened, so importing this
module is cheap (the dbserver watchdog and the CLI's start-up rely on that).
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from strongroom.errors import ConfigError, DatabaseError
from strongroom.execute import mask, register_secret

Engine = Literal["mariadb", "mysql", "postgresql"]
SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]

ENGINES: tuple[str, ...] = ("mariadb", "mysql", "postgresql")
DEFAULT_PORT: dict[str, int] = {"mariadb": 3306, "mysql": 3306, "postgresql": 5432}

_SCHEME_ENGINE: dict[str, Engine] = {
    "mysql": "mysql",
    "mariadb": "mariadb",
    "postgres": "postgresql",
    "postgresql": "postgresql",
}

# MySQL's --ssl-mode words and libpq's sslmode words, mapped to one vocabulary.
_SSL_MODES: dict[str, SslMode] = {
    "disable": "disable",
    "disabled": "disable",
    "false": "disable",
    "0": "disable",
    "allow": "prefer",
    "prefer": "prefer",
    "preferred": "prefer",
    "require": "require",
    "required": "require",
    "true": "require",
    "1": "require",
    "verify-ca": "verify-ca",
    "verify_ca": "verify-ca",
    "verify-full": "verify-full",
    "verify_full": "verify-full",
    "verify-identity": "verify-full",
    "verify_identity": "verify-full",
}

# Query options a URL may carry, and the field each one sets.
_QUERY_FIELDS: dict[str, str] = {
    "socket": "socket",
    "unix_socket": "socket",
    "unix-socket": "socket",
    "host": "socket",  # libpq style: ?host=/var/run/postgresql names a socket directory
    "schema": "schema",
    "search_path": "schema",
    "ssl": "ssl_mode",
    "ssl-mode": "ssl_mode",
    "ssl_mode": "ssl_mode",
    "sslmode": "ssl_mode",
    "ssl-ca": "ssl_ca",
    "ssl_ca": "ssl_ca",
    "sslrootcert": "ssl_ca",
    "ssl-cert": "ssl_cert",
    "ssl_cert": "ssl_cert",
    "sslcert": "ssl_cert",
    "ssl-key": "ssl_key",
    "ssl_key": "ssl_key",
    "sslkey": "ssl_key",
    "charset": "charset",
}


class Connection(Protocol):
    """The part of a DB-API 2 connection strongroom uses."""

    def cursor(self) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DatabaseTarget:
    """A database server and the account and database to use on it.

    ``socket`` is a unix socket file for MariaDB/MySQL and a socket *directory* for
    PostgreSQL (as libpq's ``host=/dir``); when set, connections use it instead of
    ``host``/``port``. ``schema`` is PostgreSQL's schema (``search_path``);
    ``ssl_mode`` is one of disable, prefer, require, verify-ca, verify-full (None:
    the driver's default). The password never shows in ``repr``.
    """

    engine: Engine
    host: str = "localhost"
    port: int | None = None
    socket: str | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_mode: SslMode | None = None
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    schema: str | None = None
    charset: str = "utf8mb4"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(
                f"unknown database engine {self.engine!r}",
                hint=f"use one of: {', '.join(ENGINES)}",
            )
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"database port {self.port} is out of range", hint="use a port between 1 and 65535")
        register_secret(self.password)

    @classmethod
    def from_url(cls, url: str) -> DatabaseTarget:
        """Parse ``mysql://``, ``mariadb://``, ``postgres://`` or ``postgresql://`` URLs.

        User, password and database are percent-decoded. Query options:
        ``socket`` (or libpq's ``host=/dir``), ``schema``, ``ssl-mode``/``sslmode``,
        ``ssl-ca``/``sslrootcert``, ``ssl-cert``/``sslcert``, ``ssl-key``/``sslkey``,
        ``charset``. Returns the target; raises ConfigError for a malformed URL, an
        unknown scheme or option, or a bad port (the message never shows the password).
        """
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            # The URL may hold a password in a form not yet registered: never echo it.
            raise ConfigError(
                f"cannot parse the database URL: {exc}", hint="write scheme://user:password@host:port/database"
            ) from None
        if parts.password:
            register_secret(unquote(parts.password))
        shown = _redact_url(url)
        engine = _SCHEME_ENGINE.get(parts.scheme.lower())
        if engine is None:
            raise ConfigError(
                f"the database URL {shown!r} has an unknown scheme {parts.scheme!r}",
                hint="use mysql://, mariadb://, postgres:// or postgresql://",
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(
                f"the database URL {shown!r} has an invalid port", hint="use a number between 1 and 65535"
            ) from None
        values: dict[str, Any] = {
            "engine": engine,
            "host": parts.hostname or "localhost",
            "port": port,
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password is not None else None,
        }
        database = unquote(parts.path.lstrip("/"))
        if "/" in database:
            raise ConfigError(
                f"the database URL {shown!r} names more than one path segment",
                hint="write scheme://user:password@host:port/database",
            )
        values["database"] = database or None
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            field_name = _QUERY_FIELDS.get(key.lower())
            if field_name is None:
                raise ConfigError(
                    f"the database URL {shown!r} has an unknown option {key!r}",
                    hint=f"known options: {', '.join(sorted(_QUERY_FIELDS))}",
                )
            if field_name == "ssl_mode":
                values["ssl_mode"] = _parse_ssl_mode(value, shown)
            elif field_name == "socket" and key.lower() == "host" and not value.startswith("/"):
                values["host"] = value
            else:
                values[field_name] = value
        return cls(**values)

    @property
    def effective_port(self) -> int:
        """The port, or the engine's default port."""
        return self.port if self.port is not None else DEFAULT_PORT[self.engine]

    @property
    def is_mysql_family(self) -> bool:
        """True for MariaDB and MySQL (one wire protocol, one driver)."""
        return self.engine in ("mariadb", "mysql")

    def with_database(self, database: str | None) -> DatabaseTarget:
        """Return a copy of this target naming another database."""
        return dataclasses.replace(self, database=database)

    def with_account(self, user: str, password: str | None) -> DatabaseTarget:
        """Return a copy of this target with another account."""
        return dataclasses.replace(self, user=user, password=password)

    def describe(self, database: str | None = None) -> str:
        """A short human description, never with the password: ``user@host:port/db``."""
        where = f"socket {self.socket}" if self.socket else f"{self.host}:{self.effective_port}"
        name = database if database is not None else self.database
        who = f"{self.user}@" if self.user else ""
        return f"{self.engine} {who}{where}" + (f" database {name!r}" if name else "")

    def url(self) -> str:
        """The target as a URL without the password (for display and logs)."""
        from urllib.parse import quote, urlencode

        scheme = "postgresql" if self.engine == "postgresql" else self.engine
        user = quote(self.user, safe="") + "@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        path = "/" + quote(self.database, safe="") if self.database else ""
        query: dict[str, str] = {}
        if self.socket:
            query["socket"] = self.socket
        if self.schema:
            query["schema"] = self.schema
        if self.ssl_mode:
            query["sslmode"] = self.ssl_mode
        for name in ("ssl_ca", "ssl_cert", "ssl_key"):
            value = getattr(self, name)
            if value:
                query[name.replace("_", "-")] = value
        suffix = "?" + urlencode(query) if query else ""
        return f"{scheme}://{user}{host}{port}{path}{suffix}"


def _redact_url(url: str) -> str:
    """The URL with its password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return mask(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[1] if len(netloc) == 2 else ""
    user = parts.username or ""
    return mask(parts._replace(netloc=f"{user}:********@{host}").geturl())


def _parse_ssl_mode(value: str, shown_url: str) -> SslMode:
    mode = _SSL_MODES.get(value.strip().lower())
    if mode is None:
        raise ConfigError(
            f"the database URL {shown_url!r} has an unknown SSL mode {value!r}",
            hint="use disable, prefer, require, verify-ca or verify-full",
        )
    return mode


def _ssl_context(target: DatabaseTarget) -> ssl.SSLContext | None:
    """The TLS context pymysql should use for ``target``, or None for no TLS."""
    mode = target.ssl_mode
    if mode is None:
        mode = "verify-ca" if target.ssl_ca else None
    if mode is None or mode == "disable":
        return None
    try:
        context = ssl.create_default_context(cafile=target.ssl_ca)
        if target.ssl_cert:
            context.load_cert_chain(target.ssl_cert, target.ssl_key)
    except (OSError, ssl.SSLError) as exc:
        raise DatabaseError(
            f"cannot load the TLS files for {target.describe()}: {exc}",
            hint="check the ssl-ca, ssl-cert and ssl-key paths and their permissions",
        ) from None
    context.check_hostname = mode == "verify-full"
    if mode in ("prefer", "require"):
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(target: DatabaseTarget, database: str | None = None, *, timeout: float = 10.0) -> Connection:
    """Open a DB-API connection to ``target`` (``database`` overrides the target's).

    MariaDB/MySQL: pymysql, utf8mb4, autocommit off. PostgreSQL: psycopg 3,
    autocommit off, ``search_path`` set to the target's schema when it has one.
    Returns the open connection; raises DatabaseError when the server is unreachable,
    refuses the account, or the database does not exist, and DependencyError when
    the driver is not installed.
    """
    name = database if database is not None else target.database
    if target.is_mysql_family:
        return _connect_mysql(target, name, timeout)
    return _connect_postgresql(target, name, timeout)


def _connect_mysql(target: DatabaseTarget, database: str | None, timeout: float) -> Connection:
    import pymysql

    arguments: dict[str, Any] = {
        "user": target.user,
        "password": target.password or "",
        "database": database,
        "charset": target.charset,
        "autocommit": False,
        "connect_timeout": max(1, int(timeout)),
        "local_infile": False,
    }
    if target.socket:
        _probe_unix_socket(target, database, timeout)
        arguments["unix_socket"] = target.socket
    else:
        arguments["host"] = target.host
        arguments["port"] = target.effective_port
    context = _ssl_context(target)
    if context is not None:
        arguments["ssl"] = context
    try:
        return pymysql.connect(**arguments)  # type: ignore[no-any-return]
    except pymysql.err.MySQLError as exc:
        raise _translate_mysql_error(exc, target, database) from None


def _probe_unix_socket(target: DatabaseTarget, database: str | None, timeout: float) -> None:
    """Raise DatabaseError when nothing listens on the target's unix socket.

    pymysql leaks its socket object when connecting to a unix socket fails; probing
    first with a socket we close ourselves keeps the common failure leak-free.
    """
    import socket as socket_module

    assert target.socket is not None
    with socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(target.socket)
        except OSError as exc:
            raise DatabaseError(
                f"cannot reach the database server at {target.describe(database)}: {exc.strerror or exc}",
                hint="is the database running? check the host, port or socket, and the firewall",
            ) from None


def _translate_mysql_error(exc: Exception, target: DatabaseTarget, database: str | None) -> DatabaseError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = mask(str(exc.args[1]) if len(exc.args) > 1 else str(exc))
    where = target.describe(database)
    if code in (2002, 2003, 2006, 2013):
        return DatabaseError(
            f"cannot reach the database server at {where}: {detail}",
            hint="is the database running? check the host, port or socket, and the firewall",
        )
    if code in (1045, 1698):
        return DatabaseError(
            f"wrong user or password for {where}",
            hint="check the database user and password in the passbolt or strongroom configuration",
        )
    if code == 1044:
        return DatabaseError(
            f"the database {database!r} does not exist on {where}, or the user {target.user!r} may not use it",
            hint="check the database name, and grant the user access to that database",
        )
    if code == 1049:
        return DatabaseError(
            f"the database {database!r} does not exist on {where}",
            hint="check the database name (SHOW DATABASES lists them)",
        )
    if code in (2026,):
        return DatabaseError(f"TLS failed for {where}: {detail}", hint="check the ssl options and certificates")
    return DatabaseError(f"the database at {where} failed: {detail}")


def _connect_postgresql(target: DatabaseTarget, database: str | None, timeout: float) -> Connection:
    import psycopg

    arguments: dict[str, Any] = {
        "host": target.socket or target.host,
        "port": target.effective_port,
        "dbname": database or "postgres",
        "connect_timeout": max(2, int(timeout)),
        "autocommit": False,
        "client_encoding": "UTF8",
        "application_name": "strongroom",
    }
    if target.user:
        arguments["user"] = target.user
    # An empty password must not fall back to a PGPASSWORD inherited from the environment.
    arguments["password"] = target.password or ""
    if target.ssl_mode:
        arguments["sslmode"] = target.ssl_mode
    elif target.ssl_ca:
        arguments["sslmode"] = "verify-ca"
    for option, value in (("sslrootcert", target.ssl_ca), ("sslcert", target.ssl_cert), ("sslkey", target.ssl_key)):
        if value:
            arguments[option] = value
    try:
        connection = psycopg.connect(**arguments)
    except psycopg.Error as exc:
        raise _translate_postgresql_error(exc, target, database or "postgres") from None
    if target.schema:
        from psycopg import sql

        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (target.schema,))
                exists = cursor.fetchone() is not None
                cursor.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target.schema)))
            connection.commit()
        except psycopg.Error as exc:
            connection.close()
            raise _translate_postgresql_error(exc, target, database or "postgres") from None
        if not exists:
            connection.close()
            raise DatabaseError(
                f"the schema {target.schema!r} does not exist in {target.describe(database or 'postgres')}",
                hint="check the schema name (\\dn in psql lists them)",
            )
    return connection


def _translate_postgresql_error(exc: Exception, target: DatabaseTarget, database: str) -> DatabaseError:
    sqlstate = getattr(exc, "sqlstate", None)
    detail = mask(str(exc).strip())
    lowered = detail.lower()
    where = target.describe(database)
    if sqlstate in ("28P01", "28000") or "password authentication failed" in lowered or (
        "no password supplied" in lowered
    ):
        return DatabaseError(
            f"wrong user or password for {where}",
            hint="check the database user and password in the passbolt or strongroom configuration",
        )
    if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return DatabaseError(
            f"the database {database!r} does not exist on {where}",
            hint="check the database name (psql -l lists them)",
        )
    if sqlstate == "42501" or "permission denied" in lowered:
        return DatabaseError(
            f"the user {target.user!r} may not use {where}: {detail}",
            hint="grant the user access (CONNECT on the database, USAGE on the schema)",
        )
    if sqlstate == "3F000" or "schema" in lowered and "does not exist" in lowered:
        return DatabaseError(f"the schema {target.schema!r} does not exist on {where}", hint="check the schema name")
    if sqlstate is None and (
        "connection refused" in lowered
        or "no such file or directory" in lowered
        or "could not connect" in lowered
        or "timeout expired" in lowered
        or "could not translate host name" in lowered
        or "failed to resolve host" in lowered
        or "connection failed" in lowered
        or "is the server running" in lowered
    ):
        return DatabaseError(
            f"cannot reach the database server at {where}: {detail.splitlines()[0] if detail else ''}",
            hint="is the database running? check the host, port or socket, and the firewall",
        )
    return DatabaseError(f"the database at {where} failed: {detail}")


def server_version(connection: Connection) -> str:
    """Return the server's version string (``10.11.6-MariaDB-0+deb12u1``, ``15.8 (Debian ...)``).

    Raises DatabaseError when the query fails.
    """
    module = type(connection).__module__
    query = "SHOW server_version" if module.startswith("psycopg") else "SELECT VERSION()"
    rows = _query(connection, query, ())
    return str(rows[0][0])


def list_tables(connection: Connection, engine: str, schema: str | None = None) -> list[str]:
    """Return the names of the base tables (no views), sorted.

    MariaDB/MySQL: of the connection's current database (or ``schema``, a database
    name, when given). PostgreSQL: of ``schema`` (default ``public``).
    Raises DatabaseError when the query fails.
    """
    if engine == "postgresql":
        rows = _query(
            connection,
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s ORDER BY tablename",
            (schema or "public",),
        )
    elif schema:
        rows = _query(
            connection,
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )
    else:
        rows = _query(
            connection,
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name",
            (),
        )
    return [str(row[0]) for row in rows]


def _query(connection: Connection, query: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Run a read-only query and return its rows; translate driver errors to DatabaseError."""
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(query, parameters or None)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    except Exception as exc:
        if _is_driver_error(exc):
            raise DatabaseError(f"the query {query.split()[0]} ... failed: {mask(str(exc))}") from None
        raise


def _is_driver_error(exc: Exception) -> bool:
    module = type(exc).__module__
    return module.startswith(("pymysql", "psycopg"))


def mysql_option_file(target: DatabaseTarget, database: str | None = None) -> str:
    """Return a ``[client]`` option file for mariadb/mysql clients (``--defaults-extra-file``).

    Holds the password: write it with :func:`strongroom.execute.secret_file`, never elsewhere.
    """
    lines = ["[client]"]
    if target.user:
        lines.append(f"user={_option_value(target.user)}")
    if target.password:
        lines.append(f"password={_option_value(target.password)}")
    if target.socket:
        lines.append(f"socket={_option_value(target.socket)}")
        lines.append("protocol=SOCKET")
    else:
        lines.append(f"host={_option_value(target.host)}")
        lines.append(f"port={target.effective_port}")
        lines.append("protocol=TCP")
    name = database if database is not None else target.database
    if name:
        lines.append(f"database={_option_value(name)}")
    lines.append(f"default-character-set={target.charset}")
    mode = target.ssl_mode
    if mode == "disable":
        lines.append("skip-ssl")
    elif mode in ("require", "verify-ca", "verify-full"):
        lines.append("ssl")
        if mode != "require":
            lines.append("ssl-verify-server-cert")
    for option, value in (("ssl-ca", target.ssl_ca), ("ssl-cert", target.ssl_cert), ("ssl-key", target.ssl_key)):
        if value:
            lines.append(f"{option}={_option_value(value)}")
    return "\n".join(lines) + "\n"


def _option_value(value: str) -> str:
    """Quote a value for a MySQL option file (backslash and double quote escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def pgpass_line(target: DatabaseTarget, database: str | None = None) -> str:
    """Return one ``PGPASSFILE`` line for ``target`` (``*`` for the database when none is named).

    Holds the password: write it with :func:`strongroom.execute.secret_file`, never elsewhere.
    """

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    host = target.socket or target.host
    name = database if database is not None else target.database
    return ":".join(
        (
            escape(host),
            str(target.effective_port),
            escape(name) if name else "*",
            escape(target.user or "*"),
            escape(target.password or ""),
        )
    ) + "\n"


def postgresql_environment(target: DatabaseTarget, database: str | None = None) -> dict[str, str]:
    """Return the libpq environment (PGHOST, PGPORT, ...) for ``target``, without the password.

    Pair it with ``PGPASSFILE`` pointing at a :func:`pgpass_line` file.
    """
    environment = {
        "PGHOST": target.socket or target.host,
        "PGPORT": str(target.effective_port),
        "PGDATABASE": (database if database is not None else target.database) or "postgres",
        "PGCLIENTENCODING": "UTF8",
    }
    if target.user:
        environment["PGUSER"] = target.user
    if target.ssl_mode:
        environment["PGSSLMODE"] = target.ssl_mode
    for variable, value in (("PGSSLROOTCERT", target.ssl_ca), ("PGSSLCERT", target.ssl_cert), ("PGSSLKEY", target.ssl_key)):
        if value:
            environment[variable] = value
    return environment
