"""strongroom backup, end to end on real sandbox instances and real database servers.

Back up a sandbox of every layout on both engines, restore the snapshot into a
folder, load the dump into a fresh database and compare every table with the
source; the restored files must be byte-identical with their modes. Then the ways a
backup fails: database down, wrong credentials, dumper killed halfway, full disk:
each ends with a clear error, no new snapshot, and the earlier snapshots restore.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker_standin
import pyrage
import pytest

from strongroom.actions import backup as backup_action
from strongroom.cli.main import main
from strongroom.config.loading import load_config, write_config
from strongroom.dbserver import start_server
from strongroom.dbserver.connection import connect
from strongroom.dbserver.inspect import table_fingerprints
from strongroom.dbserver.load import load_dump
from strongroom.errors import CheckFailed, DatabaseError, ExitCode, NoSpaceError
from strongroom.progress import LogReporter
from strongroom.sandbox.create import Sandbox, create_sandbox
from strongroom.source.discovery import discover_instance
from strongroom.storage.backend import Backend, Handle, ObjectInfo, ObjectType

LAYOUTS = ("debian", "rpm", "docker", "source", "v1")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real docker CLI (no daemon here) and no passbolt variables from the caller's environment."""
    empty = tmp_path / "bin"
    empty.mkdir()
    fake = empty / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{empty}:{os.environ['PATH']}")
    for name in list(os.environ):
        if name.startswith(("DATASOURCES_DEFAULT_", "PASSBOLT_GPG_")):
            monkeypatch.delenv(name)


def make_sandbox(server: Any, directory: Path, layout: str) -> Sandbox:
    return create_sandbox(
        database_target=server.target,
        root=directory / "root",
        layout=layout,
        size=1_000_000,
        database_name=f"backup_{layout}_{secrets.token_hex(3)}",
    )


