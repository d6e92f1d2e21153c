"""Drill checks on real data: a sandbox instance, dumped, guarded, loaded into a fresh database, checked.

A good instance passes every check on MariaDB and PostgreSQL. Each broken variant
fails with its own named check and nothing else.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strongroom.dbserver.connection import connect
from strongroom.dbserver.load import load_dump
from strongroom.drill import checks
from strongroom.drill.checks import RestoredDatabase, RestoredFiles, SnapshotFacts, Status
from strongroom.drill.sqlguard import UnsafeDumpError, guard_dump
from strongroom.sandbox import Sandbox, create_sandbox, openpgp
from strongroom.source.dump import open_dump
from strongroom.source.sqlmerge import merge_inserts

SMALL = 1_000_000
_names = itertools.count()


@dataclass
class Instance:
    """A sandbox on a throwaway server, and that server."""

    sandbox: Sandbox
    server: Any
    engine: str


def _make_instance(request: pytest.FixtureRequest, tmp_path: Path, engine: str) -> Instance:
    server = request.getfixturevalue(f"{engine}_server")
    name = f"drill_src_{next(_names)}_{request.node.name}"
    name = re.sub(r"[^a-z0-9_]", "_", name.lower())[:50]
    sandbox = create_sandbox(
        database_target=server.target, root=tmp_path / "root", size=SMALL, database_name=name
    )
    return Instance(sandbox, server, engine)


@pytest.fixture(scope="module", params=["mariadb", "postgresql"])
def shared_instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """One sandbox per engine for the tests that do not change it."""
    return _make_instance(request, tmp_path_factory.mktemp("shared"), request.param)


@pytest.fixture(params=["mariadb", "postgresql"])
def own_instance(request: pytest.FixtureRequest, tmp_path: Path) -> Instance:
    """A sandbox of the test's own, which it may break."""
    return _make_instance(request, tmp_path, request.param)


def _database(target: Any, engine: str) -> RestoredDatabase:
    return RestoredDatabase(connect(target), engine, "public" if engine == "postgresql" else None)


def _dump(instance: Instance) -> tuple[bytes, dict[str, int], dict[str, int]]:
    """Dump the source as a backup would: (dump bytes, dump-stream counts, live counts)."""
    source = _database(instance.sandbox.target, instance.engine)
    try:
        live = checks.count_rows(source, checks.list_tables(source.connection, instance.engine, source.schema))
    finally:
        source.connection.close()
    with open_dump(instance.sandbox.target, server_version=instance.server.version) as dump:
        data = dump.stream.read()
        result = dump.finish()
    return data, dict(result.row_counts), live


def _restored_files(instance: Instance, directory: Path) -> RestoredFiles:
    """Copy the sandbox's key and config files to their fixed names, as a restore would."""
    directory.mkdir(parents=True, exist_ok=True)
    original: dict[str, str] = {}
    for entry in instance.sandbox.files:
        name = checks.ROLE_FILE_NAMES.get(entry.role)
        if name is None and entry.role == "docker_env" and entry.path.endswith("passbolt.env"):
            name = "passbolt.env"
        if name is not None and entry.kind == "file":
            shutil.copyfile(entry.path, directory / name)
            original[entry.role] = entry.real_path
    return RestoredFiles.from_directory(directory, original)


def _load(instance: Instance, data: bytes) -> RestoredDatabase:
    """Load the dump as a drill does (dump → sqlguard → sqlmerge → client) into a fresh database."""
    name = f"drill_{next(_names)}"
    target = instance.server.create_database(name, user=name)
    dialect = "postgresql" if instance.engine == "postgresql" else "mariadb"
    chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))
    stream = guard_dump(chunks, dialect, database=name)
    if dialect == "mariadb":
        stream = merge_inserts(stream)
    load_dump(target, stream, bin_dir=instance.server.bin_dir)
    return _database(target, instance.engine)


def _drill(
    instance: Instance,
    tmp_path: Path,
    *,
    data: bytes | None = None,
    counts: tuple[dict[str, int], dict[str, int]] | None = None,
    files: RestoredFiles | None = None,
    facts: Callable[[SnapshotFacts], SnapshotFacts] | None = None,
) -> dict[str, checks.CheckResult]:
    if data is None or counts is None:
        data, dumped, live = _dump(instance)
    else:
        dumped, live = counts
    database = _load(instance, data)
    try:
        restored = files or _restored_files(instance, tmp_path / "restored")
        snapshot = SnapshotFacts(dumped, live, instance.sandbox.server_fingerprint, "5.12.0")
        if facts is not None:
            snapshot = facts(snapshot)
        results = checks.run_checks(database, restored, snapshot)
    finally:
        database.connection.close()
    assert [result.name for result in results] == list(checks.CHECK_NAMES)
    return {result.name: result for result in results}


