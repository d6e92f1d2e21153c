"""Loading a snapshot's database dump into a database: shared by ``drill`` and ``restore``.

The dump is untrusted input (a storage attacker cannot forge a signed snapshot, but
a drill must hold even if the backup host itself was compromised), so it travels

    repository → work file (0600, in the caller's private folder) → sqlguard (vets, merges) → client

- the repository writes the component into ``work_dir`` (records at computed
  offsets, every pack read once) and checks its keyed content hash;
- :mod:`strongroom.drill.sqlguard` lets through only what dumps contain (no
  ``INTO OUTFILE``, no client shell escape, no ``GRANT``...), maps MySQL 8
  collations when loading into MariaDB, and, in the same pass, merges MariaDB's
  one-row-per-line INSERTs into multi-row INSERTs, which load several times faster
  (what :mod:`strongroom.source.sqlmerge` does; a second pass over the dump in
  the same thread made Python, not the server, the bottleneck of a load);
- :func:`strongroom.dbserver.load.load_dump` feeds the client (option file or
  ``PGPASSFILE``, never argv).

The work file is removed as soon as the load ends, whatever happened. A caller that
may be killed keeps ``work_dir`` inside something a watchdog removes (the drill uses
the throwaway server's private directory).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.dbserver.load import load_dump
from strongroom.drill.sqlguard import GuardStatistics, guard_dump
from strongroom.progress import LogReporter, Reporter
from strongroom.repository.repository import Repository, Snapshot

DATABASE_KINDS = ("mariadb-dump", "postgresql-dump")
READ_CHUNK = 1 << 20
# The dumpers' completion lines: a dump without its own is truncated.
TRAILERS = {"mariadb": b"-- Dump completed", "postgresql": b"-- PostgreSQL database dump complete"}


def _ends_with_trailer(path: Path, dialect: str) -> bool:
    """True when the dump's last bytes hold its dumper's completion line."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        stream.seek(max(0, size - 4096))
        return TRAILERS[dialect] in stream.read()


@dataclass(frozen=True)
class LoadReport:
    """What loading a snapshot's dump did, and how long each part took."""

    component: str
    dump_bytes: int
    fetch_seconds: float
    load_seconds: float
    rows: int
    statements: dict[str, int]
    mapped_collations: dict[str, int]
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def database_component(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot's database dump component. Raises UsageError when it has none."""
    for component in snapshot.components:
        if component.get("kind") in DATABASE_KINDS:
            return component
    return snapshot.component("database.sql")  # raises UsageError naming the components


def _chunks(path: Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while block := stream.read(READ_CHUNK):
            yield block
            if on_bytes is not None:
                on_bytes(len(block))


def load_dump_file(
    path: Path,
    dialect: str,
    target: DatabaseTarget,
    *,
    map_mysql8_collations: bool = False,
    bin_dir: Path | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> GuardStatistics:
    """Load the dump file ``path`` (``dialect`` ``mariadb`` or ``postgresql``) into ``target`` through the guard.

    MariaDB INSERT rows are merged into multi-row statements by the guard as it
    vets them. ``on_bytes(n)`` is called as the file is read. Returns what the guard
    let through. Raises UnsafeDumpError (a CheckFailed) for a refused statement,
    DatabaseError when a statement fails.
    """
    statistics = GuardStatistics()
    vetted = guard_dump(
        _chunks(path, on_bytes),
        dialect,
        map_mysql8_collations=map_mysql8_collations,
        database=target.database,
        statistics=statistics,
        merge_inserts=dialect == "mariadb",
    )
    load_dump(target, vetted, bin_dir=bin_dir)
    return statistics


def load_snapshot_dump(
    repository: Repository,
    snapshot: Snapshot,
    target: DatabaseTarget,
    *,
    work_dir: Path,
    map_mysql8_collations: bool = False,
    bin_dir: Path | None = None,
    reporter: Reporter | None = None,
) -> LoadReport:
    """Load ``snapshot``'s dump into ``target`` (its database must exist and should be empty).

    ``work_dir`` is a private folder (0700) for the decrypted dump while it loads.
    ``bin_dir`` prefers the clients next to a throwaway server's binaries.
    Returns the LoadReport. Raises IdentityError, IntegrityError (damaged data),
    UnsafeDumpError (a CheckFailed: the dump holds something a dump never holds),
    DatabaseError (a statement failed), StorageError.
    """
    report = reporter or LogReporter()
    component = database_component(snapshot)
    name = str(component["name"])
    dialect = "postgresql" if component["kind"] == "postgresql-dump" else "mariadb"
    work_file = work_dir / "dump.sql"
    started = time.monotonic()
    try:
        report.phase(f"fetching and decrypting {name}", total=int(component["size"]))
        repository.restore_component(snapshot, name, work_file)
        complete = _ends_with_trailer(work_file, dialect)
        fetched = time.monotonic()
        report.phase(f"loading {name} into {target.describe()}", total=int(component["size"]))
        statistics = load_dump_file(
            work_file,
            dialect,
            target,
            map_mysql8_collations=map_mysql8_collations,
            bin_dir=bin_dir,
            on_bytes=report.advance,
        )
        loaded = time.monotonic()
    finally:
        work_file.unlink(missing_ok=True)
    return LoadReport(
        component=name,
        dump_bytes=int(component["size"]),
        fetch_seconds=round(fetched - started, 3),
        load_seconds=round(loaded - fetched, 3),
        rows=statistics.rows,
        statements=dict(statistics.statements),
        mapped_collations=dict(statistics.mapped_collations),
        complete=complete,
    )
