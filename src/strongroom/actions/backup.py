"""The ``backup`` action: one complete, consistent, encrypted snapshot of a passbolt instance.

Order of work (a failure at any step leaves no snapshot and earlier ones untouched):

1. discover the instance and run every check; an error-level finding stops here;
2. take the live database's row counts (for a sanity comparison) and its version;
3. take the repository lock and stream the dump straight into the repository
   (no plaintext on disk); the dump counts only when the dumper exited 0 and its
   completion trailer arrived;
4. store the files of the backup set with mode, owner and mtime (deduplication
   makes unchanged files free: "back these up when they change");
5. commit the signed snapshot with its manifest.

The manifest says what changed since the previous snapshot; a changed server key or
configured fingerprint is a loud warning (exit status stays 0, the warning is in
the result, the log and the manifest, so status and notifications can see it).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom import __version__
from strongroom.config.schema import Config, InstanceConfig
from strongroom.dbserver.connection import connect, list_tables, server_version
from strongroom.dbserver.inspect import count_rows
from strongroom.errors import CheckFailed, CommandError, ConfigError, DatabaseError, StrongroomError
from strongroom.execute import run as run_program
from strongroom.progress import LogReporter, Reporter
from strongroom.repository.keys import WriterKey
from strongroom.repository.repository import Repository, SnapshotInfo
from strongroom.source import backupset as roles
from strongroom.source.backupset import BackupFile
from strongroom.source.checks import run_checks
from strongroom.source.discovery import Instance, discover_instance
from strongroom.source.docker import container_query_command
from strongroom.source.dump import DockerContainer, DumpResult, open_dump, server_is_mariadb
from strongroom.source.findings import Severity, has_errors, sorted_by_severity
from strongroom.storage.backend import Backend
# --- storage targets (issue 6): the primary location and its replicas ---
from strongroom.actions.targets import TargetOutcome, open_primary, replicate_to_targets

DATABASE_COMPONENT = "database.sql"
FILES_PREFIX = "files"

# Roles whose change deserves a loud warning: users cannot log in with another server key.
KEY_ROLES = (roles.SERVER_KEY_PUBLIC, roles.SERVER_KEY_PRIVATE)


@dataclass(frozen=True)
class BackupOptions:
    """What ``backup`` may be told: another root, and (tests) a wrapper around the storage backend."""

    root: Path | None = None
    environment: Mapping[str, str] | None = None
    wrap_backend: Callable[[Backend], Backend] | None = None


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: the snapshot, the manifest it carries and what deserves attention."""

    snapshot: SnapshotInfo
    manifest: dict[str, Any]
    warnings: tuple[str, ...]
    seconds: float
    targets: tuple[TargetOutcome, ...] = ()  # replicas of the primary (issue 6); empty: one location

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        info = self.snapshot
        return {
            "snapshot": info.name,
            "short_id": info.short_id,
            "sequence": info.sequence,
            "time": info.time,
            "stored_bytes": info.stored_bytes,
            "seconds": round(self.seconds, 3),
            "components": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "size": c.size,
                    "new_bytes": c.new_bytes,
                    "chunks": c.chunks,
                    "new_chunks": c.new_chunks,
                }
                for c in info.components
            ],
            "changes": self.manifest.get("changes", {}),
            "warnings": list(self.warnings),
            "targets": [outcome.to_dict() for outcome in self.targets],
        }


@dataclass
class _LiveDatabase:
    version: str
    row_counts: dict[str, int] = field(default_factory=dict)
    note: str | None = None


def _component_name(path: PurePosixPath) -> str:
    return f"{FILES_PREFIX}/{str(path).lstrip('/')}"


def _live_database(instance: Instance) -> _LiveDatabase:
    """The server's version and live row counts of every table, just before the dump.

    Raises DatabaseError when the database cannot be queried.
    """
    target = instance.database
    assert target is not None
    container = instance.backup_set.database_container
    if container is not None:
        return _live_database_in_container(instance, container)
    connection = connect(target, timeout=15)
    try:
        version = server_version(connection)
        tables = list_tables(connection, target.engine, target.schema)
        counts = count_rows(connection, target.engine, tables, schema=target.schema if target.engine == "postgresql" else None)
    finally:
        connection.close()
    return _LiveDatabase(version, counts)


def _live_database_in_container(instance: Instance, container: str) -> _LiveDatabase:
    """Version and row counts through ``docker exec`` (the database is reachable only there)."""
    target = instance.database
    assert target is not None
    image = instance.docker.database_image if instance.docker is not None else None
    if target.engine == "postgresql":
        version_query = "SHOW server_version"
        tables_query = "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        quote = '"'
    else:
        version_query = "SELECT VERSION()"
        tables_query = "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'"
        quote = "`"

    def query(sql: str) -> list[list[str]]:
        argv, environment = container_query_command(target, container, image, [sql])
        answer = run_program(argv, env=environment, secrets=[target.password or ""], timeout=120,
                             what=f"querying the database in container {container}")
        lines = answer.stdout.decode("utf-8", "replace").splitlines()
        return [line.split("\t") for line in lines if line.strip()]

    try:
        version = query(version_query)[0][0].strip()
        tables = [row[0].strip() for row in query(tables_query)]
        counts: dict[str, int] = {}
        names = [name for name in tables if name.isidentifier()]
        if names:
            union = " UNION ALL ".join(f"SELECT '{name}', COUNT(*) FROM {quote}{name}{quote}" for name in names)
            counts = {row[0].strip(): int(row[1]) for row in query(union)}
    except (CommandError, IndexError, ValueError) as error:
        message = error.message if isinstance(error, CommandError) else f"unexpected answer ({error})"
        raise DatabaseError(f"cannot query the database in container {container}: {message}") from None
    return _LiveDatabase(version, counts)


