"""The ``drill`` action: prove a snapshot restores, in a throwaway database server, unattended.

On a trusted machine holding an identity (never the backup host, never production):

1. open the repository and prove the identity opens it (a wrong identity fails here,
   before any work);
2. start a throwaway database server of the snapshot's engine from local binaries
   (MySQL snapshots are drilled on MariaDB, with MySQL 8 collations mapped and said);
3. load the dump as an ordinary account of that server through the dump guard and
   the INSERT merger (:mod:`strongroom.actions.database_restore`); the decrypted
   dump and key files live only in the server's private folder, which the server's
   watchdog removes even if this process is killed;
4. write the server keys, JWT keys and configuration to fixed names (never to paths
   read from the snapshot) and run every drill check (:mod:`strongroom.drill.checks`);
5. measure the time to restore (RTO) and the snapshot's age (RPO at that moment),
   record the signed result in the repository, and return it.

A drill whose checks fail is a result, not an exception: the caller decides the exit
status from :attr:`DrillResult.failed_checks`.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from strongroom import __version__
from strongroom.actions.database_restore import LoadReport, load_snapshot_dump
from strongroom.actions.repository_access import open_repository
from strongroom.config.loading import write_config
from strongroom.config.schema import Config
from strongroom.dbserver import start_server
from strongroom.dbserver.connection import connect
from strongroom.drill import checks
from strongroom.drill.checks import CheckResult, RestoredDatabase, RestoredFiles, SnapshotFacts, Status
from strongroom.errors import CheckFailed, ConfigError, DatabaseError, IntegrityError, StrongroomError
from strongroom.progress import LogReporter, Reporter
from strongroom.repository.drills import DrillKey, save_record
from strongroom.repository.repository import Repository, Snapshot, parse_time
from strongroom.source import backupset as roles

SNAPSHOT_INTACT = "snapshot_intact"
DUMP_COMPLETE = "dump_complete"
DUMP_LOADS = "dump_loads"
FILE_CHECKS = (checks.SERVER_KEY, checks.SERVER_KEY_DECRYPTS, checks.JWT_KEYS, checks.CONFIGURATION)
DATABASE_CHECKS = (checks.TABLES, checks.ROW_COUNTS, checks.REFERENTIAL_INTEGRITY, checks.USER_KEYS, checks.SERVER_KEY_DECRYPTS)

# Which restored file each drill role comes from: the fixed name the checks read.
ROLE_FILES: dict[str, tuple[str, str]] = {
    roles.SERVER_KEY_PUBLIC: ("server_public_key", "serverkey.asc"),
    roles.SERVER_KEY_PRIVATE: ("server_private_key", "serverkey_private.asc"),
    roles.PASSBOLT_CONFIG: ("passbolt_config", "passbolt.php"),
    roles.JWT_PRIVATE: ("jwt_private_key", "jwt.key"),
    roles.JWT_PUBLIC: ("jwt_public_key", "jwt.pem"),
    roles.DOCKER_ENV: ("docker_env", "passbolt.env"),
}


@dataclass(frozen=True)
class DrillOptions:
    """Which snapshot to drill, with which identity, and where the report goes."""

    reference: str = "latest"
    identity_file: Path | None = None
    passphrase_file: Path | None = None
    config_path: Path | None = None
    record: bool = True


@dataclass
class DrillResult:
    """A finished drill: the snapshot, every check's outcome, timings, and the stored record."""

    snapshot: str
    snapshot_time: str
    sequence: int
    engine: str
    drill_server: str
    checks: list[CheckResult]
    load: LoadReport | None
    restore_seconds: float
    snapshot_age_seconds: float
    started: str
    finished: str
    host: str
    notes: list[str] = field(default_factory=list)
    record: str | None = None
    drill_key: str | None = None

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that failed (empty: the drill passed)."""
        return [result.name for result in self.checks if result.status is Status.FAIL]

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings and unproven checks do not fail a drill)."""
        return not self.failed_checks

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the body of the drill record)."""
        return {
            "snapshot": self.snapshot,
            "snapshot_time": self.snapshot_time,
            "sequence": self.sequence,
            "engine": self.engine,
            "drill_server": self.drill_server,
            "passed": self.passed,
            "failed_checks": self.failed_checks,
            "checks": [result.to_dict() for result in self.checks],
            "load": self.load.to_dict() if self.load else None,
            "restore_seconds": round(self.restore_seconds, 3),
            "snapshot_age_seconds": round(self.snapshot_age_seconds, 1),
            "started": self.started,
            "finished": self.finished,
            "host": self.host,
            "tool": {"name": "strongroom", "version": __version__},
            "notes": list(self.notes),
            "record": self.record,
            "drill_key": self.drill_key,
        }


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _age_seconds(snapshot_time: str, now: datetime) -> float:
    try:
        return now.timestamp() - parse_time(snapshot_time)
    except ValueError:
        return float("nan")


def _restore_files(repository: Repository, snapshot: Snapshot, manifest: dict[str, Any], directory: Path) -> RestoredFiles:
    """Write the files the checks need to fixed names in ``directory``; return them by role."""
    directory.mkdir(mode=0o700)
    original_paths: dict[str, str] = {}
    for record in manifest.get("files", []):
        role = record.get("role")
        if role not in ROLE_FILES:
            continue
        field_name, file_name = ROLE_FILES[role]
        if role == roles.DOCKER_ENV and "passbolt" not in Path(str(record.get("path", ""))).name:
            continue  # the database container's env file is not passbolt's configuration
        destination = directory / file_name
        if destination.exists():
            continue
        repository.restore_component(snapshot, str(record["component"]), destination)
        original_paths[field_name] = str(record.get("path", ""))
    return RestoredFiles.from_directory(directory, original_paths)


def _completeness(load: LoadReport) -> CheckResult:
    """``dump_complete``: the dump ends with its dumper's completion line (else it was cut short)."""
    if load.complete:
        return CheckResult(DUMP_COMPLETE, Status.PASS, "the dump ends with its dumper's completion line")
    return CheckResult(
        DUMP_COMPLETE,
        Status.FAIL,
        "the dump does not end with its dumper's completion line: it was truncated after the backup "
        "(strongroom never stores a dump without it)",
    )


