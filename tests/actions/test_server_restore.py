"""strongroom restore --root: a sandbox backup put back onto a fresh root and a fresh database.

Real servers (MariaDB and PostgreSQL throwaway servers), real gpg, a real repository.
The only stand-ins: passbolt's ``bin/cake`` (a script recording how it was called and
answering like passbolt's) and ``docker`` for the Docker-layout source.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest

from strongroom.actions import server_restore
from strongroom.actions.repository_access import open_repository
from strongroom.cli.main import main
from strongroom.config.loading import load_config
from strongroom.dbserver.connection import DatabaseTarget, connect
from strongroom.dbserver.inspect import table_fingerprints
from strongroom.drill.checks import Status
from strongroom.errors import ExitCode, UsageError
from strongroom.passbolt.config_edit import read_env_values
from strongroom.sandbox.create import Sandbox, create_sandbox
from strongroom.sandbox.layouts import version_php
from strongroom.source.php import parse_php, read_dotted

import docker_standin
from conftest import require_binary

WEB = (33, 33)  # www-data on Debian, and the Docker image's


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No passbolt variables from the caller's environment; gpg must exist."""
    require_binary("gpg")
    for name in list(os.environ):
        if name.startswith(("DATASOURCES_DEFAULT_", "PASSBOLT_GPG_")):
            monkeypatch.delenv(name)


