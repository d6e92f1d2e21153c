"""The CLI frame: global options before or after the verb, exit codes, help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from strongroom.cli.commands import COMMANDS
from strongroom.cli.main import build_parser, main
from strongroom.errors import ExitCode


def test_help_lists_every_working_verb_and_the_exit_codes() -> None:
    result = subprocess.run([sys.executable, "-m", "strongroom", "--help"], capture_output=True, text=True, check=True)
    assert "exit codes:" in result.stdout
    assert "another strongroom run holds the repository lock" in result.stdout
    for command in COMMANDS:
        assert command.NAME in result.stdout
    # Verbs that do not work yet are not offered.
    for missing in ("schedule", "escrow"):
        assert f"    {missing} " not in result.stdout


def test_unknown_verb_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "strongroom", "no-such-verb"], capture_output=True, text=True)
    assert result.returncode == ExitCode.USAGE


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.NAME)
def test_every_verb_has_help_and_accepts_the_global_options(command: object) -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command.NAME]  # type: ignore[union-attr, attr-defined]
    flags = {flag for action in sub._actions for flag in action.option_strings}
    assert {"--config", "--json", "--verbose", "--quiet"} <= flags
    assert sub.format_help().strip()


def test_global_options_before_and_after_the_verb_mean_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.toml"
    before = main(["--config", str(missing), "--json", "snapshots"])
    first = capsys.readouterr()
    after = main(["snapshots", "--config", str(missing), "--json"])
    second = capsys.readouterr()
    assert before == after == ExitCode.CONFIG
    assert str(missing) in first.out and first.out == second.out


def test_config_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "from-env.toml"
    monkeypatch.setenv("STRONGROOM_CONFIG", str(missing))
    assert main(["snapshots"]) == ExitCode.CONFIG
    assert str(missing) in capsys.readouterr().err


def test_an_unexpected_error_is_an_internal_error_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from strongroom import execute
    from strongroom.cli.commands import snapshots

    execute.register_secret("very-secret-value-1")

    def broken(args: object, context: object) -> int:
        raise RuntimeError("boom with very-secret-value-1 inside")

    monkeypatch.setattr(snapshots, "execute", broken)
    assert main(["snapshots"]) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "internal error" in err and "bug" in err
    assert "very-secret-value-1" not in err
