"""End to end: back up a sandbox passbolt instance to SFTP with an S3 replica, restore from each;
a backup to a bucket that refuses every delete; a failing target does not stop the others."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyrage
import pytest

from strongroom.cli.main import main
from strongroom.config.loading import load_config, write_config
from strongroom.config.schema import TargetConfig
from strongroom.sandbox.create import Sandbox, create_sandbox
from conftest import S3Server, SSHServer, new_bucket


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("DATASOURCES_DEFAULT_", "PASSBOLT_GPG_", "AWS_")):
            monkeypatch.delenv(name)


class Setup:
    """A sandbox and an initialised repository at ``url``; helpers to run verbs."""

    def __init__(self, server: Any, directory: Path, url: str) -> None:
        self.sandbox: Sandbox = create_sandbox(database_target=server.target, root=directory / "root", layout="debian",
                                               size=1_000_000, database_name=f"storage_{secrets.token_hex(3)}")
        identity = pyrage.x25519.Identity.generate()
        self.identity = directory / "identity.txt"
        self.identity.write_text(f"{identity}\n")
        self.identity.chmod(0o600)
        self.config = directory / "strongroom.toml"
        assert self.run("init", "--repository", url, "--recipient", str(identity.to_public()),
                        "--root", str(self.sandbox.root), "--quiet") == 0

    def run(self, *arguments: str) -> int:
        return main(["--config", str(self.config), *arguments])

    def json(self, capsys: pytest.CaptureFixture[str], *arguments: str) -> Any:
        capsys.readouterr()
        assert self.run(*arguments, "--json") == 0
        return json.loads(capsys.readouterr().out)

    def add_targets(self, *targets: TargetConfig) -> None:
        config = load_config(self.config)
        assert config.repository is not None
        repository = config.repository.model_copy(update={"targets": targets})
        write_config(config.model_copy(update={"repository": repository}), self.config)

    def with_url(self, url: str, name: str) -> Setup:
        """A copy of this setup whose configuration reads the repository at ``url`` (a replica)."""
        config = load_config(self.config)
        assert config.repository is not None
        other = self.config.with_name(name)
        write_config(config.model_copy(update={"repository": config.repository.model_copy(
            update={"url": url, "targets": ()})}), other)
        clone = object.__new__(Setup)
        clone.sandbox, clone.identity, clone.config = self.sandbox, self.identity, other
        return clone

    def restore_and_compare(self, destination: Path) -> None:
        assert self.run("restore", "latest", "--identity", str(self.identity), "--to", str(destination), "--quiet") == 0
        dump = (destination / "database.sql").read_bytes()
        assert b"CREATE TABLE" in dump and b"INSERT INTO" in dump
        key = self.sandbox.root / "etc/passbolt/gpg/serverkey_private.asc"
        assert (destination / "files/etc/passbolt/gpg/serverkey_private.asc").read_bytes() == key.read_bytes()


def s3_url(server: S3Server, bucket: str, prefix: str, credentials: Path) -> str:
    return f"s3://{bucket}/{prefix}?endpoint={server.endpoint}&credentials={credentials}"


@pytest.mark.slow
def test_backup_to_sftp_with_replicas_restores_from_each(
    mariadb_server: Any, sshd_server: SSHServer, seaweedfs_server: S3Server, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    primary = sshd_server.url(str(sshd_server.root / secrets.token_hex(6)))
    setup = Setup(mariadb_server, tmp_path, primary)
    bucket = new_bucket(seaweedfs_server)
    credentials = seaweedfs_server.credentials_file(tmp_path)
    replica = s3_url(seaweedfs_server, bucket, "passbolt-one", credentials)
    unknown_host = tmp_path / "empty_known_hosts"
    unknown_host.write_text("")
    broken = sshd_server.url(str(sshd_server.root / "broken")).replace(str(sshd_server.known_hosts), str(unknown_host))
    setup.add_targets(TargetConfig(name="broken", url=broken), TargetConfig(name="bucket", url=replica))

    first = setup.json(capsys, "backup")
    outcomes = {target["name"]: target for target in first["targets"]}
    assert not outcomes["broken"]["ok"] and "known_hosts" in outcomes["broken"]["error"]
    assert outcomes["bucket"]["ok"] and outcomes["bucket"]["copied"] > 0
    assert any("target broken" in warning for warning in first["warnings"])
    second = setup.json(capsys, "backup")
    bucket_outcome = next(t for t in second["targets"] if t["name"] == "bucket")
    assert bucket_outcome["present"] >= outcomes["bucket"]["copied"]  # only what was new is copied again

    setup.restore_and_compare(tmp_path / "from-sftp")
    replica_setup = setup.with_url(replica, "replica.toml")
    snapshots = replica_setup.json(capsys, "snapshots")["snapshots"]
    assert [s["name"] for s in snapshots] == [first["snapshot"], second["snapshot"]]
    replica_setup.restore_and_compare(tmp_path / "from-s3")
    assert replica_setup.run("verify", "--quiet") == 0
    secret = seaweedfs_server.secret_access_key
    assert secret not in caplog.text and secret not in capsys.readouterr().out


@pytest.mark.slow
def test_backup_to_a_bucket_that_refuses_deletes(
    mariadb_server: Any, seaweedfs_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = new_bucket(seaweedfs_server, deny_delete=True)
    credentials = seaweedfs_server.credentials_file(tmp_path, writer=True)
    setup = Setup(mariadb_server, tmp_path, s3_url(seaweedfs_server, bucket, "append-only", credentials))
    # Each backup in its own process, as from a timer: the previous run's lock object stays
    # (it cannot be deleted) and is recognised as stale because its process is gone.
    for _ in range(2):
        completed = subprocess.run([sys.executable, "-m", "strongroom", "--config", str(setup.config), "backup", "--quiet"],
                                   capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert seaweedfs_server.writer_secret_access_key not in completed.stderr
    assert len(setup.json(capsys, "snapshots")["snapshots"]) == 2
    setup.restore_and_compare(tmp_path / "restored")
    # Nothing was deleted: the lock objects of both runs are still there.
    listing = seaweedfs_server.client().list_objects_v2(Bucket=bucket, Prefix="append-only/locks/")
    assert len(listing.get("Contents", [])) >= 2
