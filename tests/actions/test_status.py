"""strongroom status: last backup and last passed drill per target; stale exits 12; bad drill records ignored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_backup import Setup, make_sandbox
from test_verify_targets import add_target

from strongroom.config.loading import load_config, write_config
from strongroom.errors import ExitCode


def status(setup: Setup, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = setup.run("status", "--json", *extra)
    return code, json.loads(capsys.readouterr().out)


def test_status_follows_backups_and_drills(mariadb_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    code, result = status(setup, capsys)
    assert code == ExitCode.STALE
    assert "no backup yet" in result["targets"][0]["problems"]

    assert setup.run("backup", "--quiet") == 0
    code, result = status(setup, capsys)
    (primary,) = result["targets"]
    assert code == ExitCode.STALE and primary["backup_age_seconds"] < 600
    assert any("no successful drill" in p for p in primary["problems"])

    assert setup.run("drill", "--identity", str(setup.identity), "--quiet") == 0
    code, result = status(setup, capsys)
    (primary,) = result["targets"]
    assert code == 0, primary["problems"]
    assert primary["last_passed_drill"]["snapshot"] == primary["last_backup"]["snapshot"]
    assert primary["repack_bytes"] == 0 and primary["referenced_bytes"] > 0

    # A machine that does not trust the drill key ignores its records, and says so.
    config = load_config(setup.config)
    write_config(config.model_copy(update={"drill": config.drill.model_copy(update={"trusted_keys": ()})}), setup.config)
    code, result = status(setup, capsys)
    (primary,) = result["targets"]
    assert code == ExitCode.STALE and primary["last_passed_drill"] is None
    assert any("ignored" in w for w in primary["warnings"])


def test_status_covers_each_target(mariadb_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = Setup(make_sandbox(mariadb_server, tmp_path, "debian"), tmp_path)
    add_target(setup, "offsite", str(tmp_path / "offsite"))
    assert setup.run("backup", "--quiet") == 0
    config = load_config(setup.config)
    write_config(config.model_copy(update={"status": config.status.model_copy(update={"max_drill_age": "1000d"})}), setup.config)
    code, result = status(setup, capsys, "--no-space")
    assert [t["name"] for t in result["targets"]] == ["primary", "offsite"]
    assert all(t["snapshots"] == 1 for t in result["targets"])
    shutil.rmtree(tmp_path / "offsite")
    code, result = status(setup, capsys, "--no-space")
    assert code == ExitCode.STORAGE
    offsite = result["targets"][1]
    assert offsite["reachable"] is False and any("cannot be read" in p for p in offsite["problems"])
    assert result["targets"][0]["reachable"] is True and result["targets"][0]["snapshots"] == 1
