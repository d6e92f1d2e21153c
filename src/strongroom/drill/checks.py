"""The named checks that prove a restored passbolt database and its files are complete and belong together.

Each check returns a :class:`CheckResult`: its name, a status (``pass``, ``fail``,
``warning`` or ``unproven``) and a reason a person can act on. They run against:

- a DB-API connection to the loaded database (:class:`RestoredDatabase`), from
  :func:`strongroom.dbserver.connection.connect`;
- the restored files by role (:class:`RestoredFiles`): server public and private key,
  ``passbolt.php`` or the Docker env file, ``jwt.key``/``jwt.pem``;
- the snapshot manifest's facts (:class:`SnapshotFacts`): the row counts counted from
  the dump stream at backup time, the live counts taken then, the configured server
  key fingerprint, the passbolt version.

The checks (``docs/drills.md`` says what each proves and how it fails):

=========================  ===============================================================
``tables``                 every table of passbolt's schema at the database's migration level, ``phinxlog`` included
``row_counts``             loaded rows equal the dump-stream counts and agree with the live counts
``referential_integrity``  rows point at existing rows (secrets → users/resources, ...), orphans counted
``user_keys``              every active user has a parsable public key matching its fingerprint
``server_key``             one key, fingerprint as configured, private half matches, no expiry, no passphrase
``server_key_decrypts``    the server key decrypts the values encrypted to it (SMTP settings, metadata key)
``jwt_keys``               the JWT private and public keys are one pair
``configuration``          the configuration parses and points at the restored key files
=========================  ===============================================================

:func:`run_checks` runs them all; each ``check_*`` function is usable alone (a
restore runs the ones that apply). A check never raises for what it finds: a
database or file error becomes a ``fail`` naming it.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.dbserver.connection import Connection, list_tables
from strongroom.errors import DatabaseError, StrongroomError
from strongroom.execute import mask
from strongroom.passbolt.schema import PASSBOLT_VERSION, migration_level, tables_at

log = logging.getLogger(__name__)

TABLES = "tables"
ROW_COUNTS = "row_counts"
REFERENTIAL_INTEGRITY = "referential_integrity"
USER_KEYS = "user_keys"
SERVER_KEY = "server_key"
SERVER_KEY_DECRYPTS = "server_key_decrypts"
JWT_KEYS = "jwt_keys"
CONFIGURATION = "configuration"

CHECK_NAMES: tuple[str, ...] = (
    TABLES,
    ROW_COUNTS,
    REFERENTIAL_INTEGRITY,
    USER_KEYS,
    SERVER_KEY,
    SERVER_KEY_DECRYPTS,
    JWT_KEYS,
    CONFIGURATION,
)

# passbolt's healthcheck refuses this published development key as a server key.
INSECURE_DEFAULT_FINGERPRINT = "2FC8945833C51946E937F9FED47B0811573EE67E"
ARMORED_MESSAGE = "-----BEGIN PGP MESSAGE-----"
EXAMPLES = 5  # how many offending ids a result names


class Status(str, enum.Enum):
    """The outcome of one check."""

    PASS = "pass"
    FAIL = "fail"
    WARNING = "warning"
    UNPROVEN = "unproven"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``name``, ``status``, a ``reason`` for people, ``details`` for machines."""

    name: str
    status: Status
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {"name": self.name, "status": self.status.value, "reason": self.reason, "details": dict(self.details)}


@dataclass(frozen=True)
class RestoredDatabase:
    """The loaded throwaway database: an open connection, its engine, and its schema (PostgreSQL)."""

    connection: Connection
    engine: str
    schema: str | None = None

    @property
    def is_postgresql(self) -> bool:
        """True for PostgreSQL, False for MariaDB/MySQL."""
        return self.engine == "postgresql"


# The fixed file name each role is restored to (never a name read from the snapshot).
ROLE_FILE_NAMES: dict[str, str] = {
    "server_public_key": "serverkey.asc",
    "server_private_key": "serverkey_private.asc",
    "passbolt_config": "passbolt.php",
    "docker_env": "passbolt.env",
    "jwt_private_key": "jwt.key",
    "jwt_public_key": "jwt.pem",
}