def _only_failure(results: dict[str, checks.CheckResult], name: str) -> checks.CheckResult:
    failing = {key: value.reason for key, value in results.items() if value.status is not Status.PASS}
    assert set(failing) == {name}, failing
    assert results[name].status is Status.FAIL
    assert checks.failed(results.values()) == [name]
    return results[name]


def _execute(instance: Instance, *statements: str) -> None:
    connection = connect(instance.sandbox.target)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


def test_a_good_instance_passes_every_check(shared_instance: Instance, tmp_path: Path) -> None:
    instance = shared_instance
    results = _drill(instance, tmp_path)
    for result in results.values():
        assert result.status is Status.PASS, (result.name, result.reason)
    assert results["server_key_decrypts"].details["decrypted"] == {
        "organization_settings smtp": 1,
        "metadata_private_keys (server copy)": 1,
    }
    assert results["tables"].details["required"] == 53
    assert results["referential_integrity"].details["relations"] == len(checks.RELATIONS)
    assert results["user_keys"].details["users"] == instance.sandbox.manifest["counts"]["active_users"]
    assert all(isinstance(result.to_dict()["status"], str) for result in results.values())


def test_broken_variants_fail_their_own_check(shared_instance: Instance, tmp_path: Path) -> None:
    instance = shared_instance
    data, dumped, live = _dump(instance)
    counts = (dumped, live)

    # Counts that differ: the dump-stream counts say one more secret than was loaded.
    more = dict(dumped)
    more["secrets"] += 1
    results = _drill(instance, tmp_path, data=data, counts=(more, {**live, "secrets": live["secrets"] + 1}))
    assert "secrets" in _only_failure(results, "row_counts").reason
    # The live database had one row more than the dump (a dump that missed a row).
    results = _drill(instance, tmp_path, data=data, counts=(dumped, {**live, "users": live["users"] + 1}))
    assert "users" in _only_failure(results, "row_counts").details["live_differences"]
    # A few more action_logs rows live than dumped: written while the backup started, a warning.
    results = _drill(instance, tmp_path, data=data, counts=(dumped, {**live, "action_logs": live["action_logs"] + 3}))
    assert results["row_counts"].status is Status.WARNING and "action_logs" in results["row_counts"].reason
    assert not [name for name, result in results.items() if result.status is Status.FAIL]

    # A server key of another instance: key files, configured fingerprint and config all
    # consistent with each other, but the database's server-encrypted values were made
    # for the real key and do not decrypt.
    other = openpgp.generate_key_pair("Other Passbolt Server <admin@other.example>", "")
    directory = tmp_path / "other"
    files = _restored_files(instance, directory)
    (directory / "serverkey.asc").write_text(other.public_armored)
    (directory / "serverkey_private.asc").write_text(other.private_armored)
    for config in ("passbolt.php", "passbolt.env"):
        if (directory / config).exists():
            text = (directory / config).read_text()
            (directory / config).write_text(text.replace(instance.sandbox.server_fingerprint, other.fingerprint))
    results = _drill(
        instance, tmp_path, data=data, counts=counts, files=files,
        facts=lambda facts: SnapshotFacts(facts.dump_row_counts, facts.live_row_counts, other.fingerprint, "5.12.0"),
    )
    failure = _only_failure(results, "server_key_decrypts")
    assert "does not decrypt" in failure.reason and "smtp" in failure.reason

    # The same swapped key with the original configured fingerprint: server_key names the mismatch too.
    results = _drill(instance, tmp_path, data=data, counts=counts, files=files)
    assert results["server_key"].status is Status.FAIL and "not the configured" in results["server_key"].reason


@pytest.mark.slow
def test_missing_table_and_orphaned_key_fail_their_own_check(own_instance: Instance, tmp_path: Path) -> None:
    instance = own_instance
    # A dump missing a table: the instance lost `favorites` before the backup (live counts agree).
    _execute(instance, "DROP TABLE favorites")
    results = _drill(instance, tmp_path)
    failure = _only_failure(results, "tables")
    assert failure.details["missing"] == ["favorites"]

    # A user's row is gone but its gpgkeys row stayed: an orphan.
    connection = connect(instance.sandbox.target)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT g.user_id FROM gpgkeys g ORDER BY g.user_id DESC LIMIT 1")
            user_id = str(cursor.fetchone()[0])
    finally:
        connection.close()
    _execute(instance, f"UPDATE users SET deleted = TRUE WHERE id = '{user_id}'", f"DELETE FROM users WHERE id = '{user_id}'")
    results = _drill(instance, tmp_path)
    # The tables check still fails from the step above; the new fault is the orphan.
    orphans = results["referential_integrity"].details["orphans"]
    assert results["referential_integrity"].status is Status.FAIL
    assert orphans["gpgkeys.user_id → users"]["examples"] == [user_id]
    assert {name for name, result in results.items() if result.status is not Status.PASS} == {
        "tables", "referential_integrity",
    }


