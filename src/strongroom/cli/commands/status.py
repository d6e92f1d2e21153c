"""``strongroom status``: last backup and last successful drill per target; non-zero when stale."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from strongroom.actions import status as status_action
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.errors import ExitCode

NAME = "status"
HELP = "last backup and last successful drill per target, their age, size and problems"
DESCRIPTION = """\
For the primary location and every [[repository.targets]] copy: the last backup
(age, size, warnings it recorded), the last drill and the last successful one
(only drill records signed by a key pinned in [drill] trusted_keys count), chain
problems, and how much stored data only a repack could reclaim. Exit 12 when a
target's last backup is older than [status] max_backup_age (default 26h) or its
last successful drill older than max_drill_age (default 8d), or either is missing;
exit 7 when a target cannot be read. Runs with the writer key (the backup host) or
an identity."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``status``."""
    parser.add_argument("--identity", metavar="FILE", type=Path, default=None,
                        help="read with an identity instead of the writer key")
    parser.add_argument("--no-space", action="store_true", help="skip the reclaimable-space estimate (faster)")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def execute(args: argparse.Namespace, context: Context) -> int:
    """Render every target's status; return 0, 12 when stale, 7 when a target is unreadable."""
    result = status_action.run(context.config, identity_file=args.identity, space=not args.no_space)
    if context.json_output:
        context.emit_json(result.to_dict())
    elif not context.quiet:
        table = Table(title="strongroom status", box=None, pad_edge=False)
        for column in ("target", "last backup", "size", "last passed drill", "snapshots", "state"):
            table.add_column(column)
        for target in result.targets:
            size = target.last_backup.get("size") if target.last_backup else None
            state = "[red]stale[/red]" if target.stale else ("[yellow]problems[/yellow]" if target.problems else "[green]ok[/green]")
            table.add_row(
                f"{target.name} ({escape(target.location)})", _age(target.backup_age_seconds),
                human_bytes(size) if size is not None else "-", _age(target.drill_age_seconds), str(target.snapshots), state,
            )
        context.console.print(table)
        for target in result.targets:
            for problem in target.problems:
                context.error_console.print(f"[red]{escape(target.name)}:[/red] {escape(problem)}")
            for warning in target.warnings:
                context.error_console.print(f"[yellow]{escape(target.name)}:[/yellow] {escape(warning)}")
            if target.repack_bytes:
                context.say(f"{target.name}: {human_bytes(target.repack_bytes)} reclaimable only by 'prune --repack'")
    if result.unreachable:
        return int(ExitCode.STORAGE)
    return int(ExitCode.STALE) if result.stale else int(ExitCode.OK)
