"""Write a generated sandbox into a database: create it, create passbolt's tables, load the rows.

MariaDB/MySQL rows go in as multi-row ``INSERT`` statements of a few MB each;
PostgreSQL rows through ``COPY ... FROM STDIN``. One transaction per table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from strongroom.dbserver.connection import Connection, DatabaseTarget, connect
from strongroom.errors import DatabaseError, UsageError
from strongroom.execute import mask
from strongroom.passbolt.schema import create_tables
from strongroom.progress import Reporter
from strongroom.sandbox.generate import TableRows

STATEMENT_BYTES = 4 * 1024 * 1024


def _is_driver_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("pymysql", "psycopg"))


def _mysql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def database_exists_and_tables(target: DatabaseTarget, name: str) -> tuple[bool, int]:
    """Return (whether database ``name`` exists on the server, how many tables it has)."""
    connection = connect(target, None if target.is_mysql_family else "postgres")
    try:
        with connection.cursor() as cursor:
            if target.is_mysql_family:
                cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
                exists = cursor.fetchone()[0] > 0
                cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (name,))
                return exists, int(cursor.fetchone()[0])
            cursor.execute("SELECT COUNT(*) FROM pg_database WHERE datname = %s", (name,))
            exists = cursor.fetchone()[0] > 0
    except Exception as exc:
        if _is_driver_error(exc):
            raise DatabaseError(f"cannot list the databases on {target.describe()}: {mask(str(exc))}") from None
        raise
    finally:
        connection.close()
    if not exists:
        return False, 0
    connection = connect(target, name)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            )
            return True, int(cursor.fetchone()[0])
    finally:
        connection.close()


def prepare_database(target: DatabaseTarget, name: str, *, replace: bool) -> DatabaseTarget:
    """Create the empty database ``name`` on the server of ``target``; return the target naming it.

    An existing database without tables is used as it is. One with tables is dropped
    and created again when ``replace`` is set, else refused with UsageError.
    Raises DatabaseError when the server refuses.
    """
    exists, tables = database_exists_and_tables(target, name)
    if exists and tables and not replace:
        raise UsageError(
            f"the database {name!r} on {target.describe()} already holds {tables} tables",
            hint="name another database (--database-name) or pass --replace to drop it first",
        )
    if exists and not tables:
        return target.with_database(name)
    connection = connect(target, None if target.is_mysql_family else "postgres")
    try:
        if target.is_mysql_family:
            with connection.cursor() as cursor:
                if exists:
                    cursor.execute(f"DROP DATABASE {_mysql_identifier(name)}")
                cursor.execute(
                    f"CREATE DATABASE {_mysql_identifier(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            connection.commit()
        else:
            from psycopg import sql

            connection.autocommit = True  # type: ignore[attr-defined]  # CREATE DATABASE refuses transactions
            with connection.cursor() as cursor:
                if exists:
                    cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
                cursor.execute(
                    sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
                )
    except Exception as exc:
        if _is_driver_error(exc):
            raise DatabaseError(
                f"cannot create the database {name!r} on {target.describe()}: {mask(str(exc))}",
                hint="the account needs the privilege to create databases",
            ) from None
        raise
    finally:
        connection.close()
    return target.with_database(name)


def _mysql_literal(value: Any, escape: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + escape(value) + "'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S") + "'"
    if isinstance(value, (bytes, bytearray)):
        return "X'" + bytes(value).hex() + "'" if value else "''"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _insert_mysql(connection: Connection, table: TableRows, reporter: Reporter) -> int:
    from pymysql.converters import escape_string

    head = f"INSERT INTO {_mysql_identifier(table.table)} ({', '.join(map(_mysql_identifier, table.columns))}) VALUES "
    count = 0
    parts: list[str] = []
    size = 0
    with connection.cursor() as cursor:
        for row in table.rows:
            literal = "(" + ",".join(_mysql_literal(value, escape_string) for value in row) + ")"
            parts.append(literal)
            size += len(literal)
            count += 1
            if size >= STATEMENT_BYTES:
                cursor.execute(head + ",".join(parts))
                reporter.advance(len(parts))
                parts, size = [], 0
        if parts:
            cursor.execute(head + ",".join(parts))
            reporter.advance(len(parts))
    connection.commit()
    return count


def _copy_postgresql(connection: Connection, table: TableRows, reporter: Reporter) -> int:
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.table), sql.SQL(", ").join(sql.Identifier(column) for column in table.columns)
    )
    count = 0
    with connection.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for row in table.rows:
                copy.write_row(row)
                count += 1
                if count % 10_000 == 0:
                    reporter.advance(10_000)
    reporter.advance(count % 10_000)
    connection.commit()
    return count


def load_rows(target: DatabaseTarget, tables: Iterable[TableRows], reporter: Reporter) -> dict[str, int]:
    """Create passbolt's tables in the target's database and load ``tables`` into them.

    Returns the number of rows written per table. Raises DatabaseError when the
    server refuses a statement.
    """
    engine = "postgresql" if target.engine == "postgresql" else target.engine
    connection = connect(target)
    counts: dict[str, int] = {}
    try:
        create_tables(connection, engine)
        if target.is_mysql_family:
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION unique_checks = 0")
        for table in tables:
            reporter.phase(f"writing {table.table}")
            try:
                if target.is_mysql_family:
                    counts[table.table] = _insert_mysql(connection, table, reporter)
                else:
                    counts[table.table] = _copy_postgresql(connection, table, reporter)
            except Exception as exc:
                if _is_driver_error(exc):
                    raise DatabaseError(
                        f"writing the sandbox table {table.table} failed: {mask(str(exc))[:500]}"
                    ) from None
                raise
    finally:
        connection.close()
    return counts


def database_size(target: DatabaseTarget) -> int:
    """Return the size of the target's database in bytes (data and indexes, as the server counts them)."""
    connection = connect(target)
    try:
        with connection.cursor() as cursor:
            if target.is_mysql_family:
                cursor.execute("ANALYZE TABLE secrets, action_logs, secrets_history, folders_relations, permissions")
                cursor.fetchall()
                cursor.execute(
                    "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = DATABASE()"
                )
            else:
                cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    finally:
        connection.close()