def _engine_of(configured: str, version: str) -> str:
    """``mariadb``, ``mysql`` or ``postgresql``, from the configured engine and the server's version."""
    if configured == "postgresql":
        return configured
    return "mariadb" if server_is_mariadb(version) else "mysql"


def _walk(item: BackupFile) -> Iterator[tuple[PurePosixPath, Path]]:
    """(path as passbolt sees it, path on this host) of every regular file of ``item``."""
    assert item.location is not None
    if item.kind == "file":
        yield item.path, item.location
        return
    for directory, _subdirectories, files in os.walk(item.location):
        for name in sorted(files):
            host_path = Path(directory) / name
            relative = host_path.relative_to(item.location)
            if host_path.is_file() and not host_path.is_symlink():
                yield item.path / PurePosixPath(relative.as_posix()), host_path


def _previous_manifest(repository: Repository) -> dict[str, Any] | None:
    """The newest snapshot's manifest, or None when the repository has no snapshot."""
    listing = repository.list_snapshots()
    if not listing.snapshots:
        return None
    return dict(repository.load_snapshot_by_name(listing.snapshots[-1].name).body.get("manifest", {}))


def _changes(previous: dict[str, Any] | None, files: list[dict[str, Any]], fingerprint: str | None) -> tuple[dict[str, Any], list[str]]:
    """What changed in the files since the previous snapshot, and loud warnings about keys."""
    if previous is None:
        return {"first_snapshot": True, "added": [f["path"] for f in files], "changed": [], "removed": []}, []
    before = {f["path"]: f for f in previous.get("files", [])}
    now = {f["path"]: f for f in files}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(
        path for path in set(now) & set(before)
        if (now[path]["content_hash"], now[path]["mode"], now[path]["uid"], now[path]["gid"])
        != (before[path].get("content_hash"), before[path].get("mode"), before[path].get("uid"), before[path].get("gid"))
    )
    warnings: list[str] = []
    key_paths = {f["path"] for f in files if f["role"] in KEY_ROLES} | {
        f["path"] for f in previous.get("files", []) if f.get("role") in KEY_ROLES
    }
    touched_keys = sorted(key_paths & (set(added) | set(changed) | set(removed)))
    if touched_keys:
        warnings.append(
            "the server key changed since the previous snapshot ("
            + ", ".join(touched_keys)
            + "): if nobody rotated it on purpose, find out why; users cannot log in to a server whose key they do not know"
        )
    previous_fingerprint = previous.get("configured_fingerprint")
    if previous_fingerprint and fingerprint and previous_fingerprint != fingerprint:
        warnings.append(
            f"the configured server key fingerprint changed from {previous_fingerprint} to {fingerprint} since the previous snapshot"
        )
    changes = {"first_snapshot": False, "added": added, "changed": changed, "removed": removed, "server_key_changed": bool(warnings)}
    return changes, warnings


def _instance_config(config: Config, root: Path | None) -> InstanceConfig:
    if root is None:
        return config.instance
    return config.instance.model_copy(update={"root": root})


