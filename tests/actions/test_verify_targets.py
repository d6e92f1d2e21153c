"""verify covers every storage target: the primary and each copy; one bad target never hides the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_backup import Setup, make_sandbox

from strongroom.config.loading import load_config, write_config
from strongroom.config.schema import TargetConfig
from strongroom.errors import ExitCode


def add_target(setup: Setup, name: str, url: str) -> None:
    config = load_config(setup.config)
    assert config.repository is not None
    targets = (*config.repository.targets, TargetConfig(name=name, url=url))
    write_config(config.model_copy(update={"repository": config.repository.model_copy(update={"targets": targets})}), setup.config)


def verify(setup: Setup, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = setup.run("verify", "--json", *extra)
    return code, json.loads(capsys.readouterr().out)


def test_verify_checks_each_target_and_names_the_damaged_one(
    mariadb_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    copy = tmp_path / "offsite"
    add_target(setup, "offsite", str(copy))
    assert setup.run("backup", "--quiet") == 0
    code, result = verify(setup, capsys)
    assert code == 0 and [t["target"] for t in result["targets"]] == ["primary", "offsite"]
    assert all(t["ok"] and t["snapshots"] == 1 for t in result["targets"])

    pack = max((p for p in (copy / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[100] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    code, result = verify(setup, capsys)
    assert code == ExitCode.CHECK_FAILED
    by_name = {t["target"]: t for t in result["targets"]}
    assert by_name["primary"]["ok"] is True
    assert by_name["offsite"]["ok"] is False and by_name["offsite"]["damage"]
    code, result = verify(setup, capsys, "--target", "primary")
    assert code == 0 and [t["target"] for t in result["targets"]] == ["primary"]


def test_an_unreachable_target_is_reported_and_the_others_still_checked(
    mariadb_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    assert setup.run("backup", "--quiet") == 0
    # A target that was never written: no repository there.
    add_target(setup, "never-written", str(tmp_path / "empty-target"))
    (tmp_path / "empty-target").mkdir()
    code, result = verify(setup, capsys)
    by_name = {t["target"]: t for t in result["targets"]}
    assert by_name["primary"]["ok"] is True
    assert by_name["never-written"]["ok"] is False
    assert code != 0


def test_prune_a_target_copy(mariadb_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    add_target(setup, "offsite", str(tmp_path / "offsite"))
    for _ in range(3):
        assert setup.run("backup", "--quiet") == 0
    config = load_config(setup.config)
    write_config(config.model_copy(update={"retention": config.retention.model_copy(update={"keep_last": 1})}), setup.config)
    assert setup.run("prune", "--target", "offsite", "--quiet") == 0
    code, result = verify(setup, capsys)
    by_name = {t["target"]: t for t in result["targets"]}
    assert code == 0
    assert by_name["offsite"]["snapshots"] == 1 and by_name["primary"]["snapshots"] == 3
