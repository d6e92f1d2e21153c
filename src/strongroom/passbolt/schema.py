"""passbolt's database schema: create it, read it back from a live database, compare.

The definition of passbolt 5.12 (tables, phinxlog rows, seed data) is in
:mod:`strongroom.passbolt.schema_512` and re-exported here; the dataclass shapes are in
:mod:`strongroom.passbolt.definition` and re-exported here too. Use this module:

- :func:`expected_schema` projects the definition onto one engine (MariaDB, MySQL or
  PostgreSQL): the types, defaults, index names and column order that engine reports;
- :func:`create_tables` runs the exact DDL of that projection on a connection;
- :func:`describe_database` reads a live database into the same shape;
- :func:`compare_schema` lists every difference between two of them in words;
- :func:`migration_level` and :func:`tables_at` tell which tables a database at a given
  ``phinxlog`` level must have.

Connections are DB-API connections: PyMySQL for MariaDB/MySQL, psycopg 3 for PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.errors import DatabaseError, UsageError
from strongroom.passbolt.definition import (
    ENGINES,
    Column,
    Engine,
    Index,
    Migration,
    ResourceType,
    Role,
    Schema,
    Table,
)
from strongroom.passbolt.schema_512 import (
    PASSBOLT_VERSION,
    PHINXLOG_512,
    RESOURCE_TYPES_512,
    ROLES_512,
    TABLES_512,
)

__all__ = [
    "ENGINES",
    "PASSBOLT_VERSION",
    "PHINXLOG_512",
    "RESOURCE_TYPES_512",
    "ROLES_512",
    "TABLES_512",
    "Column",
    "Engine",
    "Index",
    "Migration",
    "MigrationLevel",
    "ResourceType",
    "Role",
    "Schema",
    "Table",
    "TableRequirement",
    "compare_schema",
    "create_table_statements",
    "create_tables",
    "describe_database",
    "expected_schema",
    "migration_level",
    "tables_at",
]

MYSQL_FAMILY: frozenset[str] = frozenset({"mariadb", "mysql"})

# PostgreSQL keeps the first 63 bytes of a longer identifier.
PG_IDENTIFIER_BYTES = 63

# Integer types whose display width MySQL 8.0.19+ hides; tinyint(1) keeps it.
_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\((\d+)\)")


def _check_engine(engine: str) -> Engine:
    if engine not in ENGINES:
        raise UsageError(
            f"unknown database engine {engine!r}",
            hint=f"use one of: {', '.join(ENGINES)}",
        )
    return engine  # type: ignore[return-value]


def _migration_positions() -> dict[str, int]:
    return {migration.name: position for position, migration in enumerate(PHINXLOG_512)}


def _pg_column_order(table: Table, positions: Mapping[str, int]) -> tuple[Column, ...]:
    """Columns in PostgreSQL order: by the migration that added them, then MySQL order.

    Phinx ignores 'after' on PostgreSQL, so a column a later migration adds is at the
    end there; columns of the creating migration keep their order.
    """
    created = positions.get(table.created_by, -1)

    def key(item: tuple[int, Column]) -> tuple[int, int]:
        position, column = item
        added = positions.get(column.added_by, created)
        return (max(added, created), position)

    return tuple(column for _, column in sorted(enumerate(table.columns), key=key))


def _pg_identifier(name: str) -> str:
    """PostgreSQL silently cuts identifiers to 63 bytes (NAMEDATALEN - 1): so do we.

    Phinx builds index names such as folders_relations_foreign_model_folder_parent_id_
    foreign_id_user_id, longer than that; the server stores the first 63 bytes.
    """
    return name.encode("utf-8")[:PG_IDENTIFIER_BYTES].decode("utf-8", "ignore")


def _mysql8_type(column_type: str) -> str:
    match = _DISPLAY_WIDTH.match(column_type)
    if match is None or column_type.startswith("tinyint(1)"):
        return column_type
    return match.group(1) + column_type[match.end() :]


def expected_schema(
    engine: str,
    *,
    tables: Sequence[Table] = TABLES_512,
    display_widths: bool = True,
) -> Schema:
    """Return ``tables`` (passbolt 5.12's by default) as ``engine`` reports them.

    MariaDB/MySQL: the MySQL types, charsets, collations, engine-assigned index names,
    ``PRIMARY``; ``display_widths=False`` drops integer display widths except
    ``tinyint(1)``, as MySQL 8.0.19 and later report them. PostgreSQL: the pg types
    and defaults, no charset/collation/engine, index names ``pg_name``, the
    PostgreSQL-only indexes, ``<table>_pkey``, and columns added by later migrations
    at the end of their table. Raises UsageError for an unknown engine.
    """
    engine = _check_engine(engine)
    positions = _migration_positions()
    projected: list[Table] = []
    for table in tables:
        indexes = tuple(index for index in table.indexes if engine in index.engines)
        if engine == "postgresql":
            columns = tuple(
                dataclasses.replace(
                    column,
                    type=column.pg_type,
                    default=(
                        f"nextval('{_pg_identifier(f'{table.name}_{column.name}_seq')}'::regclass)"
                        if column.auto_increment
                        else column.pg_default
                    ),
                    charset=None,
                    collation=None,
                )
                for column in _pg_column_order(table, positions)
            )
            projected.append(
                dataclasses.replace(
                    table,
                    columns=columns,
                    indexes=tuple(
                        dataclasses.replace(index, name=_pg_identifier(index.pg_name)) for index in indexes
                    ),
                    engine=None,
                    charset=None,
                    collation=None,
                    primary_key_name=_pg_identifier(table.primary_key_name or f"{table.name}_pkey"),
                )
            )
        else:
            columns = table.columns
            if not display_widths:
                columns = tuple(dataclasses.replace(c, type=_mysql8_type(c.type)) for c in columns)
            projected.append(
                dataclasses.replace(table, columns=columns, indexes=indexes, primary_key_name="PRIMARY")
            )
    return Schema(engine=engine, tables=tuple(projected))


# --------------------------------------------------------------------------- DDL


def _backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _double_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mysql_column_sql(column: Column) -> str:
    parts = [_backtick(column.name), column.type]
    if column.charset is not None:
        parts.append(f"CHARACTER SET {column.charset}")
    if column.collation is not None:
        parts.append(f"COLLATE {column.collation}")
    parts.append("NULL" if column.nullable else "NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    elif column.nullable:
        # Explicit, so that a TIMESTAMP column never gets an implicit CURRENT_TIMESTAMP.
        parts.append("DEFAULT NULL")
    if column.auto_increment:
        parts.append("AUTO_INCREMENT")
    return " ".join(parts)


def _mysql_table_sql(table: Table) -> str:
    lines = [_mysql_column_sql(column) for column in table.columns]
    lines.append("PRIMARY KEY (" + ",".join(_backtick(c) for c in table.primary_key) + ")")
    for index in table.indexes:
        kind = "UNIQUE KEY" if index.unique else "KEY"
        columns = ",".join(_backtick(c) for c in index.columns)
        lines.append(f"{kind} {_backtick(index.name)} ({columns})")
    body = ",\n  ".join(lines)
    options = f"ENGINE={table.engine or 'InnoDB'}"
    if table.charset is not None:
        options += f" DEFAULT CHARSET={table.charset}"
    if table.collation is not None:
        options += f" COLLATE={table.collation}"
    return f"CREATE TABLE {_backtick(table.name)} (\n  {body}\n) {options}"


def _pg_column_sql(column: Column) -> str:
    if column.auto_increment:
        return f"{_double_quote(column.name)} SERIAL NOT NULL"
    parts = [_double_quote(column.name), column.type]
    parts.append("NULL" if column.nullable else "NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    return " ".join(parts)


def _pg_table_sql(table: Table) -> list[str]:
    lines = [_pg_column_sql(column) for column in table.columns]
    primary = ", ".join(_double_quote(c) for c in table.primary_key)
    lines.append(f"CONSTRAINT {_double_quote(table.primary_key_name)} PRIMARY KEY ({primary})")
    body = ",\n  ".join(lines)
    statements = [f"CREATE TABLE {_double_quote(table.name)} (\n  {body}\n)"]
    for index in table.indexes:
        kind = "UNIQUE INDEX" if index.unique else "INDEX"
        columns = ", ".join(_double_quote(c) for c in index.columns)
        statement = f"CREATE {kind} {_double_quote(index.name)} ON {_double_quote(table.name)} ({columns})"
        if index.where:
            statement += f" WHERE {index.where}"
        statements.append(statement)
    return statements


def create_table_statements(engine: str, *, tables: Sequence[Table] = TABLES_512) -> list[str]:
    """Return the DDL statements (without trailing semicolons) that create ``tables`` on ``engine``.

    MariaDB/MySQL: one CREATE TABLE per table with InnoDB, the table's default
    charset and collation, each column's charset and collation, AUTO_INCREMENT
    email_queue.id and the engine-assigned index names. PostgreSQL: CREATE TABLE with
    the pg types, SERIAL email_queue.id and a named primary key, then one CREATE INDEX
    per index (the partial unique index on scim_entries included).
    Raises UsageError for an unknown engine.
    """
    schema = expected_schema(engine, tables=tables)
    statements: list[str] = []
    for table in schema.tables:
        if schema.engine == "postgresql":
            statements.extend(_pg_table_sql(table))
        else:
            statements.append(_mysql_table_sql(table))
    return statements


def create_tables(connection: Any, engine: str, *, tables: Sequence[Table] = TABLES_512) -> None:
    """Create ``tables`` (passbolt 5.12's by default) in the connection's current database.

    The database must not hold tables of the same names. Commits at the end.
    Raises DatabaseError when the server refuses a statement, UsageError for an
    unknown engine.
    """
    statements = create_table_statements(engine, tables=tables)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        connection.commit()
    except Exception as exc:  # the driver's error: translated at this boundary
        if isinstance(exc, (DatabaseError, UsageError)):
            raise
        raise DatabaseError(
            f"creating passbolt's tables failed: {exc}",
            hint="create them in an empty database the account may create tables in",
        ) from exc


# --------------------------------------------------------------------------- reading


def _unquote_mysql_default(value: str | None) -> str | None:
    """MariaDB quotes string defaults and reports DEFAULT NULL as 'NULL'; MySQL does neither."""
    if value is None or value == "NULL":
        return None
    if len(value) >= 2 and value[0] == "'" and value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _describe_mysql(connection: Any, database: str) -> Schema:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (database,),
        )
        table_rows = list(cursor.fetchall())
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,"
            " CHARACTER_SET_NAME, COLLATION_NAME, EXTRA FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        column_rows = list(cursor.fetchall())
        cursor.execute(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART"
            " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
            " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (database,),
        )
        index_rows = list(cursor.fetchall())

    columns: dict[str, list[Column]] = {}
    for table_name, name, column_type, is_nullable, default, charset, collation, extra in column_rows:
        columns.setdefault(_text(table_name), []).append(
            Column(
                name=_text(name),
                type=_text(column_type),
                nullable=_text(is_nullable) == "YES",
                default=_unquote_mysql_default(None if default is None else _text(default)),
                charset=None if charset is None else _text(charset),
                collation=None if collation is None else _text(collation),
                auto_increment="auto_increment" in _text(extra or "").lower(),
            )
        )
    index_parts: dict[str, dict[str, tuple[bool, list[str]]]] = {}
    for table_name, index_name, non_unique, column_name, sub_part in index_rows:
        per_table = index_parts.setdefault(_text(table_name), {})
        unique, parts = per_table.setdefault(_text(index_name), (int(non_unique) == 0, []))
        part = _text(column_name)
        if sub_part is not None:
            part += f"({int(sub_part)})"
        parts.append(part)

    tables = []
    for table_name, engine, collation in table_rows:
        name = _text(table_name)
        primary_key: tuple[str, ...] = ()
        indexes = []
        for index_name, (unique, parts) in sorted(index_parts.get(name, {}).items()):
            if index_name == "PRIMARY":
                primary_key = tuple(parts)
            else:
                indexes.append(Index(name=index_name, columns=tuple(parts), unique=unique))
        collation_text = None if collation is None else _text(collation)
        tables.append(
            Table(
                name=name,
                columns=tuple(columns.get(name, [])),
                primary_key=primary_key,
                indexes=tuple(indexes),
                engine=None if engine is None else _text(engine),
                charset=None if collation_text is None else collation_text.split("_", 1)[0],
                collation=collation_text,
                primary_key_name="PRIMARY",
            )
        )
    return Schema(engine="mariadb", tables=tuple(tables))


def _strip_parentheses(text: str) -> str:
    """PostgreSQL prints an index predicate as '(deleted IS NULL)'; compare it bare."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for character in text:
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _describe_postgresql(connection: Any, schema_name: str) -> Schema:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.oid, c.relname FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            (schema_name,),
        )
        table_rows = list(cursor.fetchall())
        cursor.execute(
            "SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
            " a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid)"
            " FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0"
            " AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum",
            (schema_name,),
        )
        column_rows = list(cursor.fetchall())
        cursor.execute(
            "SELECT i.indrelid, ic.relname, i.indisunique, i.indisprimary, i.indnkeyatts,"
            " i.indexrelid, pg_catalog.pg_get_expr(i.indpred, i.indrelid)"
            " FROM pg_catalog.pg_index i"
            " JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
            " JOIN pg_catalog.pg_class c ON c.oid = i.indrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s ORDER BY i.indrelid, ic.relname",
            (schema_name,),
        )
        index_rows = list(cursor.fetchall())
        # Each key column (or expression) of each index, in index order.
        cursor.execute(
            "SELECT i.indexrelid, k.position, pg_catalog.pg_get_indexdef(i.indexrelid, k.position::int, true)"
            " FROM pg_catalog.pg_index i"
            " JOIN pg_catalog.pg_class c ON c.oid = i.indrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " CROSS JOIN LATERAL generate_series(1, i.indnkeyatts) AS k(position)"
            " WHERE n.nspname = %s ORDER BY i.indexrelid, k.position",
            (schema_name,),
        )
        index_columns: dict[int, tuple[str, ...]] = {}
        for index_oid, _, definition in cursor.fetchall():
            key = int(index_oid)
            index_columns[key] = (*index_columns.get(key, ()), str(definition).strip('"'))

    columns: dict[int, list[Column]] = {}
    for relid, name, type_text, not_null, default in column_rows:
        default_text = None if default is None else str(default)
        columns.setdefault(int(relid), []).append(
            Column(
                name=str(name),
                type=str(type_text),
                nullable=not bool(not_null),
                default=default_text,
                auto_increment=default_text is not None and default_text.startswith("nextval("),
            )
        )
    tables = []
    for oid, table_name in table_rows:
        primary_key: tuple[str, ...] = ()
        primary_key_name = ""
        indexes = []
        for relid, index_name, unique, primary, _, index_oid, predicate in index_rows:
            if int(relid) != int(oid):
                continue
            if primary:
                primary_key = index_columns[int(index_oid)]
                primary_key_name = str(index_name)
                continue
            indexes.append(
                Index(
                    name=str(index_name),
                    columns=index_columns[int(index_oid)],
                    unique=bool(unique),
                    where=None if predicate is None else _strip_parentheses(str(predicate)),
                )
            )
        tables.append(
            Table(
                name=str(table_name),
                columns=tuple(columns.get(int(oid), [])),
                primary_key=primary_key,
                indexes=tuple(indexes),
                engine=None,
                charset=None,
                collation=None,
                primary_key_name=primary_key_name,
            )
        )
    return Schema(engine="postgresql", tables=tuple(tables))


def _text(value: Any) -> str:
    """information_schema columns come back as bytes from some servers; return str."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return str(value)


def describe_database(connection: Any, engine: str, database_or_schema: str) -> Schema:
    """Read the tables of one database (MySQL family) or schema (PostgreSQL) into a Schema.

    MariaDB/MySQL: from information_schema TABLES, COLUMNS and STATISTICS (types as
    COLUMN_TYPE, so with whatever display widths the server shows; an index prefix
    shows as ``column(length)``). PostgreSQL: from pg_catalog (types as
    ``format_type``, defaults as ``pg_get_expr``, partial index predicates without
    their outer parentheses). Returns a Schema of the given engine, tables by name.
    Raises DatabaseError when a query fails, UsageError for an unknown engine.
    """
    engine = _check_engine(engine)
    try:
        if engine == "postgresql":
            return _describe_postgresql(connection, database_or_schema)
        schema = _describe_mysql(connection, database_or_schema)
        return dataclasses.replace(schema, engine=engine)
    except Exception as exc:  # the driver's error: translated at this boundary
        if isinstance(exc, (DatabaseError, UsageError)):
            raise
        raise DatabaseError(
            f"reading the schema of {database_or_schema!r} failed: {exc}",
            hint="check that the account may read information_schema and the database exists",
        ) from exc


# --------------------------------------------------------------------------- comparing


def _shown(value: str | None) -> str:
    return "none" if value is None else value


def _compare_columns(
    table: str, expected: Column, actual: Column, *, allow_legacy_nullability: bool
) -> list[str]:
    where = f"table {table}: column {expected.name}"
    differences = []
    if expected.type != actual.type:
        differences.append(f"{where} has type {actual.type}, expected {expected.type}")
    if expected.nullable != actual.nullable and not (allow_legacy_nullability and expected.nullable_varies):
        state = "NULL-able" if actual.nullable else "NOT NULL"
        wanted = "NULL-able" if expected.nullable else "NOT NULL"
        differences.append(f"{where} is {state}, expected {wanted}")
    if expected.default != actual.default:
        differences.append(f"{where} has default {_shown(actual.default)}, expected {_shown(expected.default)}")
    if expected.charset != actual.charset:
        differences.append(f"{where} has charset {_shown(actual.charset)}, expected {_shown(expected.charset)}")
    if expected.collation != actual.collation:
        differences.append(
            f"{where} has collation {_shown(actual.collation)}, expected {_shown(expected.collation)}"
        )
    if expected.auto_increment != actual.auto_increment:
        state = "is" if actual.auto_increment else "is not"
        differences.append(f"{where} {state} auto-increment, expected the opposite")
    return differences


def _describe_index(index: Index) -> str:
    text = ("unique " if index.unique else "") + "(" + ", ".join(index.columns) + ")"
    if index.where:
        text += f" where {index.where}"
    return text


def _compare_tables(
    expected: Table, actual: Table, engine: Engine, *, allow_legacy_nullability: bool
) -> list[str]:
    name = expected.name
    differences = []
    if expected.engine != actual.engine:
        differences.append(f"table {name} uses engine {_shown(actual.engine)}, expected {_shown(expected.engine)}")
    if expected.charset != actual.charset:
        differences.append(
            f"table {name} has default charset {_shown(actual.charset)}, expected {_shown(expected.charset)}"
        )
    if expected.collation != actual.collation:
        differences.append(
            f"table {name} has default collation {_shown(actual.collation)}, expected {_shown(expected.collation)}"
        )
    actual_columns = {column.name: column for column in actual.columns}
    expected_names = [column.name for column in expected.columns]
    for column in expected.columns:
        found = actual_columns.get(column.name)
        if found is None:
            differences.append(f"table {name}: column {column.name} is missing")
        else:
            differences.extend(
                _compare_columns(name, column, found, allow_legacy_nullability=allow_legacy_nullability)
            )
    for column in actual.columns:
        if column.name not in expected_names:
            differences.append(f"table {name}: column {column.name} is not expected (extra column)")
    # Column order is fixed by the migrations on the MySQL family (they honour 'after');
    # on PostgreSQL it depends on the instance's upgrade history, so it is not compared.
    common_actual = [column.name for column in actual.columns if column.name in expected_names]
    common_expected = [n for n in expected_names if n in actual_columns]
    if engine in MYSQL_FAMILY and common_actual != common_expected:
        differences.append(
            f"table {name}: columns are in the order {', '.join(common_actual)}; "
            f"expected {', '.join(common_expected)}"
        )
    if expected.primary_key != actual.primary_key:
        shown = ", ".join(actual.primary_key) or "none"
        differences.append(f"table {name} has primary key ({shown}), expected ({', '.join(expected.primary_key)})")
    elif actual.primary_key and expected.primary_key_name != actual.primary_key_name:
        differences.append(
            f"table {name}: primary key is named {actual.primary_key_name}, expected {expected.primary_key_name}"
        )
    actual_indexes = {index.name: index for index in actual.indexes}
    expected_index_names = {index.name for index in expected.indexes}
    for index in expected.indexes:
        found = actual_indexes.get(index.name)
        if found is None:
            differences.append(f"table {name}: index {index.name} {_describe_index(index)} is missing")
        elif (found.columns, found.unique, found.where) != (index.columns, index.unique, index.where):
            differences.append(
                f"table {name}: index {index.name} is {_describe_index(found)}, expected {_describe_index(index)}"
            )
    for index in actual.indexes:
        if index.name not in expected_index_names:
            differences.append(
                f"table {name}: index {index.name} {_describe_index(index)} is not expected (extra index)"
            )
    return differences


def compare_schema(expected: Schema, actual: Schema, *, allow_legacy_nullability: bool = False) -> list[str]:
    """Return every difference between ``expected`` and ``actual``, one sentence each.

    Differences named: a missing or extra table; a table's engine, default charset or
    collation; a missing or extra column, a column's type (as the engine reports it,
    display widths included), nullability, default, charset, collation or
    auto-increment; the column order (MySQL family only); the primary key; a missing,
    extra or different index (columns, uniqueness, predicate). An empty list means
    the two are identical. ``allow_legacy_nullability`` accepts NOT NULL on the
    columns whose nullability depends on the passbolt version that ran the migration.
    Comparing a MySQL-family schema with a PostgreSQL one gives a single difference.
    """
    if (expected.engine == "postgresql") != (actual.engine == "postgresql"):
        return [f"the database is a {actual.engine} database, expected {expected.engine}"]
    differences: list[str] = []
    actual_names = set(actual.table_names)
    for table in expected.tables:
        found = actual.table(table.name)
        if found is None:
            differences.append(f"table {table.name} is missing")
        else:
            differences.extend(
                _compare_tables(table, found, expected.engine, allow_legacy_nullability=allow_legacy_nullability)
            )
    expected_names = set(expected.table_names)
    for name in sorted(actual_names - expected_names):
        differences.append(f"table {name} is not expected (extra table)")
    return differences


# --------------------------------------------------------------------------- migration levels


@dataclass(frozen=True)
class MigrationLevel:
    """Where a database stands, from its ``phinxlog`` rows.

    ``version`` is the highest applied migration version (0 when none); ``name`` that
    migration's class name. ``unknown`` lists applied versions strongroom does not know
    (a passbolt newer than 5.12, or a plugin); ``missing`` lists known migrations at or
    below ``version`` that are not applied (a damaged or partial migration history).
    """

    version: int
    name: str | None
    applied: int
    unknown: tuple[Migration, ...]
    missing: tuple[Migration, ...]

    @property
    def newer_than_known(self) -> bool:
        """True when the database has migrations beyond the newest strongroom knows."""
        return self.version > PHINXLOG_512[-1].version

    @property
    def is_known_release(self) -> bool:
        """True when every applied migration is known and none is missing below the level."""
        return not self.unknown and not self.missing


def _row_to_migration(row: Any) -> Migration:
    if isinstance(row, Migration):
        return row
    if isinstance(row, Mapping):
        version = row.get("version")
        name = row.get("migration_name", row.get("name"))
    else:
        version, name = row[0], row[1]
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("utf-8", "replace")
    return Migration(version=int(version), name="" if name is None else str(name))


def migration_level(phinxlog_rows: Iterable[Any]) -> MigrationLevel:
    """Return the MigrationLevel of a database from its ``phinxlog`` rows.

    A row is a :class:`Migration`, a ``(version, migration_name, ...)`` sequence, or a
    mapping with ``version`` and ``migration_name``. Raises nothing: an empty phinxlog
    gives level 0.
    """
    rows = sorted({m.version: m for m in map(_row_to_migration, phinxlog_rows)}.values(), key=lambda m: m.version)
    known_versions = {migration.version for migration in PHINXLOG_512}
    applied_versions = {migration.version for migration in rows}
    top = rows[-1] if rows else None
    version = top.version if top else 0
    unknown = tuple(migration for migration in rows if migration.version not in known_versions)
    missing = tuple(
        migration
        for migration in PHINXLOG_512
        if migration.version <= version and migration.version not in applied_versions
    )
    return MigrationLevel(
        version=version,
        name=top.name if top else None,
        applied=len(rows),
        unknown=unknown,
        missing=missing,
    )


@dataclass(frozen=True)
class TableRequirement:
    """The tables a database at some migration level must have.

    ``exact`` is True when strongroom knows that level's full schema (passbolt 5.12's
    last migration); otherwise ``tables`` is what is known to be required and
    ``note`` says what is not checked.
    """

    tables: tuple[str, ...]
    exact: bool
    note: str | None = None


def tables_at(level: MigrationLevel | int) -> TableRequirement:
    """Return the tables a passbolt database at migration ``level`` must have.

    ``level`` is a MigrationLevel or a phinxlog version. At 5.12's last migration:
    all 53 tables, exact. Newer (unknown) levels: the 53 tables of 5.12, with a note
    that tables newer releases add are not checked. Older levels: the 5.12 tables
    that existed by then (``phinxlog`` included), with a note that tables created and
    dropped before 5.12 are not listed. Level 0: no tables required, with a note.
    """
    version = level.version if isinstance(level, MigrationLevel) else int(level)
    last = PHINXLOG_512[-1]
    every = tuple(table.name for table in TABLES_512)
    if version == 0:
        return TableRequirement(
            tables=(),
            exact=False,
            note="phinxlog is empty or missing: the database was never migrated by passbolt",
        )
    if version == last.version:
        return TableRequirement(tables=every, exact=True)
    if version > last.version:
        return TableRequirement(
            tables=every,
            exact=False,
            note=(
                f"migration level {version} is newer than passbolt {PASSBOLT_VERSION} "
                f"(last known migration {last.version} {last.name}): the {len(every)} tables of "
                f"{PASSBOLT_VERSION} are required, tables added by newer releases are not checked"
            ),
        )
    positions = _migration_positions()
    reached = max(
        (position for position, migration in enumerate(PHINXLOG_512) if migration.version <= version),
        default=-1,
    )
    required = tuple(
        table.name
        for table in TABLES_512
        if not table.created_by or positions.get(table.created_by, len(PHINXLOG_512)) <= reached
    )
    return TableRequirement(
        tables=required,
        exact=False,
        note=(
            f"migration level {version} is older than passbolt {PASSBOLT_VERSION}: the tables of "
            f"{PASSBOLT_VERSION} that existed by then are required; tables that older releases had "
            "and later dropped are not listed"
        ),
    )
