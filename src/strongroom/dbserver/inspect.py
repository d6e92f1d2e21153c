"""Row counts and content checksums of a database's tables.

Used for the live counts a backup records, for the drill's comparison of a loaded
database with the counts taken from the dump, and by tests that compare a restored
database with its source, table by table.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.dbserver.connection import Connection, list_tables
from strongroom.errors import DatabaseError


@dataclass(frozen=True)
class TableFingerprint:
    """A table's row count and an order-independent checksum of its content."""

    rows: int
    checksum: str


def _quote(engine: str, name: str) -> str:
    if engine == "postgresql":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def _scalar_rows(connection: Connection, query: str) -> list[tuple[object, ...]]:
    cursor = connection.cursor()
    try:
        cursor.execute(query)
        return list(cursor.fetchall())
    except Exception as exc:
        raise DatabaseError(f"the query {query!r} failed: {exc}") from None
    finally:
        cursor.close()


def count_rows(connection: Connection, engine: str, tables: list[str] | None = None, schema: str | None = None) -> dict[str, int]:
    """Return ``{table: number of rows}`` for ``tables`` (default: every base table).

    Raises DatabaseError when a query fails.
    """
    names = tables if tables is not None else list_tables(connection, engine, schema)
    counts: dict[str, int] = {}
    for name in names:
        qualified = f"{_quote(engine, schema)}.{_quote(engine, name)}" if schema and engine == "postgresql" else _quote(engine, name)
        (row,) = _scalar_rows(connection, f"SELECT COUNT(*) FROM {qualified}")
        counts[name] = int(row[0])  # type: ignore[call-overload]
    return counts


def table_fingerprints(connection: Connection, engine: str, schema: str | None = None) -> dict[str, TableFingerprint]:
    """Return ``{table: TableFingerprint}`` for every base table.

    MariaDB/MySQL use ``CHECKSUM TABLE ... EXTENDED``; PostgreSQL an md5 over the
    sorted md5 of every row's text. Both ignore row order, so a database loaded from
    a dump compares equal to its source. Raises DatabaseError when a query fails.
    """
    result: dict[str, TableFingerprint] = {}
    counts = count_rows(connection, engine, schema=schema)
    for name, rows in counts.items():
        quoted = _quote(engine, name)
        if engine == "postgresql":
            qualified = f"{_quote(engine, schema)}.{quoted}" if schema else quoted
            (row,) = _scalar_rows(
                connection,
                f"SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(t::text) AS h FROM {qualified} t) s",
            )
            checksum = str(row[0])
        else:
            (row,) = _scalar_rows(connection, f"CHECKSUM TABLE {quoted} EXTENDED")
            checksum = str(row[1])
        result[name] = TableFingerprint(rows, checksum)
    return result
