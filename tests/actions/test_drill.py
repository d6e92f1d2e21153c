"""strongroom drill on real sandbox backups: a good one passes every check; each kind of damage
fails its own named check and nothing else; nothing decrypted is left on disk."""

from __future__ import annotations

import glob
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest
from test_backup import Setup, make_sandbox

from strongroom.actions.repository_access import open_repository
from strongroom.cli.main import main
from strongroom.config.loading import load_config
from strongroom.dbserver.connection import connect
from strongroom.errors import ExitCode
from strongroom.repository.drills import list_records
from strongroom.sandbox import openpgp
from strongroom.storage.backend import ObjectType

from conftest import require_binary

PASSING = {"pass", "warning", "unproven"}


def drill(setup: Setup, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = setup.run("drill", "--identity", str(setup.identity), "--json", *extra)
    output = capsys.readouterr().out
    return code, json.loads(output) if output.strip().startswith("{") else {}


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in result["checks"]}


def failed_only(result: dict[str, Any], name: str) -> None:
    found = statuses(result)
    assert found[name] == "fail", found
    assert [check for check, status in found.items() if status == "fail"] == [name], found
    assert result["failed_checks"] == [name]


def server_directories() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "strongroom-db-*")))


def rewrite_latest(setup: Setup, tmp_path: Path, transform: Callable[[bytes], bytes]) -> None:
    """Commit a new snapshot like the latest, with its dump passed through ``transform``.

    Made with the real writer key, so only what the dump holds is wrong: what a drill
    must catch even when the backup host itself was compromised.
    """
    config = load_config(setup.config)
    assert config.repository is not None
    repository = open_repository(config.repository, identity_file=setup.identity)
    snapshot = repository.load_snapshot("latest")
    work = tmp_path / f"rewrite-{time.monotonic_ns()}"
    work.mkdir()
    with repository.begin_snapshot() as writer:
        for component in snapshot.components:
            name = str(component["name"])
            path = work / name.replace("/", "_")
            repository.restore_component(snapshot, name, path)
            if component["kind"] == "file":
                writer.add_file(name, path, mode=component["mode"], uid=component["uid"], gid=component["gid"], mtime=component["mtime"])
            else:
                writer.add_record_stream(name, io.BytesIO(transform(path.read_bytes())), kind=component["kind"])
        writer.commit(dict(snapshot.body["manifest"]))


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_a_good_backup_passes_every_check(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = Setup(make_sandbox(request.getfixturevalue(f"{engine}_server"), tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    before = server_directories()
    report = tmp_path / "drill.md"
    code, result = drill(setup, capsys, "--report", str(report))
    assert code == 0, result
    found = statuses(result)
    assert set(found.values()) == {"pass"}, found
    assert {"snapshot_intact", "dump_complete", "dump_loads", "tables", "row_counts", "referential_integrity",
            "user_keys", "server_key", "server_key_decrypts", "jwt_keys", "configuration"} == set(found)
    assert result["restore_seconds"] > 0 and result["snapshot_age_seconds"] >= 0
    assert "PASSED" in report.read_text() and report.stat().st_mode & 0o777 == 0o600
    # Nothing of the drill's throwaway server, the decrypted dump or the keys is left
    # (other servers may come and go meanwhile: only drill folders count).
    assert not [d for d in server_directories() - before if os.path.isdir(os.path.join(d, "drill"))]
    # The signed record is in the repository, and this machine trusts its own drill key.
    config = load_config(setup.config)
    assert config.repository is not None and config.drill.trusted_keys
    repository = open_repository(config.repository)
    records, ignored = list_records(repository.backend, repository.metadata_key, frozenset(config.drill.trusted_keys))
    assert [r["snapshot"] for r in records] == [result["snapshot"]] and records[0]["passed"] is True
    assert ignored == []
    # A record signed by a key nobody pinned is ignored.
    assert list_records(repository.backend, repository.metadata_key, frozenset())[0] == []


@pytest.fixture
def backed_up(mariadb_server: Any, tmp_path: Path) -> Setup:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    return setup


def test_truncated_dump_fails_dump_complete(backed_up: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite_latest(backed_up, tmp_path, lambda dump: dump[: dump.rindex(b"-- Dump completed")])
    code, result = drill(backed_up, capsys)
    assert code == ExitCode.CHECK_FAILED
    failed_only(result, "dump_complete")


def test_server_key_of_another_instance_fails_the_decryption_proof(
    backed_up: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = backed_up.sandbox.root
    other = openpgp.generate_key_pair("Other Passbolt <server@other.example>", "")
    gpg = root / "etc/passbolt/gpg"
    for name, text in (("serverkey.asc", other.public_armored), ("serverkey_private.asc", other.private_armored)):
        path = gpg / name
        path.chmod(0o640)
        path.write_text(text)
        path.chmod(0o440)
    config = root / "etc/passbolt/passbolt.php"
    config.chmod(0o640)
    config.write_text(config.read_text().replace(backed_up.sandbox.server_fingerprint, other.fingerprint.upper()))
    config.chmod(0o440)
    assert backed_up.run("backup", "--quiet") == 0  # the files agree with each other: only the database knows
    code, result = drill(backed_up, capsys)
    assert code == ExitCode.CHECK_FAILED
    failed_only(result, "server_key_decrypts")


def test_dump_missing_a_table_fails_tables(mariadb_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    with connect(setup.sandbox.target) as connection:  # type: ignore[attr-defined]
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE favorites")
        connection.commit()
    assert setup.run("backup", "--quiet") == 0
    code, result = drill(setup, capsys)
    assert code == ExitCode.CHECK_FAILED
    failed_only(result, "tables")


def test_corrupted_repository_object_fails_snapshot_intact(backed_up: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packs = sorted((tmp_path / "repository" / ObjectType.DATA.value).rglob("*"), key=lambda p: p.stat().st_size)
    pack = [p for p in packs if p.is_file()][-1]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    code, result = drill(backed_up, capsys)
    assert code == ExitCode.CHECK_FAILED
    failed_only(result, "snapshot_intact")


@pytest.mark.parametrize(
    "payload",
    [b"SELECT 'x' INTO OUTFILE '{marker}';\n", b"\\! touch {marker}\n"],
    ids=["into-outfile", "shell-escape"],
)
def test_hostile_dump_is_refused_and_writes_nothing(
    backed_up: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes
) -> None:
    marker = tmp_path / "escaped"
    line = payload.replace(b"{marker}", str(marker).encode())

    def poison(dump: bytes) -> bytes:
        position = dump.index(b"INSERT INTO `users`")
        return dump[:position] + line + dump[position:]

    rewrite_latest(backed_up, tmp_path, poison)
    code, result = drill(backed_up, capsys)
    assert code == ExitCode.CHECK_FAILED
    failed_only(result, "dump_loads")
    assert "refused" in next(c["reason"] for c in result["checks"] if c["name"] == "dump_loads")
    assert not marker.exists()


def test_wrong_identity_fails_before_any_work(backed_up: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stranger = tmp_path / "stranger.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    stranger.chmod(0o600)
    before = server_directories()
    capsys.readouterr()
    code = backed_up.run("drill", "--identity", str(stranger))
    assert code == ExitCode.IDENTITY
    assert "identity" in capsys.readouterr().err.lower()
    assert not [d for d in server_directories() - before if os.path.isdir(os.path.join(d, "drill"))]


@pytest.mark.slow
def test_a_killed_drill_leaves_no_plaintext(mariadb_server: Any, tmp_path: Path) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    before = server_directories()
    process = subprocess.Popen(
        [sys.executable, "-m", "strongroom", "--config", str(setup.config), "drill", "--identity", str(setup.identity), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline and not seen and process.poll() is None:
            seen = [d for d in server_directories() - before if glob.glob(os.path.join(d, "drill", "*"))]
            time.sleep(0.01)
        assert seen, "the drill never reached its work folder"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(d) for d in seen):
        time.sleep(0.1)
    assert not [d for d in seen if os.path.exists(d)], "decrypted drill files outlived the killed drill"


def as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run as a user that is not root. As root: inside a user namespace that maps uid
    1000 onto this one (``unshare``), so the process sees itself as an ordinary user and takes
    every non-root path of strongroom, while it can still read this checkout and interpreter,
    which may lie under a folder only root enters."""
    if os.geteuid() != 0:
        return argv
    return [require_binary("unshare"), "--user", "--map-user=1000", "--map-group=1000", *argv]


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_a_drill_run_by_an_unprivileged_user_passes(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Drills are often run by a service account: the throwaway server then runs as that account
    (no switch to ``mysql``/``postgres``), its folder is that account's, and nothing is left."""
    setup = Setup(make_sandbox(request.getfixturevalue(f"{engine}_server"), tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    before = server_directories()
    script = ("import os, runpy, sys; assert os.geteuid() != 0, 'still root'; "
              "sys.argv = ['strongroom', *sys.argv[1:]]; runpy.run_module('strongroom', run_name='__main__')")
    completed = subprocess.run(
        as_unprivileged([sys.executable, "-c", script, "--config", str(setup.config), "drill", "--identity",
                         str(setup.identity), "--json"]),
        capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    found = statuses(json.loads(completed.stdout))
    assert set(found.values()) == {"pass"}, found
    assert not [d for d in server_directories() - before if os.path.isdir(d)]
