"""The shapes in which strongroom describes a passbolt database schema and its seed data.

These are plain frozen dataclasses, so that a release's schema can be written down as
literals (:mod:`strongroom.passbolt.schema_512`) and a live database can be read into
the same shape (:func:`strongroom.passbolt.schema.describe_database`). They live apart
from :mod:`strongroom.passbolt.schema` only so that the generated literal module and
the functions can import them without a cycle; use them through ``schema``.

A *definition* (as in ``schema_512``) carries both engines' facts: ``Column.type`` is
the MySQL/MariaDB column type as MariaDB reports it (``char(36)``, ``int(11)``) and
``Column.pg_type`` the PostgreSQL type; ``Index.name`` is the MySQL name and
``Index.pg_name`` the PostgreSQL one. A :class:`Schema` is one engine's *view*: its
columns' ``type`` and indexes' ``name`` are that engine's, the other engine's fields
are left as they were and never compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Engine = Literal["mariadb", "mysql", "postgresql"]
ENGINES: tuple[Engine, ...] = ("mariadb", "mysql", "postgresql")


@dataclass(frozen=True)
class Column:
    """One column.

    ``type`` is the full column type as the MySQL family reports it
    (information_schema COLUMN_TYPE, e.g. ``varchar(36)``, ``int(11)``,
    ``tinyint(1)``); ``default`` the default as an SQL literal (``"0"``) or None
    for no default / DEFAULT NULL. ``charset``/``collation`` are None for columns
    that have none (numbers, dates) and on PostgreSQL. ``pg_type`` is the
    PostgreSQL type as ``format_type()`` prints it, ``pg_default`` the PostgreSQL
    default expression. ``auto_increment`` is AUTO_INCREMENT on MySQL, SERIAL on
    PostgreSQL. ``nullable_varies`` marks columns whose nullability depends on the
    Phinx version that ran the migration (NULL-able on fresh 5.x installs, NOT NULL
    on instances migrated before passbolt 5). ``added_by`` names the migration that
    added the column (empty for tables passbolt's migration tool creates itself).
    """

    name: str
    type: str
    nullable: bool
    default: str | None = None
    charset: str | None = None
    collation: str | None = None
    auto_increment: bool = False
    pg_type: str = ""
    pg_default: str | None = None
    nullable_varies: bool = False
    added_by: str = ""


@dataclass(frozen=True)
class Index:
    """A secondary index (the primary key is :attr:`Table.primary_key`).

    ``columns`` in index order; ``where`` is the predicate of a partial index
    (PostgreSQL only) as written, without surrounding parentheses. ``engines``
    lists the engines that have the index (passbolt adds one PostgreSQL-only index).
    """

    name: str
    columns: tuple[str, ...]
    unique: bool
    pg_name: str = ""
    where: str | None = None
    engines: tuple[Engine, ...] = ENGINES
    added_by: str = ""


@dataclass(frozen=True)
class Table:
    """A table: its columns in order, primary key, secondary indexes and table options.

    ``engine`` is the storage engine (``InnoDB``; None on PostgreSQL), ``charset`` and
    ``collation`` the table defaults (None on PostgreSQL). ``primary_key_name`` is
    ``PRIMARY`` on MySQL and ``<table>_pkey`` on PostgreSQL in an engine view; in a
    definition it is the PostgreSQL constraint name (MySQL's is always ``PRIMARY``).
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    engine: str | None = "InnoDB"
    charset: str | None = None
    collation: str | None = None
    primary_key_name: str = "PRIMARY"
    created_by: str = ""

    def column(self, name: str) -> Column | None:
        """Return the column called ``name``, or None when the table has none."""
        for column in self.columns:
            if column.name == name:
                return column
        return None


@dataclass(frozen=True)
class Schema:
    """One engine's view of a set of tables (see the module docstring)."""

    engine: Engine
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table | None:
        """Return the table called ``name``, or None when the schema has none."""
        for table in self.tables:
            if table.name == name:
                return table
        return None

    @property
    def table_names(self) -> tuple[str, ...]:
        """The names of the tables, in the schema's order."""
        return tuple(table.name for table in self.tables)


@dataclass(frozen=True)
class Migration:
    """One row of passbolt's ``phinxlog`` table: a migration's version and class name."""

    version: int
    name: str


@dataclass(frozen=True)
class Role:
    """A seeded role. Its id is a random UUIDv4 in production (``debug_id`` with debug on)."""

    name: str
    description: str
    created: str
    modified: str
    debug_id: str


@dataclass(frozen=True)
class ResourceType:
    """A seeded resource type; ``definition`` is its JSON schema as Python values."""

    id: str
    slug: str
    name: str
    description: str
    definition: dict[str, Any] = field(hash=False)
    seeded_by: str = ""