def _facts(manifest: dict[str, Any]) -> SnapshotFacts:
    database = manifest.get("database", {})
    return SnapshotFacts(
        dump_row_counts=dict(database.get("row_counts", {})),
        live_row_counts=dict(database["live_row_counts"]) if database.get("live_row_counts") else None,
        server_fingerprint=manifest.get("configured_fingerprint"),
        passbolt_version=(manifest.get("passbolt") or {}).get("version"),
    )


def _drill_key(config: Config, config_path: Path | None, reporter: Reporter) -> tuple[DrillKey, list[str]]:
    """This machine's drill key (created on the first drill) and notes about it.

    A new key's fingerprint is added to this configuration's trusted keys, so this
    machine believes its own records; the backup host must pin it too.
    """
    notes: list[str] = []
    if config.drill.key is not None:
        path = config.drill.key
    elif config_path is not None:
        path = config_path.parent / "drill.key"
    else:
        raise ConfigError("no place for the drill key", hint="set [drill] key in the configuration")
    key, created = DrillKey.load_or_create(path)
    if created:
        notes.append(
            f"created this machine's drill key {path}; pin its fingerprint {key.fingerprint} in the backup "
            "host's configuration ([drill] trusted_keys) so status there trusts these drill records"
        )
        if config_path is not None and key.fingerprint not in config.drill.trusted_keys:
            drill = config.drill.model_copy(update={"trusted_keys": (*config.drill.trusted_keys, key.fingerprint)})
            write_config(config.model_copy(update={"drill": drill}), config_path)
    for note in notes:
        reporter.note(note)
    return key, notes