@pytest.mark.parametrize(
    "make_line, kind",
    [
        (lambda target: f"SELECT 'owned' INTO OUTFILE '{target}';\n", "INTO OUTFILE"),
        (lambda target: f"\\! touch {target}\n", "\\!"),
    ],
    ids=["into-outfile", "shell-escape"],
)
def test_hostile_dump_is_refused_and_writes_no_file(
    shared_instance: Instance, tmp_path: Path, make_line: Callable[[Path], str], kind: str
) -> None:
    instance = shared_instance
    data, _, _ = _dump(instance)
    target = tmp_path / "owned.txt"
    hostile = make_line(target).encode()
    if instance.engine == "postgresql":
        hostile = hostile.replace(b"SELECT 'owned' INTO OUTFILE", b"COPY (SELECT 'owned') TO")
        kind = "COPY ... TO" if kind == "INTO OUTFILE" else "psql meta-command \\!"
    # After the first table's rows: a statement between legitimate ones.
    marker = b"UNLOCK TABLES;\n" if instance.engine != "postgresql" else b"\\.\n"
    position = data.index(marker) + len(marker)
    altered = data[:position] + hostile + data[position:]
    with pytest.raises(UnsafeDumpError) as caught:
        _load(instance, altered)
    assert kind.lower() in caught.value.kind.lower()
    assert caught.value.line == data[:position].count(b"\n") + 1
    assert not target.exists()
    assert not list(tmp_path.rglob("owned*"))


def test_checks_report_what_they_cannot_prove(tmp_path: Path) -> None:
    """No files at all: the file checks fail or say unproven, never pass."""
    files = RestoredFiles()
    assert checks.check_server_key(files).status is Status.FAIL
    assert checks.check_jwt_keys(files).status is Status.WARNING
    assert checks.check_configuration(files).status is Status.UNPROVEN
    broken = tmp_path / "passbolt.php"
    broken.write_text("<?php return [ 'passbolt' => ")
    assert checks.check_configuration(RestoredFiles(passbolt_config=broken)).status is Status.FAIL
    jwt_key = tmp_path / "jwt.key"
    jwt_key.write_text("not a key")
    assert checks.check_jwt_keys(RestoredFiles(jwt_private_key=jwt_key)).status is Status.FAIL


def test_server_key_problems_are_named(tmp_path: Path) -> None:
    """Two keys in serverkey.asc, a private key of another pair, a passphrase: each named by server_key."""
    server = openpgp.generate_key_pair("Passbolt Server <admin@example.com>", "")
    other = openpgp.generate_key_pair("Other <admin@other.example>", "")
    protected = openpgp.generate_key_pair("Protected <admin@example.com>", "correct horse 7391")

    def files(public: str, private: str) -> RestoredFiles:
        directory = tmp_path / str(next(_names))
        directory.mkdir()
        (directory / "serverkey.asc").write_text(public)
        (directory / "serverkey_private.asc").write_text(private)
        return RestoredFiles.from_directory(directory)

    def facts(fingerprint: str) -> SnapshotFacts:
        return SnapshotFacts({}, None, fingerprint)

    good = checks.check_server_key(files(server.public_armored, server.private_armored), facts(server.fingerprint))
    assert good.status is Status.PASS, good.reason
    two = checks.check_server_key(
        files(server.public_armored + other.public_armored, server.private_armored), facts(server.fingerprint)
    )
    assert two.status is Status.FAIL and "holds 2 keys" in two.reason
    mismatch = checks.check_server_key(files(server.public_armored, other.private_armored), facts(server.fingerprint))
    assert mismatch.status is Status.FAIL and "not the private half" in mismatch.reason
    locked = checks.check_server_key(
        files(protected.public_armored, protected.private_armored), facts(protected.fingerprint)
    )
    assert locked.status is Status.FAIL and "passphrase" in locked.reason
    configured = checks.check_server_key(files(server.public_armored, server.private_armored), facts(other.fingerprint))
    assert configured.status is Status.FAIL and "not the configured" in configured.reason
    assert protected.passphrase not in locked.reason
