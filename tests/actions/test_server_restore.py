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

    def __init__(self, server: Any, directory: Path, layout: str = "debian") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.sandbox: Sandbox = create_sandbox(
            database_target=server.target, root=directory / "source-root", layout=layout, size=1_000_000,
            database_name=f"source_{secrets.token_hex(4)}",
        )
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