def run(config: Config, options: BackupOptions, reporter: Reporter | None = None) -> BackupResult:
    """Take one snapshot of the configured passbolt instance.

    Returns the BackupResult. Raises CheckFailed (an error-level finding: nothing
    written), ConfigError (no repository configured, writer key unreadable),
    DatabaseError (dump failed or incomplete: nothing written), LockedError,
    StorageError, RepositoryError.
    """
    report = reporter or LogReporter()
    started = time.monotonic()
    if config.repository is None:
        raise ConfigError("the configuration has no [repository] section", hint="run 'strongroom init' first")
    environment = options.environment if options.environment is not None else os.environ

    report.phase("checking the passbolt instance")
    instance_config = _instance_config(config, options.root)
    instance = discover_instance(instance_config.root, instance_config, environment)
    findings = sorted_by_severity(run_checks(instance, connect_database=True))
    if has_errors(findings):
        errors = [f for f in findings if f.severity is Severity.ERROR]
        listed = "\n".join(f"  {f.check}: {f.message}" for f in errors)
        raise CheckFailed(
            f"the backup set of the passbolt instance under {instance.root} has {len(errors)} error(s); no snapshot was written:\n{listed}",
            hint="fix them (run 'strongroom discover' to see every finding), then back up again",
        )
    target = instance.database
    if target is None:
        raise CheckFailed("no database settings were found for this passbolt instance; no snapshot was written",
                          hint="name it in the [instance] section of the configuration")
    warnings = [f"{f.check}: {f.message}" for f in findings if f.severity is Severity.WARNING]
    for text in warnings:
        report.warn(text)

    live = _live_database(instance)

    try:
        writer_key = WriterKey.load(config.repository.writer_key)
    except ConfigError as error:
        raise ConfigError(f"{error.message}: a backup needs the host's writer key", hint=error.hint) from None
    backend = open_primary(config.repository)
    if options.wrap_backend is not None:
        backend = options.wrap_backend(backend)
    repository = Repository.open(backend, config.repository, writer_key=writer_key)
    previous = _previous_manifest(repository)

    container = instance.backup_set.database_container
    dump_result: DumpResult
    file_records: list[dict[str, Any]] = []
    with repository.begin_snapshot() as writer:
        report.phase("dumping the database", total=None)
        with open_dump(
            target,
            server_version=live.version,
            container=DockerContainer(container) if container else None,
            on_bytes=report.advance,
            count_rows=False,
        ) as dump:
            kind = "postgresql-dump" if target.engine == "postgresql" else "mariadb-dump"
            database_statistics = writer.add_record_stream(DATABASE_COMPONENT, dump.stream, kind=kind)
            dump_result = dump.finish()

        report.phase("storing the files of the backup set")
        for item in instance.backup_set.files:
            file_records += _store_item(writer, instance, item)

        fingerprint = instance.backup_set.fingerprint
        changes, change_warnings = _changes(previous, file_records, fingerprint)
        for text in change_warnings:
            report.warn(text)
        warnings += change_warnings + dump_result.warnings
        row_counts = dict(database_statistics.row_counts)
        mismatches = {
            name: {"dump": row_counts.get(name, 0), "live": count}
            for name, count in live.row_counts.items()
            if row_counts.get(name, 0) != count
        }
        manifest: dict[str, Any] = {
            "tool": {"name": "strongroom", "version": __version__},
            "host": socket.gethostname(),
            "passbolt": {
                "version": instance.version,
                "edition": instance.backup_set.edition,
                "layout": instance.layout,
                "root": str(instance.root),
                "web_user": instance.web_user,
            },
            "database": {
                # passbolt's configuration says "mysql" for both; the server's version tells which it is.
                "engine": _engine_of(target.engine, live.version),
                "server_version": live.version,
                "database": target.database,
                "schema": target.schema,
                "client": dump_result.client,
                "client_version": dump_result.client_version,
                "container": container,
                "component": DATABASE_COMPONENT,
                "dump_bytes": database_statistics.size,
                "dump_seconds": round(dump_result.seconds, 3),
                "row_counts": row_counts,
                "live_row_counts": live.row_counts,
                "live_count_differences": mismatches,
            },
            "configured_fingerprint": fingerprint,
            "files": file_records,
            "findings": [f.to_dict() for f in findings if f.severity is not Severity.OK],
            "changes": changes,
            "warnings": warnings,
        }
        report.phase("committing the snapshot")
        info = writer.commit(manifest)
    # --- storage targets (issue 6): copy what each other target lacks, snapshots last ---
    outcomes = tuple(replicate_to_targets(backend, config.repository, report))
    warnings += [f"target {o.name} ({o.location}) was not updated: {o.error}" for o in outcomes if not o.ok]
    # --- end of storage targets ---
    report.done()
    return BackupResult(snapshot=info, manifest=manifest, warnings=tuple(warnings), seconds=time.monotonic() - started,
                        targets=outcomes)


def _store_item(writer: Any, instance: Instance, item: BackupFile) -> list[dict[str, Any]]:
    """Store one backup-set entry (a file, or every file of a directory); return their manifest records.

    A missing optional file is skipped; a missing required one was already an error finding.
    """
    records: list[dict[str, Any]] = []
    if item.location is None:
        if item.container is None:
            return records
        try:
            data = instance.read_text(item).encode("utf-8")
        except StrongroomError:
            return records
        name = _component_name(item.path)
        statistics = writer.add_file(name, data, mode=0o440, uid=0, gid=0, mtime=0.0)
        records.append(_file_record(item, item.path, name, statistics, writer, None))
        return records
    state = item.state()
    if not state.exists:
        return records
    for path, host_path in _walk(item):
        info = host_path.stat()
        name = _component_name(path)
        statistics = writer.add_file(
            name, host_path, mode=info.st_mode & 0o7777, uid=info.st_uid, gid=info.st_gid, mtime=info.st_mtime
        )
        records.append(_file_record(item, path, name, statistics, writer, info))
    return records


def _file_record(item: BackupFile, path: PurePosixPath, name: str, statistics: Any, writer: Any, info: os.stat_result | None) -> dict[str, Any]:
    component = next(c for c in reversed(writer.components) if c["name"] == name)
    return {
        "role": item.role,
        "path": str(path),
        "component": name,
        "size": statistics.size,
        "mode": component["mode"],
        "uid": component["uid"],
        "gid": component["gid"],
        "mtime": component["mtime"],
        "content_hash": component["content_hash"],
        "origin": item.origin,
        "container": item.container,
    }
