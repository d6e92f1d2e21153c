"""``strongroom drill``: restore a snapshot into a throwaway database server and prove it is whole."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from strongroom.actions import drill as drill_action
from strongroom.cli.context import Context
from strongroom.errors import ExitCode

NAME = "drill"
HELP = "restore a snapshot into a throwaway database server and prove it is complete and coherent"
DESCRIPTION = """\
Practise the restore, unattended, on a trusted machine holding an identity (never
on production): start a throwaway database server from the local binaries, load
the snapshot's dump through a guard that refuses anything a dump never contains,
and check that every table is there, the row counts equal those counted at backup
time, rows reference existing rows, every user's key is whole, the server key
decrypts what the database encrypted to it, the JWT pair matches and the
configuration parses. Reports the time to restore (RTO) and the snapshot's age
(RPO), records the signed result in the repository, and removes every decrypted
byte afterwards, also when interrupted. Exit 11 names the failed checks."""

_STYLE = {"pass": "green", "fail": "red", "warning": "yellow", "unproven": "cyan"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``drill``."""
    parser.add_argument("snapshot", nargs="?", default="latest", help="snapshot id or prefix (default: latest)")
    parser.add_argument("--identity", metavar="FILE", type=Path, required=True,
                        help="an age identity, an SSH private key, or the passphrase identity made by init")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, default=None,
                        help="the passphrase of a passphrase identity (a file or /dev/fd/N)")
    parser.add_argument("--report", metavar="FILE", type=Path, default=None,
                        help="also write the report to FILE: JSON for .json, Markdown otherwise")
    parser.add_argument("--no-record", action="store_true", help="do not store the signed drill record in the repository")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Run the drill, render the report; return 0 when it passed, 11 when a check failed."""
    options = drill_action.DrillOptions(
        reference=args.snapshot,
        identity_file=args.identity,
        passphrase_file=args.passphrase_file,
        config_path=context.effective_config_path,
        record=not args.no_record,
    )
    result = drill_action.run(context.config, options, context.reporter())
    if args.report is not None:
        drill_action.write_report(result, args.report)
    if context.json_output:
        context.emit_json(result.to_dict())
    elif not context.quiet:
        table = Table(title=f"drill of snapshot {result.snapshot[:8]} (sequence {result.sequence})", box=None, pad_edge=False)
        table.add_column("check")
        table.add_column("result")
        table.add_column("reason", overflow="fold")
        for check in result.checks:
            style = _STYLE.get(check.status.value, "")
            table.add_row(check.name, f"[{style}]{check.status.value}[/{style}]", escape(check.reason))
        context.console.print(table)
        context.say(f"time to restore (RTO): {result.restore_seconds:.1f} s; snapshot age (RPO): {result.snapshot_age_seconds / 3600:.1f} h")
        for note in result.notes:
            context.say(f"note: {escape(note)}")
        if result.record:
            context.say(f"signed drill record stored as drills/{result.record[:12]}")
    if result.passed:
        if not context.quiet and not context.json_output:
            context.say("[green]drill passed[/green]")
        return int(ExitCode.OK)
    context.error_console.print(f"[red]drill failed:[/red] {', '.join(result.failed_checks)}")
    return int(ExitCode.CHECK_FAILED)
