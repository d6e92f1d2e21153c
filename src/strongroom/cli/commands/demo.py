"""``strongroom demo``: the whole loop on a sandbox passbolt, on a fresh machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from strongroom.actions import demo as demo_action
from strongroom.cli.context import Context
from strongroom.cli.render import NarratingReporter, human_bytes
from strongroom.errors import ExitCode
from strongroom.cli.render import parse_size

NAME = "demo"
HELP = "build a sandbox passbolt instance, back it up, drill and restore it, and show where everything is"
DESCRIPTION = """\
On a fresh machine, with no configuration: start a throwaway database server,
create a sandbox passbolt instance, initialise a repository in a local folder with
a newly generated recipient identity, back up, change a few rows, back up again
(only the changed rows are stored), list the snapshots, drill the latest in a
second throwaway server, and restore it into a folder.
Everything goes into one folder (default ./strongroom-demo); remove it to clean up.
The throwaway database server stops when the demo ends."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``demo``."""
    parser.add_argument("--directory", metavar="DIR", type=Path, default=Path("strongroom-demo"),
                        help="folder for everything the demo makes (default: ./strongroom-demo; a previous demo's is replaced)")
    parser.add_argument("--engine", choices=("mariadb", "postgresql"), default="mariadb", help="database engine (default: mariadb)")
    parser.add_argument("--layout", choices=("debian", "rpm", "docker", "source", "v1"), default="debian",
                        help="sandbox installation layout (default: debian)")
    parser.add_argument("--scale", metavar="SIZE", default="5MB", help="sandbox database size, e.g. 5MB, 200MB (default: 5MB)")
    parser.add_argument("--seed", type=int, default=1, help="sandbox seed (default: 1)")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Run the demo and show where everything is; return 0."""
    options = demo_action.DemoOptions(
        directory=args.directory, engine=args.engine, layout=args.layout, size=parse_size(args.scale), seed=args.seed
    )
    # The demo tells its story even without a terminal (a CI log, a pipe).
    reporter = context.reporter() if context.interactive or context.quiet or context.json_output else NarratingReporter(context.error_console)
    result = demo_action.run(options, reporter)
    if context.json_output:
        context.emit_json(result.to_dict())
        return int(ExitCode.OK)
    console = context.console
    if result.snapshots is not None:
        table = Table(title="snapshots", box=None, pad_edge=False)
        for column in ("id", "seq", "time", "size"):
            table.add_column(column)
        for row in result.snapshots.rows:
            table.add_row(row.name[:8], str(row.sequence), row.time, human_bytes(row.size or 0))
        console.print(table)
    for number, backup in enumerate(result.backups, start=1):
        new = sum(c["new_bytes"] for c in backup["components"])
        total = sum(c["size"] for c in backup["components"])
        context.say(f"backup {number}: {human_bytes(total)} backed up, {human_bytes(new)} of it new")
    if result.drill is not None:
        drill = result.drill
        verdict = "[green]passed[/green]" if drill.passed else "[red]FAILED[/red]: " + ", ".join(drill.failed_checks)
        context.say(f"drill {verdict}: {len(drill.checks)} checks, time to restore {drill.restore_seconds:.1f} s")
    if result.status is not None:
        target = result.status.targets[0]
        state = "[red]stale[/red]" if result.status.stale else "[green]ok[/green]"
        context.say(f"status {state}: {target.snapshots} snapshots, last backup and last passed drill just now")
    context.say(f"restored {result.restored_files} files and the database dump ({human_bytes(result.restored_dump_bytes)})")
    where = Table(title="where everything is", show_header=False, box=None, pad_edge=False)
    where.add_column(style="bold")
    where.add_column()
    for name, path in result.paths.items():
        where.add_row(name, path)
    console.print(where)
    context.say("try:  .venv/bin/strongroom --config " + result.paths["configuration"] + " snapshots")
    context.say(f"clean up:  rm -rf {result.directory}")
    if result.drill is not None and not result.drill.passed:
        return int(ExitCode.CHECK_FAILED)
    return int(ExitCode.OK)
