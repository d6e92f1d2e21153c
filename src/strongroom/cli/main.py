"""The ``strongroom`` program: global options, verbs, errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text

from strongroom import __version__
from strongroom.cli.commands import COMMANDS
from strongroom.cli.context import Context
from strongroom.errors import ExitCode, StrongroomError, exit_code_table
from strongroom.execute import mask

DESCRIPTION = """\
strongroom backs up a self-hosted passbolt server: its database, server keys,
configuration, JWT keys and subscription key, into an encrypted, deduplicated
repository, and proves the backups restore."""

EPILOG = "exit codes:\n" + exit_code_table() + "\n\nSee README.md for the configuration file and every verb."


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Global options, accepted before or after the verb.

    On the verbs' parsers the defaults are suppressed, so an option given before
    the verb is not overwritten by the verb parser's default.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=default(None),
        help="configuration file (default: $STRONGROOM_CONFIG, else /etc/strongroom/strongroom.toml)",
    )
    group.add_argument("--json", action="store_true", default=default(False), help="print results as JSON")
    group.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="more detail in the log (twice: debug)"
    )
    group.add_argument("--quiet", action="store_true", default=default(False), help="print only errors")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: global options and one sub-parser per working verb."""
    parser = argparse.ArgumentParser(
        prog="strongroom", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"strongroom {__version__}")
    _add_global_options(parser, suppress=False)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")
    verbs.required = True
    for command in COMMANDS:
        sub = verbs.add_parser(
            command.NAME,
            help=command.HELP,
            description=getattr(command, "DESCRIPTION", command.HELP),
            epilog=EPILOG,
            formatter_class=_Formatter,
        )
        command.add_arguments(sub)
        _add_global_options(sub, suppress=True)
        sub.set_defaults(command=command)
    return parser


def _configure_logging(verbosity: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]

    class _MaskingFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg = mask(record.getMessage())
            record.args = ()
            return True

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the program; return (and, as a console script, exit with) its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    context = Context(
        config_path=args.config,
        json_output=args.json,
        verbosity=args.verbose,
        quiet=args.quiet,
    )
    _configure_logging(args.verbose, args.quiet)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = args.command.execute(args, context)
    except StrongroomError as error:
        if context.json_output:
            context.emit_json({"error": mask(error.message), "hint": error.hint, "exit_code": int(error.exit_code)})
        context.error_console.print(Text.assemble(("error: ", "red"), mask(str(error))))
        return int(error.exit_code)
    except KeyboardInterrupt:
        context.error_console.print(Text("interrupted", style="red"))
        return int(ExitCode.INTERRUPTED)
    except Exception as error:  # a bug: say so plainly, never leak a secret through the message
        logging.getLogger("strongroom").debug("internal error", exc_info=True)
        message = mask(f"{type(error).__name__}: {error}")
        context.error_console.print(
            Text.assemble(("internal error: ", "red"), message, "\n  this is a bug in strongroom; run again with -vv for the traceback and report it")
        )
        return int(ExitCode.INTERNAL)
    return int(code)


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
