"""The CLI frame: global options before or after the verb, exit codes, help."""

from __future__ import annotations

import subprocess
import sys

from strongroom.cli.main import build_parser, main
from strongroom.errors import ExitCode


def test_help_lists_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "strongroom", "--help"], capture_output=True, text=True, check=True
    )
    assert "exit codes:" in result.stdout
    assert "another strongroom run holds the repository lock" in result.stdout


def test_unknown_verb_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "strongroom", "no-such-verb"], capture_output=True, text=True)
    assert result.returncode == ExitCode.USAGE


def test_global_options_before_or_after_the_verb() -> None:
    parser = build_parser()
    verbs = [action for action in parser._subparsers._group_actions][0].choices  # type: ignore[union-attr]
    if not verbs:
        return
    verb = sorted(verbs)[0]
    sub = verbs[verb]
    # Every verb parser accepts the global options too.
    flags = {flag for action in sub._actions for flag in action.option_strings}
    assert {"--config", "--json", "--verbose", "--quiet"} <= flags


def test_config_error_exit_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    parser = build_parser()
    verbs = [action for action in parser._subparsers._group_actions][0].choices  # type: ignore[union-attr]
    assert main is not None
    assert isinstance(verbs, dict)