@dataclass(frozen=True)
class RestoredFiles:
    """The restored files a drill checks, by role (None: the snapshot has no such file).

    ``original_paths`` maps a role to the path the file had on the passbolt host (from
    the manifest), so that the configuration's key paths can be compared with it.
    """

    server_public_key: Path | None = None
    server_private_key: Path | None = None
    passbolt_config: Path | None = None
    docker_env: Path | None = None
    jwt_private_key: Path | None = None
    jwt_public_key: Path | None = None
    original_paths: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_directory(cls, directory: Path, original_paths: Mapping[str, str] | None = None) -> RestoredFiles:
        """Return the files found in ``directory`` under their fixed names (:data:`ROLE_FILE_NAMES`)."""
        found: dict[str, Path | None] = {}
        for role, name in ROLE_FILE_NAMES.items():
            path = directory / name
            found[role] = path if path.is_file() else None
        return cls(**found, original_paths=dict(original_paths or {}))


@dataclass(frozen=True)
class SnapshotFacts:
    """What the snapshot's manifest says about the database it holds.

    ``dump_row_counts`` were counted from the dump stream at backup time;
    ``live_row_counts`` were counted on the live database then (None: not taken);
    ``server_fingerprint`` is the configured server key fingerprint; ``passbolt_version``
    the version of the instance.
    """

    dump_row_counts: Mapping[str, int]
    live_row_counts: Mapping[str, int] | None = None
    server_fingerprint: str | None = None
    passbolt_version: str | None = None


# --------------------------------------------------------------------------- database helpers