def run(config: Config, options: DrillOptions, reporter: Reporter | None = None) -> DrillResult:
    """Drill snapshot ``options.reference``; return the result (failed checks included).

    Raises ConfigError (no repository configured), IdentityError (no or wrong
    identity: before any work), UsageError (no such snapshot), IntegrityError
    (a damaged object: the drill cannot even start), DependencyError (no database
    server installed), StorageError.
    """
    report = reporter or LogReporter()
    if config.repository is None:
        raise ConfigError("the configuration has no [repository] section", hint="run 'strongroom init' first")
    started_at = _now()
    repository = open_repository(
        config.repository, identity_file=options.identity_file, passphrase_file=options.passphrase_file
    )
    repository.check_identity()
    snapshot = repository.load_snapshot(options.reference)
    manifest = dict(snapshot.body.get("manifest", {}))
    source_engine = str((manifest.get("database") or {}).get("engine") or "mariadb")
    server_engine = "postgresql" if source_engine == "postgresql" else "mariadb"
    notes: list[str] = []
    key, key_notes = _drill_key(config, options.config_path, report) if options.record else (None, [])
    notes += key_notes
    if source_engine == "mysql":
        notes.append("the snapshot comes from MySQL and is drilled on MariaDB: MySQL 8 collations are mapped")

    results: list[CheckResult] = []
    load: LoadReport | None = None
    restore_seconds = 0.0
    report.phase(f"starting a throwaway {server_engine} server")
    with start_server(server_engine) as server:
        work = server.directory / "drill"
        work.mkdir(mode=0o700)
        name = "passbolt_drill"
        target = server.create_database(name, user=name, password=secrets.token_urlsafe(24))
        restore_started = time.monotonic()
        intact: CheckResult | None = None
        try:
            load = load_snapshot_dump(
                repository,
                snapshot,
                target,
                work_dir=work,
                map_mysql8_collations=source_engine == "mysql",
                bin_dir=server.bin_dir,
                reporter=report,
            )
            results.append(CheckResult(DUMP_LOADS, Status.PASS, f"the dump loaded: {load.dump_bytes} bytes, {load.rows} rows"))
        except IntegrityError as error:
            intact = CheckResult(SNAPSHOT_INTACT, Status.FAIL, f"the dump cannot be read back: {error.message}")
            results.append(CheckResult(DUMP_LOADS, Status.UNPROVEN, "the dump could not be read from the repository"))
        except (CheckFailed, DatabaseError) as error:
            results.append(CheckResult(DUMP_LOADS, Status.FAIL, error.message))
        if load is not None:
            results.insert(0, _completeness(load))
            if load.mapped_collations:
                mapped = ", ".join(f"{name} x{count}" for name, count in sorted(load.mapped_collations.items()))
                notes.append(f"MySQL 8 collations mapped for MariaDB: {mapped}")
        report.phase("restoring the key and configuration files")
        files_readable = True
        try:
            files = _restore_files(repository, snapshot, manifest, work / "files")
        except IntegrityError as error:
            intact = intact or CheckResult(SNAPSHOT_INTACT, Status.FAIL, f"a file cannot be read back: {error.message}")
            files, files_readable = RestoredFiles(), False
        results.insert(0, intact or CheckResult(SNAPSHOT_INTACT, Status.PASS, "every object of the snapshot decrypted and matched its keyed hash"))
        restore_seconds = time.monotonic() - restore_started
        facts = _facts(manifest)
        wanted = [name for name in checks.CHECK_NAMES if (load is not None or name not in DATABASE_CHECKS)]
        if not files_readable:
            wanted = [name for name in wanted if name not in FILE_CHECKS]
        report.phase("checking the restored database and files")
        connection = connect(target) if load is not None else None
        try:
            database = RestoredDatabase(connection, target.engine)  # type: ignore[arg-type]
            done = {result.name: result for result in checks.run_checks(database, files, facts, only=wanted)} if connection else {
                result.name: result for result in (checks.check_server_key(files, facts), checks.check_jwt_keys(files), checks.check_configuration(files))
                if result.name in wanted
            }
        finally:
            if connection is not None:
                connection.close()
        for name in checks.CHECK_NAMES:
            if name in done:
                results.append(done[name])
            elif load is None and name in DATABASE_CHECKS:
                results.append(CheckResult(name, Status.UNPROVEN, "the dump did not load"))
            else:
                results.append(CheckResult(name, Status.UNPROVEN, "the snapshot's files could not be read back"))
        drill_server = f"{server_engine} {server.version}"
    finished_at = _now()
    result = DrillResult(
        snapshot=snapshot.name,
        snapshot_time=snapshot.header.time,
        sequence=snapshot.header.sequence,
        engine=source_engine,
        drill_server=drill_server,
        checks=results,
        load=load,
        restore_seconds=restore_seconds,
        snapshot_age_seconds=_age_seconds(snapshot.header.time, started_at),
        started=started_at.isoformat(timespec="seconds"),
        finished=finished_at.isoformat(timespec="seconds"),
        host=socket.gethostname(),
        notes=notes,
    )
    if key is not None:
        try:
            record = result.to_dict()
            result.record = save_record(repository.backend, key, repository.metadata_key, record)
            result.drill_key = key.fingerprint
        except StrongroomError as error:
            result.notes.append(f"the drill record could not be stored: {error.message}")
            report.warn(result.notes[-1])
    report.done()
    return result


def render_markdown(result: DrillResult) -> str:
    """A report for people: the verdict, the checks, the timings."""
    verdict = "PASSED" if result.passed else "FAILED: " + ", ".join(result.failed_checks)
    lines = [
        f"# strongroom drill of snapshot {result.snapshot[:8]}: {verdict}",
        "",
        f"- snapshot: `{result.snapshot}` (sequence {result.sequence}, taken {result.snapshot_time})",
        f"- database: {result.engine}, drilled on {result.drill_server}",
        f"- time to restore (RTO): {result.restore_seconds:.1f} s",
        f"- snapshot age when drilled (RPO): {result.snapshot_age_seconds / 3600:.1f} h",
        f"- drilled on {result.host}, {result.started} to {result.finished}",
    ]
    if result.record:
        lines.append(f"- signed record: `drills/{result.record}` (drill key {result.drill_key})")
    lines += ["", "| check | result | reason |", "| --- | --- | --- |"]
    for check in result.checks:
        reason = check.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {check.name} | {check.status.value} | {reason} |")
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_report(result: DrillResult, path: Path) -> None:
    """Write the report to ``path``: JSON for ``.json``, Markdown otherwise (mode 0600)."""
    import json

    text = json.dumps(result.to_dict(), indent=2) + "\n" if path.suffix == ".json" else render_markdown(result)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
