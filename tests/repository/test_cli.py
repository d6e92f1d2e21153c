"""The verbs end to end through the real CLI entry point: init, snapshots, show, restore, verify."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyrage
import pytest

from strongroom.cli.main import main
from strongroom.config import load_config
from strongroom.errors import ExitCode
from strongroom.repository.keys import WriterKey
from strongroom.repository.repository import Repository
from strongroom.storage.layers import open_backend
from strongroom.storage.backend import ObjectType


def test_verbs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    identity = pyrage.x25519.Identity.generate()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"{identity}\n")
    config_path = tmp_path / "etc" / "strongroom.toml"
    base = ["--config", str(config_path)]
    assert main([*base, "init", "--repository", str(tmp_path / "repo"), "--recipient", str(identity.to_public()), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert (tmp_path / "etc" / "writer.key").stat().st_mode & 0o077 == 0
    config = load_config(config_path).repository
    assert config is not None and config.writer_fingerprint == created["writer_fingerprint"]
    # A second init refuses to touch the existing configuration.
    assert main([*base, "init", "--repository", str(tmp_path / "other"), "--recipient", str(identity.to_public())]) == ExitCode.CONFIG

    repository = Repository.open(open_backend(config.url), config, writer_key=WriterKey.load(config.writer_key))
    with repository.begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\n"))
        writer.add_file("etc/passbolt/passbolt.php", b"<?php return [];", mode=0o640, uid=0, gid=33)
        info = writer.commit({"passbolt_version": "5.12.0"})
    capsys.readouterr()

    assert main([*base, "snapshots", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in listed["snapshots"]] == [info.name]
    assert main([*base, "show", info.short_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"] == {"passbolt_version": "5.12.0"}
    assert shown["components"][0]["row_counts"] == {"t": 2}

    assert main([*base, "restore", "latest", "--to", str(tmp_path / "nokey")]) == ExitCode.IDENTITY
    assert "restore needs a recipient identity" in capsys.readouterr().err
    assert main([*base, "restore", "latest", "--identity", str(identity_file), "--to", str(tmp_path / "out"), "--merge-inserts"]) == 0
    assert (tmp_path / "out" / "database.sql").read_bytes() == b"INSERT INTO `t` VALUES (1),(2);\n"
    restored = tmp_path / "out" / "etc" / "passbolt" / "passbolt.php"
    assert restored.read_bytes() == b"<?php return [];" and restored.stat().st_mode & 0o777 == 0o640

    assert main([*base, "verify"]) == 0
    assert main([*base, "verify", "--read-data", "--identity", str(identity_file), "--json"]) == 0
    capsys.readouterr()
    pack = next(open_backend(config.url).list(ObjectType.DATA)).handle
    path = Path(config.url) / "data" / pack.name[:2] / pack.name
    path.write_bytes(path.read_bytes()[:-1])
    assert main([*base, "verify", "--json"]) == ExitCode.CHECK_FAILED
    report = json.loads(capsys.readouterr().out)
    assert report["damage"][0]["snapshots"][0].startswith(info.short_id)
