"""``strongroom prune`` through the real CLI entry point: the [retention] section, --dry-run,
--json, the human plan, drill protection, and verify afterwards."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyrage
import pytest

from strongroom.cli.main import main
from strongroom.config import load_config
from strongroom.errors import ExitCode
from strongroom.repository.drills import DrillKey, save_record
from strongroom.repository.keys import WriterKey
from strongroom.repository.repository import Repository
from strongroom.storage.backend import ObjectType
from strongroom.storage.layers import open_backend


def _objects(url: str) -> set[str]:
    backend = open_backend(url)
    return {str(info.handle) for t in ObjectType if t is not ObjectType.LOCKS for info in backend.list(t)}


def test_prune_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    identity = pyrage.x25519.Identity.generate()
    config_path = tmp_path / "etc" / "strongroom.toml"
    base = ["--config", str(config_path)]
    assert main([*base, "init", "--repository", str(tmp_path / "repo"), "--recipient", str(identity.to_public())]) == 0
    config = load_config(config_path).repository
    assert config is not None
    repository = Repository.open(open_backend(config.url), config, writer_key=WriterKey.load(config.writer_key))
    names = []
    for day in range(4):
        with repository.begin_snapshot() as writer:
            rows = b"".join(b"INSERT INTO `t` VALUES (%d,%d);\n" % (day, row) for row in range(200))
            writer.add_record_stream("database.sql", io.BytesIO(rows))
            writer.add_file("etc/passbolt/passbolt.php", b"<?php return ['day' => %d];" % day)
            names.append(writer.commit().name)
    # A passed drill of the second snapshot, recorded by a trusted drill key.
    drill_key = DrillKey.generate()
    save_record(repository.backend, drill_key, repository.metadata_key, {"snapshot": names[1], "passed": True, "finished": "x"})
    text = config_path.read_text()
    for old, new in (
        ("trusted_keys = []", f'trusted_keys = ["{drill_key.fingerprint}"]'),
        ("keep_last = 0", "keep_last = 1"),
        ('prune_grace = "1h"', 'prune_grace = "0m"'),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    config_path.write_text(text)
    capsys.readouterr()

    before = _objects(config.url)
    assert main([*base, "--json", "prune", "--dry-run"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert _objects(config.url) == before, "--dry-run changes nothing"
    decisions = {row["name"]: row for row in planned["snapshots"]}
    assert [decisions[n]["keep"] for n in names] == [False, True, False, True]
    assert decisions[names[1]]["reasons"] == ["newest snapshot that passed a drill"]
    assert planned["dry_run"] and planned["policy"] == "last 1" and "result" not in planned

    assert main([*base, "prune"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # rich wraps lines at the console's width
    assert "retention: last 1" in shown and "remove" in shown and "removed 2 snapshots" in shown
    assert main([*base, "--json", "snapshots"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)["snapshots"]] == [names[1], names[3]]

    # The second prune deletes what the first marked (grace 0); verify passes, nothing left over.
    assert main([*base, "--json", "prune"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["result"]["deleted"]["lists"]["count"] == 0  # the kept lists' delta bases stay
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"{identity}\n")
    assert main([*base, "--json", "verify", "--read-data", "--identity", str(identity_file)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]


def test_prune_refuses_without_writer_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    identity = pyrage.x25519.Identity.generate()
    config_path = tmp_path / "strongroom.toml"
    base = ["--config", str(config_path)]
    assert main([*base, "init", "--repository", str(tmp_path / "repo"), "--recipient", str(identity.to_public())]) == 0
    config = load_config(config_path).repository
    assert config is not None
    config.writer_key.unlink()
    capsys.readouterr()
    assert main([*base, "prune", "--dry-run"]) == ExitCode.CONFIG
    assert "writer" in capsys.readouterr().err
