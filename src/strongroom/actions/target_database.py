"""The database a restore writes into: create it on a fresh server, list and drop passbolt's tables.

Every statement names the database and account through the driver's quoting
(identifiers) or parameters (passwords), never by pasting text into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.dbserver.connection import Connection, DatabaseTarget, connect, list_tables, server_version
from strongroom.errors import DatabaseError
from strongroom.execute import mask


@dataclass(frozen=True)
class DatabaseState:
    """What the target database looks like before a restore: reachable, its tables, the server's version."""

    exists: bool
    tables: tuple[str, ...]
    server_version: str | None


def _mysql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def inspect_target(target: DatabaseTarget) -> DatabaseState:
    """Connect as the target account; return whether the database exists, its tables and the server version.

    A database that does not exist (or that the account may not use) gives
    ``exists`` False. Raises DatabaseError when the server is unreachable or refuses
    the account.
    """
    try:
        connection = connect(target, timeout=15)
    except DatabaseError as error:
        if "does not exist" in error.message:
            return DatabaseState(False, (), None)
        raise
    try:
        version = server_version(connection)
        tables = list_tables(connection, target.engine, target.schema)
    finally:
        connection.close()
    return DatabaseState(True, tuple(tables), version)


def server_version_of(target: DatabaseTarget) -> str:
    """The server's version string, through ``target``'s account (any database). Raises DatabaseError."""
    connection = connect(target, timeout=15)
    try:
        return server_version(connection)
    finally:
        connection.close()


def create_database(admin: DatabaseTarget, target: DatabaseTarget) -> list[str]:
    """Create ``target``'s database and account (when missing) on the server ``admin`` reaches.

    The account gets every privilege on that database (PostgreSQL: it owns it).
    Returns what was done, in words. Raises DatabaseError when a statement fails.
    """
    if not target.database or not target.user:
        raise DatabaseError("creating a database needs its name and its user", hint="give --database URL with both")
    done: list[str] = []
    connection = connect(admin, database="" if admin.is_mysql_family else None, timeout=15)
    try:
        if admin.is_mysql_family:
            done += _create_mysql(connection, target)
        else:
            done += _create_postgresql(connection, target)
    except DatabaseError:
        raise
    except Exception as error:
        if type(error).__module__.startswith(("pymysql", "psycopg")):
            raise DatabaseError(
                f"cannot create the database {target.database!r} and its user on {admin.describe()}: {mask(str(error))}",
                hint="check that the admin account may create databases and users",
            ) from None
        raise
    finally:
        connection.close()
    return done


def _create_mysql(connection: Connection, target: DatabaseTarget) -> list[str]:
    assert target.database and target.user
    database = _mysql_identifier(target.database)
    cursor = connection.cursor()
    done = []
    cursor.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (target.database,))
    if not cursor.fetchone()[0]:
        cursor.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        done.append(f"created database {target.database}")
    hosts = ("localhost", "%") if target.socket or target.host in ("localhost", "127.0.0.1", "::1") else ("%",)
    for host in hosts:
        cursor.execute("SELECT COUNT(*) FROM mysql.user WHERE user = %s AND host = %s", (target.user, host))
        if not cursor.fetchone()[0]:
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (target.user, host, target.password or ""))
            done.append(f"created user {target.user}@{host}")
        cursor.execute(f"GRANT ALL PRIVILEGES ON {database}.* TO %s@%s", (target.user, host))
    cursor.close()
    connection.commit()
    return done


def _create_postgresql(connection: Connection, target: DatabaseTarget) -> list[str]:
    from psycopg import sql

    assert target.database and target.user
    connection.autocommit = True  # type: ignore[attr-defined]  # CREATE DATABASE refuses transactions
    cursor = connection.cursor()
    done = []
    cursor.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (target.user,))
    if cursor.fetchone() is None:
        cursor.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(target.user), sql.Literal(target.password or ""))
        )
        done.append(f"created role {target.user}")
    cursor.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (target.database,))
    if cursor.fetchone() is None:
        cursor.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(target.database), sql.Identifier(target.user)
            )
        )
        done.append(f"created database {target.database} owned by {target.user}")
    cursor.close()
    return done


def drop_tables(target: DatabaseTarget, tables: tuple[str, ...]) -> None:
    """Drop ``tables`` from the target database in one go (foreign keys do not get in the way).

    Raises DatabaseError when a statement fails.
    """
    if not tables:
        return
    connection = connect(target, timeout=15)
    try:
        cursor = connection.cursor()
        if target.is_mysql_family:
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            cursor.execute("DROP TABLE IF EXISTS " + ", ".join(_mysql_identifier(name) for name in tables))
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        else:
            from psycopg import sql

            schema = target.schema or "public"
            cursor.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(schema, name) for name in tables)
                )
            )
        cursor.close()
        connection.commit()
    except DatabaseError:
        raise
    except Exception as error:
        if type(error).__module__.startswith(("pymysql", "psycopg")):
            raise DatabaseError(f"cannot drop the tables of {target.describe()}: {mask(str(error))}") from None
        raise
    finally:
        connection.close()
