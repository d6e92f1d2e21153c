"""strongroom demo: the whole loop on a fresh machine, in one folder, nothing left running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongroom.actions import demo
from strongroom.cli.main import main
from strongroom.errors import UsageError


@pytest.mark.slow
def test_demo_backs_up_twice_restores_and_says_where_everything_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "demo"
    assert main(["demo", "--directory", str(directory), "--scale", "2MB", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    first, second = result["backups"]
    assert [row["sequence"] for row in result["snapshots"]["snapshots"]] == [1, 2]
    first_new = sum(c["new_bytes"] for c in first["components"])
    second_new = sum(c["new_bytes"] for c in second["components"])
    assert result["changed_rows"] > 0
    assert 0 < second_new < first_new / 20  # only the changed rows were stored again
    assert result["restored_files"] >= 7 and result["restored_dump_bytes"] > 1_000_000
    assert result["status"]["stale"] is False
    assert result["drill"]["passed"] is True and result["drill"]["snapshot"] == result["snapshots"]["snapshots"][-1]["name"]
    for path in result["paths"].values():
        assert Path(path).exists(), path
    assert (directory / "identity.txt").stat().st_mode & 0o777 == 0o600
    assert result["clean_up"] == f"rm -rf {directory}"
    # The configuration it wrote works for the ordinary verbs.
    assert main(["--config", result["paths"]["configuration"], "verify", "--quiet"]) == 0


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a strongroom demo folder"):
        demo.run(demo.DemoOptions(directory=tmp_path))
    assert (tmp_path / "precious.txt").read_text() == "keep me"
