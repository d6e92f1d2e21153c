"""``strongroom backup``: take a snapshot of the passbolt instance now."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from strongroom.actions import backup as backup_action
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.errors import ExitCode

NAME = "backup"
HELP = "take a snapshot now: database dump, server keys, config, JWT keys, subscription key"
DESCRIPTION = """\
Take one complete, consistent, encrypted snapshot of the passbolt instance: check
the backup set (errors stop the backup; warnings are recorded), stream the database
dump straight into the repository (never as a plaintext file), store the server
keys, configuration, JWT keys, subscription key and, before passbolt 3.2, avatar
files, then commit a signed snapshot. Needs the host's writer key; never needs an
identity. A changed server key is reported loudly; the exit status stays 0."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``backup``."""
    parser.add_argument("--root", metavar="DIR", type=Path, default=None,
                        help="treat DIR as the filesystem root of the instance (default: instance.root)")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Run the backup and print its summary; return 0."""
    reporter = context.reporter()
    result = backup_action.run(context.config, backup_action.BackupOptions(root=args.root), reporter)
    if context.json_output:
        context.emit_json(result.to_dict())
        return int(ExitCode.OK)
    info = result.snapshot
    table = Table(title=f"snapshot {info.short_id} (sequence {info.sequence})", box=None, pad_edge=False)
    table.add_column("component")
    table.add_column("size", justify="right")
    table.add_column("new", justify="right")
    for component in info.components:
        table.add_row(component.name, human_bytes(component.size), human_bytes(component.new_bytes))
    if not context.quiet:
        context.console.print(table)
        changes = result.manifest.get("changes", {})
        total = sum(c.size for c in info.components)
        if changes.get("first_snapshot"):
            what = "the first snapshot of this repository"
        else:
            changed = len(changes.get("added", [])) + len(changes.get("changed", [])) + len(changes.get("removed", []))
            what = f"{changed} file(s) changed since the previous snapshot"
        context.say(f"stored {human_bytes(info.stored_bytes)} new of {human_bytes(total)} in {result.seconds:.1f} s; {what}")
    for warning in result.warnings:
        context.error_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    return int(ExitCode.OK)