class Source:
    """A sandbox instance backed up once into a fresh repository."""

    def __init__(self, server: Any, directory: Path, layout: str = "debian",
                 prepare: Callable[[Sandbox], None] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.sandbox: Sandbox = create_sandbox(
            database_target=server.target, root=directory / "source-root", layout=layout, size=1_000_000,
            database_name=f"source_{secrets.token_hex(4)}",
        )
        if prepare is not None:
            prepare(self.sandbox)
        identity = pyrage.x25519.Identity.generate()
        self.identity = directory / "identity.txt"
        self.identity.write_text(f"{identity}\n")
        self.identity.chmod(0o600)
        self.config = directory / "strongroom.toml"
        assert main(["--config", str(self.config), "init", "--repository", str(directory / "repository"),
                     "--recipient", str(identity.to_public()), "--root", str(self.sandbox.root), "--quiet"]) == 0
        assert main(["--config", str(self.config), "backup", "--quiet"]) == 0

    def repository(self) -> Any:
        return open_repository(load_config(self.config).repository, identity_file=self.identity)

    def cli(self, *arguments: str) -> int:
        return main(["--config", str(self.config), "restore", "latest", "--identity", str(self.identity), *arguments])


def fresh_root(directory: Path, *, version: str | None = "5.12.0", layout: str = "debian") -> Path:
    """A target root with passbolt installed (its version.php) and nothing else."""
    root = directory / f"target-{secrets.token_hex(3)}"
    root.mkdir()
    if version is not None and layout != "docker":
        config = root / ("var/www/passbolt/config" if layout == "source" else "usr/share/php/passbolt/config")
        config.mkdir(parents=True)
        (config / "version.php").write_text(version_php().replace("5.12.0", version))
    return root


def fresh_database(server: Any) -> DatabaseTarget:
    name = "target_" + secrets.token_hex(4)
    return server.create_database(name, user=name, password="pw-" + secrets.token_hex(8))


def assert_same_tables(source: DatabaseTarget, restored: DatabaseTarget) -> None:
    with connect(source) as left, connect(restored) as right:  # type: ignore[attr-defined]
        expected = table_fingerprints(left, source.engine)
        actual = table_fingerprints(right, restored.engine)
    assert len(expected) == 53
    assert actual == expected


def tree_digest(root: Path) -> str:
    """A hash of every path, mode, owner and content under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}|{info.st_mode}|{info.st_uid}|{info.st_gid}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def database_digest(target: DatabaseTarget) -> str:
    with connect(target) as connection:  # type: ignore[attr-defined]
        return hashlib.sha256(repr(sorted(table_fingerprints(connection, target.engine).items())).encode()).hexdigest()


def secret_keys_in(keyring: Path) -> list[str]:
    """The fingerprints of the secret keys in ``keyring``, read by gpg from a short copy (agent socket length)."""
    with tempfile.TemporaryDirectory(prefix="gpg-", dir="/tmp") as copy:
        shutil.copytree(keyring, copy, dirs_exist_ok=True)
        listing = subprocess.run(["gpg", "--homedir", copy, "--batch", "--with-colons", "--list-secret-keys"],
                                 capture_output=True, text=True, check=True)
        subprocess.run(["gpgconf", "--homedir", copy, "--kill", "all"], check=False)
    lines = listing.stdout.splitlines()
    return [lines[n + 1].split(":")[9] for n, line in enumerate(lines) if line.startswith("sec:")]


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, info.st_mode & 0o7777


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_restore_onto_fresh_root_and_database(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server = request.getfixturevalue(f"{engine}_server")
    source = Source(server, tmp_path)
    root = fresh_root(tmp_path)
    target = fresh_database(server)
    options = server_restore.ServerRestoreOptions(root=root, database=target)
    result = server_restore.run(source.repository(), "latest", options)

    assert_same_tables(source.sandbox.target, target)
    assert result.load is not None and result.load.rows > 0
    source_config = source.sandbox.root / "etc/passbolt"
    target_config = root / "etc/passbolt"
    expected = {
        "gpg/serverkey.asc": (*WEB, 0o440), "gpg/serverkey_private.asc": (*WEB, 0o440),
        "jwt/jwt.key": (0, 33, 0o640), "jwt/jwt.pem": (0, 33, 0o640),
        "app.php": (0, 33, 0o640), "subscription_key.txt": (0, 33, 0o640), "passbolt.php": (*WEB, 0o440),
    }
    for name, owner in expected.items():
        assert owner_and_mode(target_config / name) == owner, name
        if name != "passbolt.php":
            assert (target_config / name).read_bytes() == (source_config / name).read_bytes(), name
    assert owner_and_mode(target_config) == (0, 33, 0o770)
    assert owner_and_mode(target_config / "gpg") == (0, 33, 0o770)
    assert owner_and_mode(target_config / "jwt") == (0, 33, 0o750)
    assert owner_and_mode(root / "var/lib/passbolt/.gnupg") == (*WEB, 0o700)
    # The datasource now names the target database; everything else is as backed up.
    restored = parse_php((target_config / "passbolt.php").read_text(), environment={}).returned
    assert read_dotted(restored, "Datasources.default.database") == target.database
    assert read_dotted(restored, "Datasources.default.username") == target.user
    assert read_dotted(restored, "Datasources.default.password") == target.password
    original_lines = (source_config / "passbolt.php").read_text().splitlines()
    restored_lines = (target_config / "passbolt.php").read_text().splitlines()
    changed = [line for line in difflib.ndiff(original_lines, restored_lines) if line.startswith(("+ ", "- "))]
    assert changed and all("'" in line for line in changed) and len(changed) <= 14, changed
    assert all(any(key in line for key in ("host", "port", "socket", "username", "password", "database"))
               for line in changed), changed
    # The keyring holds the server key, and every check passed.
    assert source.sandbox.server_fingerprint in result.keyring_fingerprints
    assert secret_keys_in(root / "var/lib/passbolt/.gnupg") == [source.sandbox.server_fingerprint]
    statuses = {check.name: check.status for check in result.checks}
    assert statuses["keyring"] is Status.PASS
    assert statuses["tables"] is Status.PASS and statuses["row_counts"] is Status.PASS, result.checks
    assert statuses["server_key"] is Status.PASS and statuses["configuration"] is Status.PASS, result.checks
    assert statuses["jwt_keys"] is Status.PASS
    assert not result.failed_checks, [c.to_dict() for c in result.checks if c.status is Status.FAIL]


@pytest.fixture(scope="module")
def mariadb_source(mariadb_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """One debian-layout sandbox on MariaDB, backed up once, shared by the tests below."""
    for name in list(os.environ):
        if name.startswith(("DATASOURCES_DEFAULT_", "PASSBOLT_GPG_")):
            del os.environ[name]
    return Source(mariadb_server, tmp_path_factory.mktemp("mariadb-source"))


def password_file(directory: Path, target: DatabaseTarget) -> Path:
    path = directory / f"password-{secrets.token_hex(3)}"
    path.write_text(f"{target.password}\n")
    path.chmod(0o600)
    return path


def url_of(target: DatabaseTarget) -> str:
    """The target as a URL without its password, over TCP (the password goes in a file)."""
    return f"mariadb://{target.user}@127.0.0.1:{target.effective_port}/{target.database}"


def test_non_empty_database_is_refused_and_untouched(mariadb_source: Source, mariadb_server: Any, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    target = fresh_database(mariadb_server)
    with connect(target) as connection:  # type: ignore[attr-defined]
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE users (id CHAR(36) PRIMARY KEY, username VARCHAR(255))")
        cursor.execute("INSERT INTO users VALUES ('x', 'someone@example.com')")
        connection.commit()
    root = fresh_root(tmp_path)
    before = (tree_digest(root), database_digest(target))
    code = mariadb_source.cli("--root", str(root), "--database", url_of(target),
                              "--database-password-file", str(password_file(tmp_path, target)))
    assert code == ExitCode.USAGE
    assert "not empty" in capsys.readouterr().err
    assert (tree_digest(root), database_digest(target)) == before


def test_dry_run_changes_nothing_and_shows_the_plan(mariadb_source: Source, mariadb_server: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    target = fresh_database(mariadb_server)
    root = fresh_root(tmp_path)
    before = (tree_digest(root), database_digest(target))
    capsys.readouterr()
    code = mariadb_source.cli("--root", str(root), "--database", url_of(target), "--dry-run", "--json",
                              "--database-password-file", str(password_file(tmp_path, target)))
    assert code == ExitCode.OK
    output = capsys.readouterr().out
    plan = json.loads(output)["plan"]
    assert (tree_digest(root), database_digest(target)) == before
    assert target.password not in output
    by_path = {entry["path"]: entry for entry in plan["paths"]}
    assert by_path["/etc/passbolt/gpg/serverkey_private.asc"]["mode"] == "0440"
    assert by_path["/etc/passbolt/gpg/serverkey_private.asc"]["owner"] == "www-data:www-data"
    assert by_path["/etc/passbolt/jwt/jwt.key"]["owner"] == "root:www-data"
    assert by_path["/etc/passbolt/passbolt.php"]["change"].startswith("updated: Datasources.default.")
    assert by_path["/var/lib/passbolt/.gnupg"]["mode"] == "0700"
    assert any("load database.sql" in action for action in plan["database"]["actions"])
    assert [step["run"] for step in plan["passbolt_steps"]] == [False, False, False]
    # The human form lists every file with owner and mode too.
    assert mariadb_source.cli("--root", str(root), "--database", url_of(target), "--dry-run",
                              "--database-password-file", str(password_file(tmp_path, target))) == ExitCode.OK
    text = capsys.readouterr().out
    assert "0440 www-data:www-data" in text and "sudo -H -u www-data /usr/share/php/passbolt/bin/cake passbolt migrate" in text
    assert (tree_digest(root), database_digest(target)) == before


def test_newer_snapshot_is_refused(mariadb_source: Source, mariadb_server: Any, tmp_path: Path) -> None:
    root = fresh_root(tmp_path, version="5.11.2")
    options = server_restore.ServerRestoreOptions(root=root, database=fresh_database(mariadb_server))
    before = tree_digest(root)
    with pytest.raises(UsageError) as caught:
        server_restore.run(mariadb_source.repository(), "latest", options)
    assert "5.12.0" in caught.value.message and "5.11.2" in caught.value.message
    assert "install passbolt 5.12.0 or newer" in str(caught.value.hint)
    assert tree_digest(root) == before


def test_create_database_on_a_fresh_server(mariadb_source: Source, mariadb_server: Any, tmp_path: Path) -> None:
    name = "created_" + secrets.token_hex(4)
    target = DatabaseTarget(engine="mariadb", host="127.0.0.1", port=mariadb_server.target.effective_port,
                            user=name, password="pw-" + secrets.token_hex(8), database=name)
    options = server_restore.ServerRestoreOptions(root=fresh_root(tmp_path), database=target, create_database=True,
                                                  admin=mariadb_server.tcp_target, only=("database",))
    result = server_restore.run(mariadb_source.repository(), "latest", options)
    assert any("created database" in action for action in result.database_actions)
    assert_same_tables(mariadb_source.sandbox.target, target)
    assert {check.name for check in result.checks} == {"tables", "row_counts", "referential_integrity", "user_keys"}
    assert not result.failed_checks
    assert not list(options.root.joinpath("etc").glob("*"))  # --only database wrote no file


@pytest.mark.slow
def test_killed_restore_completes_with_replace_database(mariadb_source: Source, mariadb_server: Any, tmp_path: Path) -> None:
    target = fresh_database(mariadb_server)
    root = fresh_root(tmp_path)
    secret = password_file(tmp_path, target)
    argv = [sys.executable, "-m", "strongroom", "--config", str(mariadb_source.config), "restore", "latest",
            "--identity", str(mariadb_source.identity), "--root", str(root), "--database", url_of(target),
            "--database-password-file", str(secret), "--quiet"]
    child = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    tables = 0
    while time.monotonic() < deadline and child.poll() is None:
        with connect(target) as connection:  # type: ignore[attr-defined]
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()")
            tables = int(cursor.fetchone()[0])
        if tables:
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait()
    assert tables, "the load never started"
    # Half a restore is a non-empty database: refused without --replace-database ...
    with pytest.raises(UsageError):
        server_restore.run(mariadb_source.repository(), "latest", server_restore.ServerRestoreOptions(root=root, database=target))
    # ... and completed with it.
    result = server_restore.run(mariadb_source.repository(), "latest",
                                server_restore.ServerRestoreOptions(root=root, database=target, replace_database=True))
    assert any("dropped" in action for action in result.database_actions)
    assert_same_tables(mariadb_source.sandbox.target, target)
    assert not result.failed_checks


CAKE = r'''#!/usr/bin/env python3
"""A stand-in for passbolt's bin/cake: records user, arguments, environment, cwd; answers like passbolt."""
import json, os, sys
record = {"uid": os.getuid(), "gid": os.getgid(), "argv": sys.argv[1:], "cwd": os.getcwd(),
          "env": {k: v for k, v in os.environ.items() if k in ("HOME", "GNUPGHOME", "PATH")}}
with open(os.environ.get("CAKE_LOG", "LOG_PATH"), "a") as log:
    log.write(json.dumps(record) + "\n")
if os.getuid() == 0 and sys.argv[1:3] == ["passbolt", "migrate"]:
    print("Passbolt migrate command can not be run as root user.", file=sys.stderr)
    sys.exit(1)
if sys.argv[1:3] == ["passbolt", "migrate"]:
    print("All Done. Took 0.1234s")
elif sys.argv[1:3] == ["cache", "clear_all"]:
    print("Cleared _cake_core_ cache")
elif sys.argv[1:3] == ["passbolt", "healthcheck"]:
    print(" [PASS] The server gpg key is set in the keyring.")
    sys.exit(int(os.environ.get("CAKE_HEALTH_EXIT", "0")))
'''


@pytest.fixture
def reachable_directory() -> Iterator[Path]:
    """A folder the web user can reach, outside pytest's own temporary root (which is 0700
    and which any concurrent pytest session may reset to 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="strongroom-restore-"))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_passbolt_steps_run_as_the_web_user(mariadb_source: Source, mariadb_server: Any, reachable_directory: Path) -> None:
    root = fresh_root(reachable_directory)
    log = reachable_directory / "cake-calls.jsonl"
    log.touch()
    log.chmod(0o666)
    cake = root / "usr/share/php/passbolt/bin/cake"
    cake.parent.mkdir(parents=True)
    cake.write_text(CAKE.replace("LOG_PATH", str(log)))
    cake.chmod(0o755)
    # The web user must reach the stand-in and its log, as on a real server.
    for parent in [cake.parent, *list(cake.parents)[: len(cake.relative_to(reachable_directory).parts)]]:
        parent.chmod(parent.stat().st_mode | 0o011)
    options = server_restore.ServerRestoreOptions(root=root, database=fresh_database(mariadb_server), run_passbolt_steps=True)
    result = server_restore.run(mariadb_source.repository(), "latest", options)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call["argv"] for call in calls] == [["passbolt", "migrate"], ["cache", "clear_all"],
                                               ["passbolt", "healthcheck", "--posix"]]
    assert {(call["uid"], call["gid"]) for call in calls} == {WEB}
    assert all(call["cwd"] == str(root / "usr/share/php/passbolt") for call in calls)
    assert all(call["env"]["GNUPGHOME"] == str(root / "var/lib/passbolt/.gnupg") for call in calls)
    assert [step.returncode for step in result.steps] == [0, 0, 0]
    assert "All Done" in result.steps[0].output
    assert not result.failed_checks


def test_passbolt_steps_are_printed_without_the_option(mariadb_source: Source, mariadb_server: Any, tmp_path: Path) -> None:
    root = fresh_root(tmp_path)
    options = server_restore.ServerRestoreOptions(root=root, database=fresh_database(mariadb_server), only=("database",))
    result = server_restore.run(mariadb_source.repository(), "latest", options)
    assert result.steps == []
    assert [step.shown for step in result.plan.passbolt_steps] == [
        "sudo -H -u www-data /usr/share/php/passbolt/bin/cake passbolt migrate",
        "sudo -H -u www-data /usr/share/php/passbolt/bin/cake cache clear_all",
        "sudo -H -u www-data /usr/share/php/passbolt/bin/cake passbolt healthcheck --posix",
    ]


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_package_backup_into_docker_layout(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server = request.getfixturevalue(f"{engine}_server")
    source = mariadb_source_or_new(request, engine, tmp_path)
    root = fresh_root(tmp_path, layout="docker")
    compose = root / "opt/passbolt/docker-compose.yaml"
    compose.parent.mkdir(parents=True)
    compose.write_text("services:\n  passbolt:\n    image: passbolt/passbolt:5.12.0-1-ce\n")
    target = fresh_database(server)
    options = server_restore.ServerRestoreOptions(root=root, layout="docker", database=target)
    result = server_restore.run(source.repository(), "latest", options)

    volumes = root / "var/lib/docker/volumes"
    source_config = source.sandbox.root / "etc/passbolt"
    for relative, volume, owner in (("gpg/serverkey.asc", "passbolt_gpg_volume", (*WEB, 0o440)),
                                    ("gpg/serverkey_private.asc", "passbolt_gpg_volume", (*WEB, 0o440)),
                                    ("jwt/jwt.key", "passbolt_jwt_volume", (0, 33, 0o640)),
                                    ("jwt/jwt.pem", "passbolt_jwt_volume", (0, 33, 0o640))):
        copy = volumes / volume / "_data" / Path(relative).name
        assert copy.read_bytes() == (source_config / relative).read_bytes()
        assert owner_and_mode(copy) == owner, relative
    assert owner_and_mode(volumes / "passbolt_gpg_volume/_data") == (0, 33, 0o770)
    assert owner_and_mode(volumes / "passbolt_jwt_volume/_data") == (0, 33, 0o750)
    assert (root / "opt/passbolt/subscription_key.txt").read_bytes() == (source_config / "subscription_key.txt").read_bytes()
    env_file = root / "opt/passbolt/env/passbolt.env"
    assert owner_and_mode(env_file) == (0, 0, 0o600)
    values = read_env_values(env_file.read_text())
    assert values["PASSBOLT_GPG_SERVER_KEY_FINGERPRINT"] == source.sandbox.server_fingerprint
    assert values["DATASOURCES_DEFAULT_HOST"] == "db"
    assert values["DATASOURCES_DEFAULT_DATABASE"] == target.database
    assert values["DATASOURCES_DEFAULT_USERNAME"] == target.user
    assert values["DATASOURCES_DEFAULT_PASSWORD"] == target.password
    assert values["APP_FULL_BASE_URL"].startswith("https://")
    assert len(values["SECURITY_SALT"]) >= 32
    assert ("DATASOURCES_DEFAULT_DRIVER" in values) == (engine == "postgresql")
    assert not (root / "etc").exists() and not (root / "var/lib/passbolt").exists()
    assert result.plan.keyring is None and "docker compose" in result.plan.passbolt_steps[0].shown
    assert_same_tables(source.sandbox.target, target)
    statuses = {check.name: check.status for check in result.checks}
    assert statuses["configuration"] is Status.PASS and statuses["server_key"] is Status.PASS, result.checks
    assert not result.failed_checks


def mariadb_source_or_new(request: pytest.FixtureRequest, engine: str, tmp_path: Path) -> Source:
    if engine == "mariadb":
        return request.getfixturevalue("mariadb_source")  # type: ignore[no-any-return]
    return Source(request.getfixturevalue("postgresql_server"), tmp_path / "source")


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_docker_backup_onto_package_layout(engine: str, request: pytest.FixtureRequest, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker -> Debian package: passbolt.php is written from the container's environment (the
    datasource the target's), app.php gets the salt, the keys go to /etc/passbolt/gpg."""
    server = request.getfixturevalue(f"{engine}_server")
    smtp_password = "it's a \\ secret"

    def docker_host(sandbox: Sandbox) -> None:
        env_file = sandbox.root / "opt/passbolt/env/passbolt.env"
        env_file.write_text(env_file.read_text() + f"EMAIL_TRANSPORT_DEFAULT_USERNAME=mailer\n"
                            f"EMAIL_TRANSPORT_DEFAULT_PASSWORD=\"{smtp_password}\"\n"
                            "PASSBOLT_SSL_FORCE=false\nPASSBOLT_PLUGINS_EXPORT_ENABLED=true\n")
        fixture = docker_standin.compose_fixture(tmp_path, sandbox, "passbolt")
        docker_standin.install(monkeypatch, tmp_path / "bin", fixture)
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")

    source = Source(server, tmp_path / "source", layout="docker", prepare=docker_host)
    docker_env = read_env_values((source.sandbox.root / "opt/passbolt/env/passbolt.env").read_text())
    root = fresh_root(tmp_path)
    config_dir = root / "etc/passbolt"
    config_dir.mkdir(parents=True)
    app_php = config_dir / "app.php"
    app_php.write_text("<?php\nreturn [\n    'Security' => [\n        'salt' => env('SECURITY_SALT', 'package-salt'),\n    ],\n];\n")
    target = fresh_database(server)
    options = server_restore.ServerRestoreOptions(root=root, layout="debian", database=target)
    result = server_restore.run(source.repository(), "latest", options)

    passbolt_php = config_dir / "passbolt.php"
    assert owner_and_mode(passbolt_php)[2] == 0o440
    parsed = parse_php(passbolt_php.read_text(), path="passbolt.php", environment={}).returned
    assert read_dotted(parsed, "App.fullBaseUrl") == docker_env["APP_FULL_BASE_URL"]
    datasource = read_dotted(parsed, "Datasources.default")
    assert (datasource["host"], datasource["port"]) == (target.host, target.effective_port)
    assert (datasource["username"], datasource["password"], datasource["database"]) == (target.user, target.password, target.database)
    assert (datasource.get("driver") == "Cake\\Database\\Driver\\Postgres") == (engine == "postgresql")
    assert read_dotted(parsed, "passbolt.gpg.serverKey") == {
        "fingerprint": source.sandbox.server_fingerprint,
        "public": "/etc/passbolt/gpg/serverkey.asc", "private": "/etc/passbolt/gpg/serverkey_private.asc"}
    transport = read_dotted(parsed, "EmailTransport.default")
    assert transport["host"] == docker_env["EMAIL_TRANSPORT_DEFAULT_HOST"] and transport["port"] == 587
    assert transport["tls"] is True and transport["password"] == smtp_password
    assert read_dotted(parsed, "passbolt.ssl.force") is False
    assert read_dotted(parsed, "Email.default.from") == {docker_env["EMAIL_DEFAULT_FROM"]: "Passbolt"}
    salt = parse_php(app_php.read_text(), path="app.php", environment={}).returned
    assert read_dotted(salt, "Security.salt") == docker_env["SECURITY_SALT"]
    for name in ("serverkey.asc", "serverkey_private.asc"):
        original = source.sandbox.root / "var/lib/docker/volumes/passbolt_gpg_volume/_data" / name
        assert (config_dir / "gpg" / name).read_bytes() == original.read_bytes()
    assert not (root / "opt").exists()
    assert any("PASSBOLT_PLUGINS_EXPORT_ENABLED" in warning for warning in result.plan.warnings), result.plan.warnings
    assert not any("no passbolt.php" in warning for warning in result.plan.warnings)
    assert target.password not in json.dumps(result.to_dict())
    assert_same_tables(source.sandbox.target, target)
    statuses = {check.name: check.status for check in result.checks}
    assert statuses["configuration"] is Status.PASS, result.checks
    assert not result.failed_checks, [c.to_dict() for c in result.checks]


def test_v1_database_php_points_at_the_new_database(mariadb_server: Any, tmp_path: Path) -> None:
    source = Source(mariadb_server, tmp_path / "source", layout="v1")
    root = fresh_root(tmp_path, version=None)
    target = fresh_database(mariadb_server)
    options = server_restore.ServerRestoreOptions(root=root, database=target)
    result = server_restore.run(source.repository(), "latest", options)
    config = root / "var/www/passbolt/app/Config"
    written = (config / "database.php").read_text()
    default = parse_php(written, path="database.php", environment={}).classes["DATABASE_CONFIG"]["default"]
    assert (default["host"], default["port"]) == (target.host, str(target.effective_port))
    assert (default["login"], default["password"], default["database"]) == (target.user, target.password, target.database)
    assert default["datasource"] == "Database/Mysql" and default["encoding"] == "utf8mb4"
    original = (source.sandbox.root / "var/www/passbolt/app/Config/database.php").read_text()
    assert default.get("unix_socket") == target.socket
    changed = {line.split("=>")[0].strip(" +-\t'") for line in difflib.ndiff(original.splitlines(), written.splitlines())
               if line.startswith(("+ ", "- "))}
    assert changed <= {"host", "port", "unix_socket", "login", "password", "database"}, changed
    assert result.plan.database is not None and "database" in result.plan.database.datasource_updates
    assert_same_tables(source.sandbox.target, target)
    assert not result.failed_checks, [c.to_dict() for c in result.checks]


def test_v1_avatars_and_config_files(mariadb_server: Any, tmp_path: Path) -> None:
    source = Source(mariadb_server, tmp_path / "source", layout="v1")
    root = fresh_root(tmp_path, version=None)
    options = server_restore.ServerRestoreOptions(root=root, only=("files",))
    result = server_restore.run(source.repository(), "latest", options)
    public = "var/www/passbolt/app/webroot/img/public"
    originals = sorted((source.sandbox.root / public).rglob("*.png"))
    assert originals
    for original in originals:
        copy = root / original.relative_to(source.sandbox.root)
        assert copy.read_bytes() == original.read_bytes()
        assert owner_and_mode(copy) == (*WEB, 0o644)
        assert owner_and_mode(copy.parent) == (*WEB, 0o755)
    for name in ("app.php", "core.php", "database.php", "email.php", "gpg/serverkey_private.asc"):
        path = root / "var/www/passbolt/app/Config" / name
        assert path.read_bytes() == (source.sandbox.root / "var/www/passbolt/app/Config" / name).read_bytes()
        assert owner_and_mode(path) == (*WEB, 0o440), name
    assert source.sandbox.server_fingerprint in result.keyring_fingerprints
    assert any("version" in warning for warning in result.plan.warnings)
    assert not result.failed_checks, [c.to_dict() for c in result.checks]