class Setup:
    """A sandbox with an initialised repository: config, identity, helpers to run verbs."""

    def __init__(self, sandbox: Sandbox, directory: Path) -> None:
        self.sandbox = sandbox
        self.directory = directory
        identity = pyrage.x25519.Identity.generate()
        self.identity = directory / "identity.txt"
        self.identity.write_text(f"{identity}\n")
        self.identity.chmod(0o600)
        self.config = directory / "strongroom.toml"
        code = main(["--config", str(self.config), "init", "--repository", str(directory / "repository"),
                     "--recipient", str(identity.to_public()), "--root", str(sandbox.root), "--quiet"])
        assert code == 0

    def run(self, *arguments: str) -> int:
        return main(["--config", str(self.config), *arguments])

    def snapshots(self, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
        capsys.readouterr()
        assert self.run("snapshots", "--json") == 0
        data = json.loads(capsys.readouterr().out)
        return list(data["snapshots"])

    def restore_latest(self, destination: Path) -> None:
        assert self.run("restore", "latest", "--identity", str(self.identity), "--to", str(destination), "--quiet") == 0


def fresh_database_from_dump(server: Any, dump: Path) -> Any:
    name = "restored_" + secrets.token_hex(4)
    target = server.create_database(name, user=name, password="pw-" + secrets.token_hex(8))
    with dump.open("rb") as stream:
        load_dump(target, iter(lambda: stream.read(1 << 20), b""))
    return target


def assert_same_tables(source: Any, restored: Any) -> None:
    with connect(source) as left, connect(restored) as right:  # type: ignore[attr-defined]
        expected = table_fingerprints(left, source.engine)
        actual = table_fingerprints(right, restored.engine)
    assert len(expected) == 53
    assert actual == expected


def assert_files_restored(sandbox: Sandbox, restored: Path) -> None:
    instance = discover_instance(sandbox.root, load_config_instance(sandbox), dict(os.environ))
    compared = 0
    for item in instance.backup_set.files:
        if item.location is None or not item.location.exists():
            continue
        sources = [item.location] if item.location.is_file() else sorted(p for p in item.location.rglob("*") if p.is_file())
        for source in sources:
            passbolt_path = item.path if item.location.is_file() else item.path / source.relative_to(item.location)
            copy = restored / "files" / str(passbolt_path).lstrip("/")
            assert copy.read_bytes() == source.read_bytes(), passbolt_path
            assert copy.stat().st_mode & 0o7777 == source.stat().st_mode & 0o7777, passbolt_path
            compared += 1
    assert compared >= 5


def load_config_instance(sandbox: Sandbox) -> Any:
    from strongroom.config.schema import InstanceConfig

    return InstanceConfig(root=sandbox.root)


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_backup_restores_every_table_and_file(
    engine: str, layout: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = request.getfixturevalue(f"{engine}_server")
    sandbox = make_sandbox(server, tmp_path, layout)
    if layout == "docker":
        fixture = docker_standin.compose_fixture(tmp_path, sandbox, "passbolt")
        log = docker_standin.install(monkeypatch, tmp_path / "bin", fixture)
    setup = Setup(sandbox, tmp_path)
    assert setup.run("backup", "--quiet") == 0
    (snapshot,) = setup.snapshots(capsys)
    restored = tmp_path / "restored"
    setup.restore_latest(restored)
    copy = fresh_database_from_dump(server, restored / "database.sql")
    assert_same_tables(sandbox.target, copy)
    assert_files_restored(sandbox, restored)
    if layout == "docker":
        calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
        dumps = [call for call in calls if call[0] == "exec" and any("dump" in part for part in call)]
        assert dumps, calls
        assert not [call for call in calls if any(sandbox.target.password in part for part in call)]
        # The live counts were taken inside the database container too, and agree with the dump's.
        capsys.readouterr()
        assert setup.run("show", "latest", "--json") == 0
        database = json.loads(capsys.readouterr().out)["manifest"]["database"]
        assert database["container"] == "passbolt-db-1"
        assert database["live_row_counts"]["secrets"] == sandbox.row_counts["secrets"]
        assert database["live_count_differences"] == {}


@pytest.fixture
def mariadb_setup(mariadb_server: Any, tmp_path: Path) -> Iterator[Setup]:
    yield Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_manifest_records_counts_versions_and_changes(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = Setup(make_sandbox(request.getfixturevalue(f"{engine}_server"), tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    capsys.readouterr()
    assert setup.run("backup", "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert second["changes"]["first_snapshot"] is False
    assert second["changes"]["changed"] == [] and second["warnings"] == []
    database = next(c for c in second["components"] if c["name"] == "database.sql")
    assert database["new_bytes"] < database["size"] / 10  # the unchanged rows were not stored again
    capsys.readouterr()
    assert setup.run("show", "latest", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    manifest = shown["manifest"]
    assert manifest["passbolt"]["version"] == "5.12.0"
    assert manifest["database"]["engine"] == engine
    assert ("MariaDB" in manifest["database"]["server_version"]) is (engine == "mariadb")
    counts = manifest["database"]["row_counts"]
    # Empty tables: PostgreSQL's dump names them (COPY with no rows), MariaDB's has no INSERT for them.
    live = manifest["database"]["live_row_counts"]
    assert {name: count for name, count in counts.items() if count} == {name: count for name, count in live.items() if count}
    assert len(live) == 53 and manifest["database"]["live_count_differences"] == {}
    assert counts["secrets"] == setup.sandbox.row_counts["secrets"]
    assert manifest["configured_fingerprint"] == setup.sandbox.server_fingerprint
    roles = {f["role"] for f in manifest["files"]}
    assert {"server-key-public", "server-key-private", "passbolt-config", "jwt-private", "jwt-public"} <= roles


def test_changed_server_key_is_reported_loudly(mariadb_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup = mariadb_setup
    assert setup.run("backup", "--quiet") == 0
    public_key = setup.sandbox.root / "etc/passbolt/gpg/serverkey.asc"
    public_key.chmod(0o640)
    with public_key.open("a") as handle:
        handle.write("\n")
    public_key.chmod(0o440)
    capsys.readouterr()
    assert setup.run("backup", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["changes"]["changed"] == ["/etc/passbolt/gpg/serverkey.asc"]
    assert any("server key changed" in warning for warning in result["warnings"])


class ScanningReporter(LogReporter):
    """Reads every process's command line the first time dump bytes arrive (the dumper is running then)."""

    def __init__(self) -> None:
        super().__init__()
        self.command_lines: list[str] = []

    def advance(self, amount: int) -> None:
        if not self.command_lines:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    self.command_lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
                except OSError:
                    pass


def test_password_never_in_an_argument_list_during_a_backup(mariadb_setup: Setup) -> None:
    setup = mariadb_setup
    reporter = ScanningReporter()
    backup_action.run(load_config(setup.config), backup_action.BackupOptions(), reporter)
    assert [line for line in reporter.command_lines if "mariadb-dump" in line], "the dumper was not seen running"
    password = setup.sandbox.target.password
    assert password and not [line for line in reporter.command_lines if password in line]


def assert_nothing_new_and_latest_restores(setup: Setup, before: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert setup.snapshots(capsys) == before
    restored = tmp_path / f"restored-{secrets.token_hex(3)}"
    setup.restore_latest(restored)
    assert (restored / "database.sql").stat().st_size > 100_000
    assert setup.run("verify", "--quiet") == 0


def test_database_down_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server("mariadb")
    try:
        setup = Setup(make_sandbox(server, tmp_path, "debian"), tmp_path)
        assert setup.run("backup", "--quiet") == 0
        before = setup.snapshots(capsys)
    finally:
        server.stop()
    capsys.readouterr()
    assert setup.run("backup") == ExitCode.CHECK_FAILED
    error = capsys.readouterr().err
    assert "database-reachable" in error and "no snapshot was written" in error
    assert setup.sandbox.target.password not in error
    assert setup.snapshots(capsys) == before
    # The database is needed for nothing else: the earlier snapshot restores.
    restored = tmp_path / "restored"
    setup.restore_latest(restored)
    assert (restored / "database.sql").exists()


def test_wrong_credentials_are_a_clear_error(mariadb_setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = mariadb_setup
    assert setup.run("backup", "--quiet") == 0
    before = setup.snapshots(capsys)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-42\n")
    wrong.chmod(0o600)
    config = load_config(setup.config)
    write_config(config.model_copy(update={"instance": config.instance.model_copy(update={"database_password_file": wrong})}), setup.config)
    capsys.readouterr()
    assert setup.run("backup") == ExitCode.CHECK_FAILED
    error = capsys.readouterr().err
    assert "database-credentials" in error
    assert "not-the-password-42" not in error
    assert_nothing_new_and_latest_restores(setup, before, capsys, tmp_path)


class KillingReporter(LogReporter):
    """Kills the dumper (a child of this process) as soon as its first bytes arrive."""

    def advance(self, amount: int) -> None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if f"PPid:\t{os.getpid()}\n" in status and ("mariadb-dump" in status or "pg_dump" in status):
                os.kill(int(pid), signal.SIGKILL)


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_dumper_killed_halfway_writes_no_snapshot(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = Setup(make_sandbox(request.getfixturevalue(f"{engine}_server"), tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    before = setup.snapshots(capsys)
    with pytest.raises(DatabaseError) as caught:
        backup_action.run(load_config(setup.config), backup_action.BackupOptions(), KillingReporter())
    assert "SIGKILL" in str(caught.value) or "incomplete" in str(caught.value)
    assert "no snapshot was written" in str(caught.value)
    assert_nothing_new_and_latest_restores(setup, before, capsys, tmp_path)
    # And the next backup succeeds.
    assert setup.run("backup", "--quiet") == 0
    assert len(setup.snapshots(capsys)) == len(before) + 1


class FullDisk:
    """A storage layer that fails with ENOSPC once ``room`` bytes of data have been saved."""

    def __init__(self, inner: Backend, room: int) -> None:
        self.inner = inner
        self.room = room

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def save(self, handle: Handle, data: bytes) -> None:
        if handle.type is not ObjectType.LOCKS:
            if len(data) > self.room:
                raise NoSpaceError(f"no space left on device while saving {handle}", hint="free space on the storage")
            self.room -= len(data)
        self.inner.save(handle, data)

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        return self.inner.list(object_type)


def test_full_disk_writes_no_snapshot(mariadb_setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = mariadb_setup
    assert setup.run("backup", "--quiet") == 0
    before = setup.snapshots(capsys)
    # New rows so the next backup has data to store, then a disk that fills partway.
    with connect(setup.sandbox.target) as connection:  # type: ignore[attr-defined]
        with connection.cursor() as cursor:
            cursor.execute("UPDATE secrets SET data = CONCAT(data, ' ') LIMIT 500")
        connection.commit()
    options = backup_action.BackupOptions(wrap_backend=lambda backend: FullDisk(backend, room=20_000))  # type: ignore[arg-type, return-value]
    with pytest.raises(NoSpaceError):
        backup_action.run(load_config(setup.config), options, LogReporter())
    assert_nothing_new_and_latest_restores(setup, before, capsys, tmp_path)


def test_backup_refuses_an_instance_with_errors(mariadb_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup = mariadb_setup
    (setup.sandbox.root / "etc/passbolt/jwt/jwt.key").unlink()
    with pytest.raises(CheckFailed, match="no snapshot was written"):
        backup_action.run(load_config(setup.config), backup_action.BackupOptions(), LogReporter())
    assert setup.snapshots(capsys) == []
