"""require_binary: a missing program skips a test, except under CI=true where it fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import require_binary


def test_found_program_returns_its_path(tmp_path: Path) -> None:
    program = tmp_path / "fake-server"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    assert require_binary("fake-server", search_path=str(tmp_path)) == str(program)


def test_missing_program_skips_outside_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="postgres is not installed .install postgresql."):
        require_binary("postgres", search_path=str(tmp_path))


def test_missing_program_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true forbids skipping"):
        require_binary("mariadbd", search_path=str(tmp_path))