def _quote(database: RestoredDatabase, name: str) -> str:
    if database.is_postgresql:
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def _query(database: RestoredDatabase, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a read-only query; return its rows. Raises DatabaseError (the transaction is rolled back)."""
    connection = database.connection
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, tuple(parameters) or None)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    except Exception as exc:
        if not type(exc).__module__.startswith(("pymysql", "psycopg")):
            raise
        try:
            connection.rollback()
        except Exception as rollback_error:  # the connection itself is gone
            if not type(rollback_error).__module__.startswith(("pymysql", "psycopg")):
                raise
        raise DatabaseError(f"the query on the restored database failed: {mask(str(exc))[:300]}") from None


def _tables(database: RestoredDatabase) -> set[str]:
    return set(list_tables(database.connection, database.engine, database.schema))


def count_rows(database: RestoredDatabase, tables: Iterable[str]) -> dict[str, int]:
    """Return ``SELECT COUNT(*)`` of each of ``tables`` that exists (missing ones are left out).

    Raises DatabaseError when a count fails.
    """
    present = _tables(database)
    counts: dict[str, int] = {}
    for table in sorted(set(tables)):
        if table in present:
            counts[table] = int(_query(database, f"SELECT COUNT(*) FROM {_quote(database, table)}")[0][0])
    return counts


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _examples(values: Iterable[Any]) -> list[str]:
    return [_text(value) for value in list(values)[:EXAMPLES]]


# --------------------------------------------------------------------------- tables


def check_tables(database: RestoredDatabase, facts: SnapshotFacts | None = None) -> CheckResult:
    """Every table of passbolt's schema at the database's migration level is present, ``phinxlog`` included.

    Returns the CheckResult: fail naming the missing tables; warning when the level is
    not one strongroom knows the full schema of (only the known tables are checked).
    """
    present = _tables(database)
    if "phinxlog" not in present:
        expected = [table for table in tables_at(_last_known_version()).tables if table not in present and table != "phinxlog"]
        return CheckResult(
            TABLES,
            Status.FAIL,
            "the table phinxlog is missing: the database's migration level is unknown"
            + (f"; of passbolt {PASSBOLT_VERSION}'s tables, {len(expected)} are missing too" if expected else ""),
            {"missing": ["phinxlog", *expected], "present": len(present)},
        )
    rows = _query(database, f"SELECT version, migration_name FROM {_quote(database, 'phinxlog')}")
    level = migration_level(rows)
    requirement = tables_at(level)
    missing = sorted(table for table in requirement.tables if table not in present)
    details: dict[str, Any] = {
        "migration_level": level.version,
        "migration_name": level.name,
        "required": len(requirement.tables),
        "present": len(present),
        "missing": missing,
    }
    notes = [requirement.note] if requirement.note else []
    if level.missing:
        notes.append(f"{len(level.missing)} known migrations below the level are not recorded in phinxlog")
    if level.unknown:
        notes.append(f"{len(level.unknown)} migrations are unknown to strongroom (a newer passbolt or a plugin)")
    if facts is not None and facts.passbolt_version:
        details["passbolt_version"] = facts.passbolt_version
    if notes:
        details["notes"] = notes
    if missing:
        return CheckResult(
            TABLES,
            Status.FAIL,
            f"{len(missing)} of the {len(requirement.tables)} tables passbolt has at migration {level.version} "
            f"are missing: {', '.join(missing)}",
            details,
        )
    if level.version == 0:
        return CheckResult(TABLES, Status.FAIL, "phinxlog is empty: passbolt never migrated this database", details)
    if not requirement.exact:
        return CheckResult(
            TABLES,
            Status.WARNING,
            f"the {len(requirement.tables)} tables known at migration {level.version} are present; " + "; ".join(notes),
            details,
        )
    return CheckResult(
        TABLES,
        Status.PASS,
        f"all {len(requirement.tables)} tables of passbolt {PASSBOLT_VERSION} are present (migration {level.version})",
        details,
    )


def _last_known_version() -> int:
    from strongroom.passbolt.schema import PHINXLOG_512

    return PHINXLOG_512[-1].version


# --------------------------------------------------------------------------- row counts


# Tables passbolt writes to on ordinary use (logins, reads, audit), whose live count may
# move between the count and the dump's snapshot on a busy server.
ACTIVITY_TABLES = frozenset({
    "action_logs", "authentication_tokens", "email_queue", "entities_history", "folders_history",
    "folders_relations_history", "permissions_history", "secret_accesses", "secrets_history", "sso_states", "transfers",
})


def _activity_drift(table: str, values: Mapping[str, int | None]) -> bool:
    """True when ``table`` is an activity table whose dumped and live counts differ by a small margin."""
    live, dumped = values.get("live"), values.get("dump")
    if table not in ACTIVITY_TABLES or live is None or dumped is None:
        return False
    return abs(live - dumped) <= max(10, live // 100)


def check_row_counts(database: RestoredDatabase, facts: SnapshotFacts) -> CheckResult:
    """The loaded row counts equal the dump-stream counts, and those agree with the live counts.

    Tables missing from the loaded database are left to the ``tables`` check (named in
    the details). Returns fail naming each table whose counts differ.
    """
    present = _tables(database)
    loaded = count_rows(database, facts.dump_row_counts)
    not_loaded = sorted(table for table in facts.dump_row_counts if table not in present)
    differences: dict[str, dict[str, int | None]] = {}
    for table, expected in sorted(facts.dump_row_counts.items()):
        if table in loaded and loaded[table] != expected:
            differences[table] = {"dump": expected, "loaded": loaded[table]}
    live_differences: dict[str, dict[str, int | None]] = {}
    if facts.live_row_counts is not None:
        for table in sorted(set(facts.live_row_counts) | set(facts.dump_row_counts)):
            if table not in present:
                continue
            live = facts.live_row_counts.get(table)
            dumped = facts.dump_row_counts.get(table, 0)
            if live is None:
                live_differences[table] = {"dump": dumped, "live": None}
            elif live != dumped:
                live_differences[table] = {"dump": dumped, "live": live}
    details: dict[str, Any] = {
        "tables": len(loaded),
        "rows": sum(loaded.values()),
        "differences": differences,
        "live_differences": live_differences,
    }
    if not_loaded:
        details["not_loaded"] = not_loaded
    # The live counts are taken just before the dump's transaction starts, so on a busy
    # server the activity tables may gain a few rows in between: within a small margin
    # that is a warning; in any other table, or beyond the margin, the dump lost rows.
    drift = {table: values for table, values in live_differences.items() if _activity_drift(table, values)}
    lost = {table: values for table, values in live_differences.items() if table not in drift}
    problems = []
    if differences:
        problems.append(
            "loaded rows differ from the dump: "
            + ", ".join(f"{table} {values['loaded']} loaded, {values['dump']} dumped" for table, values in differences.items())
        )
    if lost:
        problems.append(
            "the dump differs from the live database at backup time: "
            + ", ".join(f"{table} {values['dump']} dumped, {values['live']} live" for table, values in lost.items())
        )
    if problems:
        return CheckResult(ROW_COUNTS, Status.FAIL, "; ".join(problems), details)
    if drift:
        return CheckResult(
            ROW_COUNTS,
            Status.WARNING,
            f"{sum(loaded.values())} rows in {len(loaded)} tables equal the dump's counts; activity tables moved "
            "between the live count and the dump (written to while the backup started): "
            + ", ".join(f"{table} {values['dump']} dumped, {values['live']} live" for table, values in drift.items()),
            details,
        )
    if facts.live_row_counts is None:
        return CheckResult(
            ROW_COUNTS,
            Status.WARNING,
            f"{sum(loaded.values())} rows in {len(loaded)} tables equal the dump's counts; "
            "no live counts were taken at backup time to compare with",
            details,
        )
    return CheckResult(
        ROW_COUNTS,
        Status.PASS,
        f"{sum(loaded.values())} rows in {len(loaded)} tables equal the dump's counts and the live counts",
        details,
    )


# --------------------------------------------------------------------------- referential integrity


@dataclass(frozen=True)
class Relation:
    """Rows of ``child`` whose ``column`` must name an existing ``parent.parent_column`` (when ``where`` holds)."""

    child: str
    column: str
    parent: str
    parent_column: str = "id"
    where: str | None = None  # an extra condition on the child row (alias c), without parameters

    @property
    def name(self) -> str:
        """``child.column → parent`` (with the condition), for reports."""
        condition = f" ({self.where.replace('c.', '')})" if self.where else ""
        return f"{self.child}.{self.column} → {self.parent}{condition}"


RELATIONS: tuple[Relation, ...] = (
    Relation("secrets", "user_id", "users"),
    Relation("secrets", "resource_id", "resources"),
    Relation("secrets", "secret_revision_id", "secret_revisions"),
    Relation("gpgkeys", "user_id", "users"),
    Relation("groups_users", "group_id", "groups"),
    Relation("groups_users", "user_id", "users"),
    Relation("permissions", "aco_foreign_key", "resources", where="c.aco = 'Resource'"),
    Relation("permissions", "aco_foreign_key", "folders", where="c.aco = 'Folder'"),
    Relation("permissions", "aro_foreign_key", "users", where="c.aro = 'User'"),
    Relation("permissions", "aro_foreign_key", "groups", where="c.aro = 'Group'"),
    Relation("metadata_private_keys", "metadata_key_id", "metadata_keys"),
    Relation("metadata_private_keys", "user_id", "users"),
    Relation("metadata_session_keys", "user_id", "users"),
    Relation("profiles", "user_id", "users"),
    Relation("users", "role_id", "roles"),
    Relation("resources", "resource_type_id", "resource_types"),
    Relation("resources", "metadata_key_id", "metadata_keys", where="c.metadata_key_type = 'shared_key'"),
    Relation("folders_relations", "user_id", "users"),
    Relation("avatars", "profile_id", "profiles"),
)


def check_referential_integrity(
    database: RestoredDatabase, relations: Sequence[Relation] = RELATIONS
) -> CheckResult:
    """Rows reference existing rows (secrets → users and resources, gpgkeys → users, ...).

    Returns fail with the number of orphans per relation and a few of their ids;
    relations whose tables are missing are skipped (the ``tables`` check names them).
    """
    present = _tables(database)
    orphans: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    checked = 0
    for relation in relations:
        if relation.child not in present or relation.parent not in present:
            skipped.append(relation.name)
            continue
        child, parent = _quote(database, relation.child), _quote(database, relation.parent)
        column, parent_column = _quote(database, relation.column), _quote(database, relation.parent_column)
        condition = f" AND {relation.where}" if relation.where else ""
        sql = (
            f"SELECT c.{column} FROM {child} c LEFT JOIN {parent} p ON p.{parent_column} = c.{column}"
            f" WHERE c.{column} IS NOT NULL AND p.{parent_column} IS NULL{condition}"
        )
        rows = _query(database, sql)
        checked += 1
        if rows:
            # The examples are the ids pointed at that do not exist.
            missing = sorted({_text(row[0]) for row in rows})
            orphans[relation.name] = {"count": len(rows), "missing": len(missing), "examples": _examples(missing)}
    details: dict[str, Any] = {"relations": checked, "orphans": orphans}
    if skipped:
        details["skipped"] = skipped
    if orphans:
        return CheckResult(
            REFERENTIAL_INTEGRITY,
            Status.FAIL,
            "rows point at rows that do not exist: "
            + ", ".join(f"{name}: {values['count']} orphaned" for name, values in orphans.items()),
            details,
        )
    return CheckResult(
        REFERENTIAL_INTEGRITY, Status.PASS, f"all {checked} relations hold: no orphaned rows", details
    )


# --------------------------------------------------------------------------- OpenPGP helpers


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _certificates(data: bytes) -> list[Any]:
    """Parse every OpenPGP certificate in ``data``; raises ValueError when none parses."""
    import pysequoia

    try:
        certificates = list(pysequoia.Cert.split_bytes(data))
    except Exception:
        raise ValueError("not an OpenPGP public key") from None
    if not certificates:
        raise ValueError("not an OpenPGP public key")
    return certificates


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


# --------------------------------------------------------------------------- user keys


def check_user_keys(database: RestoredDatabase, *, now: dt.datetime | None = None) -> CheckResult:
    """Every active, non-deleted user has a parsable public key whose fingerprint matches its row.

    Returns fail naming users without a key, with an unparsable key or a fingerprint
    mismatch; warning when the only problem is expired keys.
    """
    import pysequoia

    moment = _aware(now or _now())
    users = _quote(database, "users")
    gpgkeys = _quote(database, "gpgkeys")
    rows = _query(
        database,
        f"SELECT u.id, u.username, g.armored_key, g.fingerprint FROM {users} u"
        f" LEFT JOIN {gpgkeys} g ON g.user_id = u.id AND g.deleted = FALSE"
        " WHERE u.active = TRUE AND u.deleted = FALSE ORDER BY u.username",
    )
    without_key: list[str] = []
    unparsable: list[str] = []
    mismatched: list[str] = []
    expired: list[str] = []
    users_seen: set[str] = set()
    for user_id, username, armored, fingerprint in rows:
        name = _text(username) or _text(user_id)
        users_seen.add(_text(user_id))
        if armored is None:
            without_key.append(name)
            continue
        try:
            certificate = pysequoia.Cert.from_bytes(_text(armored).encode("utf-8"))
        except Exception:
            unparsable.append(name)
            continue
        if certificate.fingerprint.upper() != _text(fingerprint).strip().upper():
            mismatched.append(name)
        expiration = certificate.expiration
        if expiration is not None and _aware(expiration) <= moment:
            expired.append(name)
    details = {
        "users": len(users_seen),
        "without_key": _examples(without_key),
        "unparsable": _examples(unparsable),
        "fingerprint_mismatch": _examples(mismatched),
        "expired": _examples(expired),
        "counts": {
            "without_key": len(without_key),
            "unparsable": len(unparsable),
            "fingerprint_mismatch": len(mismatched),
            "expired": len(expired),
        },
    }
    problems = []
    if without_key:
        problems.append(f"{len(without_key)} active users have no key ({', '.join(_examples(without_key))})")
    if unparsable:
        problems.append(f"{len(unparsable)} keys do not parse ({', '.join(_examples(unparsable))})")
    if mismatched:
        problems.append(
            f"{len(mismatched)} keys do not match their gpgkeys.fingerprint ({', '.join(_examples(mismatched))})"
        )
    if problems:
        return CheckResult(USER_KEYS, Status.FAIL, "; ".join(problems), details)
    if expired:
        return CheckResult(
            USER_KEYS,
            Status.WARNING,
            f"{len(expired)} active users' keys have expired ({', '.join(_examples(expired))}); they must renew them",
            details,
        )
    return CheckResult(
        USER_KEYS, Status.PASS, f"all {len(users_seen)} active users have a valid key matching its fingerprint", details
    )


# --------------------------------------------------------------------------- server key


@dataclass
class _ServerKey:
    """What could be read of the restored server key pair."""

    fingerprint: str | None = None
    certificate: Any = None
    decryptor: Any = None
    problems: list[str] = field(default_factory=list)
    expiration: dt.datetime | None = None
    public_count: int = 0


def _load_server_key(files: RestoredFiles) -> _ServerKey:
    import pysequoia

    key = _ServerKey()
    public = _read(files.server_public_key)
    if public is None:
        key.problems.append("the server public key (serverkey.asc) is not in the snapshot")
    else:
        try:
            certificates = _certificates(public)
            key.public_count = len(certificates)
            key.certificate = certificates[0]
            key.fingerprint = certificates[0].fingerprint.upper()
            key.expiration = certificates[0].expiration
            if len(certificates) > 1:
                key.problems.append(f"serverkey.asc holds {len(certificates)} keys: passbolt needs exactly one")
        except ValueError:
            key.problems.append("serverkey.asc does not parse as an OpenPGP public key")
    private = _read(files.server_private_key)
    if private is None:
        key.problems.append("the server private key (serverkey_private.asc) is not in the snapshot")
        return key
    try:
        secret = pysequoia.Tsk.from_bytes(private)
        private_fingerprint = secret.extract_certificate().fingerprint.upper()
    except Exception:
        key.problems.append("serverkey_private.asc does not parse as an OpenPGP private key")
        return key
    if key.fingerprint is not None and private_fingerprint != key.fingerprint:
        key.problems.append(
            f"the private key ({private_fingerprint}) is not the private half of serverkey.asc ({key.fingerprint})"
        )
        return key
    try:
        decryptor = secret.decryptor(None)
    except Exception:
        key.problems.append("the server private key needs a passphrase: passbolt's server key must have none")
        return key
    if key.certificate is not None:
        # The two halves belong together only if what one encrypts the other decrypts.
        probe = os.urandom(16)
        try:
            message = pysequoia.encrypt(probe, [key.certificate])
            if pysequoia.decrypt(message, decryptor).bytes != probe:
                raise ValueError("the probe did not decrypt to itself")
        except Exception:
            key.problems.append("the private key cannot decrypt what is encrypted to serverkey.asc")
            return key
    key.decryptor = decryptor
    if key.fingerprint is None:
        key.fingerprint = private_fingerprint
    return key


def _configured_fingerprint(files: RestoredFiles, facts: SnapshotFacts | None) -> str | None:
    if facts is not None and facts.server_fingerprint:
        return facts.server_fingerprint.strip().upper()
    configuration = read_configuration(files)
    if configuration is not None and configuration.fingerprint:
        return configuration.fingerprint.upper()
    return None


def check_server_key(files: RestoredFiles, facts: SnapshotFacts | None = None) -> CheckResult:
    """The server key: one key, fingerprint equal to the configured one, private half matching, no expiry.

    Returns fail naming each problem found.
    """
    key = _load_server_key(files)
    problems = list(key.problems)
    configured = _configured_fingerprint(files, facts)
    details: dict[str, Any] = {"fingerprint": key.fingerprint, "configured_fingerprint": configured}
    if key.fingerprint is not None:
        if configured is None:
            problems.append("no configured server key fingerprint is known to compare with")
        elif configured != key.fingerprint:
            problems.append(f"the key's fingerprint {key.fingerprint} is not the configured {configured}")
        if key.fingerprint == INSECURE_DEFAULT_FINGERPRINT:
            problems.append("the server key is passbolt's published development key")
    if key.expiration is not None:
        details["expires"] = _aware(key.expiration).isoformat()
        when = "expired" if _aware(key.expiration) <= _now() else "expires"
        problems.append(f"the server key {when} on {_aware(key.expiration).date().isoformat()}: it must not expire")
    if problems:
        return CheckResult(SERVER_KEY, Status.FAIL, "; ".join(problems), details)
    return CheckResult(
        SERVER_KEY,
        Status.PASS,
        f"one server key {key.fingerprint}, as configured, with its private half, no passphrase and no expiry",
        details,
    )


def _server_encrypted_values(database: RestoredDatabase) -> list[tuple[str, str, str]]:
    """Return (source, row id, armored message) of every value encrypted to the server key."""
    present = _tables(database)
    values: list[tuple[str, str, str]] = []
    if "organization_settings" in present:
        rows = _query(
            database,
            f"SELECT id, property, value FROM {_quote(database, 'organization_settings')}"
            " WHERE property IN ('smtp', 'scim')",
        )
        for row_id, prop, value in rows:
            text = _text(value).strip()
            if text.startswith(ARMORED_MESSAGE):
                values.append((f"organization_settings {_text(prop)}", _text(row_id), text))
    if "metadata_private_keys" in present:
        rows = _query(
            database,
            f"SELECT id, data FROM {_quote(database, 'metadata_private_keys')} WHERE user_id IS NULL",
        )
        values += [("metadata_private_keys (server copy)", _text(row_id), _text(data)) for row_id, data in rows]
    if "sso_settings" in present:
        rows = _query(database, f"SELECT id, data FROM {_quote(database, 'sso_settings')}")
        values += [
            ("sso_settings", _text(row_id), _text(data))
            for row_id, data in rows
            if _text(data).strip().startswith(ARMORED_MESSAGE)
        ]
    return values


def check_server_key_decrypts(database: RestoredDatabase, files: RestoredFiles) -> CheckResult:
    """The server key decrypts the database values encrypted to it: proof that dump and key belong together.

    Returns unproven when the database holds no such value (or no usable private key
    was restored: the ``server_key`` check says why), fail naming the values that do
    not decrypt, pass otherwise.
    """
    import pysequoia

    values = _server_encrypted_values(database)
    details: dict[str, Any] = {"values": len(values)}
    if not values:
        return CheckResult(
            SERVER_KEY_DECRYPTS,
            Status.UNPROVEN,
            "the database holds no value encrypted to the server key (no SMTP settings, no server copy of a "
            "metadata key): nothing proves that this key belongs to this database",
            details,
        )
    key = _load_server_key(files)
    if key.decryptor is None:
        return CheckResult(
            SERVER_KEY_DECRYPTS,
            Status.UNPROVEN,
            f"{len(values)} values are encrypted to the server key, but no usable server private key was "
            "restored to try them (see the server_key check)",
            details,
        )
    decrypted: dict[str, int] = {}
    failed: dict[str, list[str]] = {}
    for source, row_id, message in values:
        try:
            result = pysequoia.decrypt(message.encode("utf-8"), key.decryptor)
            if result.bytes is None:
                raise ValueError("empty")
            decrypted[source] = decrypted.get(source, 0) + 1
        except Exception:
            failed.setdefault(source, []).append(row_id)
    details["decrypted"] = decrypted
    details["failed"] = {source: {"count": len(ids), "examples": _examples(ids)} for source, ids in failed.items()}
    if failed:
        return CheckResult(
            SERVER_KEY_DECRYPTS,
            Status.FAIL,
            "the server key does not decrypt "
            + ", ".join(f"{len(ids)} {source}" for source, ids in failed.items())
            + ": the key and the database belong to different instances (or the key was replaced)",
            details,
        )
    return CheckResult(
        SERVER_KEY_DECRYPTS,
        Status.PASS,
        "the server key decrypts " + ", ".join(f"{count} {source}" for source, count in decrypted.items()),
        details,
    )


# --------------------------------------------------------------------------- JWT


def check_jwt_keys(files: RestoredFiles) -> CheckResult:
    """The JWT private key (jwt.key) and public key (jwt.pem) parse and are one pair.

    Returns warning when the snapshot has neither (passbolt 1.x, or JWT never set up),
    fail when one is missing, does not parse, or they do not match.
    """
    from cryptography.hazmat.primitives import serialization

    private, public = _read(files.jwt_private_key), _read(files.jwt_public_key)
    if private is None and public is None:
        return CheckResult(
            JWT_KEYS,
            Status.WARNING,
            "the snapshot has no JWT keys: mobile and JWT sessions will have to authenticate again after a restore",
        )
    if private is None or public is None:
        missing = "jwt.key" if private is None else "jwt.pem"
        return CheckResult(JWT_KEYS, Status.FAIL, f"{missing} is missing: the JWT key pair is incomplete")
    try:
        private_key = serialization.load_pem_private_key(private, password=None)
    except (ValueError, TypeError):
        return CheckResult(JWT_KEYS, Status.FAIL, "jwt.key does not parse as an unencrypted PEM private key")
    try:
        public_key = serialization.load_pem_public_key(public)
    except ValueError:
        return CheckResult(JWT_KEYS, Status.FAIL, "jwt.pem does not parse as a PEM public key")
    form = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if private_key.public_key().public_bytes(*form) != public_key.public_bytes(*form):
        return CheckResult(JWT_KEYS, Status.FAIL, "jwt.key and jwt.pem are not one key pair")
    return CheckResult(JWT_KEYS, Status.PASS, "jwt.key and jwt.pem are one key pair")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Configuration:
    """What the restored configuration says about the server key."""

    source: str
    fingerprint: str | None
    public_path: str | None
    private_path: str | None


DOCKER_KEY_DIRECTORY = "/etc/passbolt/gpg"


def _read_env_file(path: Path) -> dict[str, str]:
    """Parse ``NAME=value`` lines (``#`` comments, optional quotes). Raises ValueError for other lines."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        name, sign, value = line.partition("=")
        if not sign or not name.strip().replace("_", "").isalnum():
            raise ValueError(f"line {number} is not NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def read_configuration(files: RestoredFiles) -> Configuration | None:
    """Return what the restored passbolt.php (or Docker env file) says about the server key.

    Returns None when the snapshot has neither. Raises SourceError (passbolt.php) or
    ValueError (env file) when it does not parse.
    """
    from strongroom.source.php import read_dotted, read_php_file

    if files.passbolt_config is not None:
        php = read_php_file(files.passbolt_config, shown_as="passbolt.php", environment={})
        # passbolt.php returns its array; v1's app.php assigns it to $config (or Configure::write).
        data = php.returned if php.returned is not None else (php.variables.get("config") or php.configure)
        # passbolt 2+ keeps it under passbolt.gpg.serverKey; v1's app.php under GPG.serverKey.
        server_key = read_dotted(data, "passbolt.gpg.serverKey", None) or read_dotted(data, "GPG.serverKey", {}) or {}
        if not isinstance(server_key, dict):
            server_key = {}
        return Configuration(
            "passbolt.php",
            _optional_text(server_key.get("fingerprint")),
            _optional_text(server_key.get("public")),
            _optional_text(server_key.get("private")),
        )
    if files.docker_env is not None:
        environment = _read_env_file(files.docker_env)
        return Configuration(
            "passbolt.env",
            environment.get("PASSBOLT_GPG_SERVER_KEY_FINGERPRINT"),
            environment.get("PASSBOLT_GPG_SERVER_KEY_PUBLIC"),
            environment.get("PASSBOLT_GPG_SERVER_KEY_PRIVATE"),
        )
    return None


def _optional_text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return str(value)


def check_configuration(files: RestoredFiles) -> CheckResult:
    """The configuration parses and points at the restored key files (its fingerprint is the key's).

    Returns fail when it does not parse, names another fingerprint, or names key files
    other than the ones restored; unproven when the snapshot holds no configuration.
    """
    try:
        configuration = read_configuration(files)
    except StrongroomError as error:
        return CheckResult(CONFIGURATION, Status.FAIL, f"the configuration does not parse: {error.message}")
    except (ValueError, OSError) as error:
        return CheckResult(CONFIGURATION, Status.FAIL, f"the Docker env file does not parse: {error}")
    if configuration is None:
        return CheckResult(
            CONFIGURATION,
            Status.UNPROVEN,
            "the snapshot holds no passbolt.php and no Docker env file: the configuration cannot be checked",
        )
    problems: list[str] = []
    details: dict[str, Any] = {
        "source": configuration.source,
        "fingerprint": configuration.fingerprint,
        "public": configuration.public_path,
        "private": configuration.private_path,
    }
    public = _read(files.server_public_key)
    key_fingerprint = None
    if public is not None:
        try:
            key_fingerprint = _certificates(public)[0].fingerprint.upper()
        except ValueError:
            key_fingerprint = None
    if not configuration.fingerprint:
        problems.append(f"{configuration.source} names no server key fingerprint")
    elif key_fingerprint is not None and configuration.fingerprint.strip().upper() != key_fingerprint:
        problems.append(
            f"{configuration.source} names the fingerprint {configuration.fingerprint}, "
            f"but the restored serverkey.asc is {key_fingerprint}"
        )
    for role, configured, default_name in (
        ("server_public_key", configuration.public_path, "serverkey.asc"),
        ("server_private_key", configuration.private_path, "serverkey_private.asc"),
    ):
        problem = _path_problem(files, role, configured, default_name, configuration.source)
        if problem:
            problems.append(problem)
    if problems:
        return CheckResult(CONFIGURATION, Status.FAIL, "; ".join(problems), details)
    return CheckResult(
        CONFIGURATION,
        Status.PASS,
        f"{configuration.source} parses, names the restored key's fingerprint and points at the restored key files",
        details,
    )


def _path_problem(
    files: RestoredFiles, role: str, configured: str | None, default_name: str, source: str
) -> str | None:
    restored = getattr(files, role)
    if restored is None:
        return None  # the server_key check names a missing key file
    if configured is None:
        if source == "passbolt.env":
            return None  # the image's default, /etc/passbolt/gpg/<name>, is where the key goes
        return f"{source} names no path for {default_name}"
    original = files.original_paths.get(role)
    if original is not None:
        if configured != original:
            return f"{source} points at {configured}, but {default_name} was backed up from {original}"
        return None
    if Path(configured).name != default_name:
        return f"{source} points at {configured}, which is not the restored {default_name}"
    return None


# --------------------------------------------------------------------------- all checks


def run_checks(
    database: RestoredDatabase,
    files: RestoredFiles,
    facts: SnapshotFacts,
    *,
    only: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run every check (or those named in ``only``) and return their results, in :data:`CHECK_NAMES` order.

    A check that cannot run (the database fails a query) is reported as ``fail`` with
    the reason; nothing is raised for what the checks find.
    """
    runners: dict[str, Callable[[], CheckResult]] = {
        TABLES: lambda: check_tables(database, facts),
        ROW_COUNTS: lambda: check_row_counts(database, facts),
        REFERENTIAL_INTEGRITY: lambda: check_referential_integrity(database),
        USER_KEYS: lambda: check_user_keys(database),
        SERVER_KEY: lambda: check_server_key(files, facts),
        SERVER_KEY_DECRYPTS: lambda: check_server_key_decrypts(database, files),
        JWT_KEYS: lambda: check_jwt_keys(files),
        CONFIGURATION: lambda: check_configuration(files),
    }
    wanted = set(only) if only is not None else set(CHECK_NAMES)
    unknown = wanted - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
    results = []
    for name in CHECK_NAMES:
        if name not in wanted:
            continue
        try:
            result = runners[name]()
        except StrongroomError as error:
            result = CheckResult(name, Status.FAIL, f"the check could not run: {error.message}")
        log.info("check %s: %s (%s)", name, result.status.value, result.reason)
        results.append(result)
        if not database.is_postgresql:
            continue
        # End the read transaction, so a failed query does not poison the next check.
        try:
            database.connection.rollback()
        except Exception as error:  # the connection is gone: the next check reports it
            if not type(error).__module__.startswith("psycopg"):
                raise
    return results


def failed(results: Iterable[CheckResult]) -> list[str]:
    """Return the names of the checks that failed (what a drill's exit status names)."""
    return [result.name for result in results if result.status is Status.FAIL]
