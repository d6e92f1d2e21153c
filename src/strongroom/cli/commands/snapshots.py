"""``strongroom snapshots``: list the snapshots signed by the pinned writer key."""

from __future__ import annotations

import argparse

from rich.table import Table
from rich.text import Text

from strongroom.actions import snapshots as snapshots_action
from strongroom.actions.repository_access import open_repository
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.errors import ExitCode

NAME = "snapshots"
HELP = "list the snapshots"
DESCRIPTION = """\
List the snapshots signed by the writer key pinned in the configuration, oldest
first. Objects not signed by that key are refused and reported, and so are gaps
in the chain (a snapshot deleted or rolled back). Exit status 11 when there is a
problem."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``snapshots`` has only the global options."""


def execute(args: argparse.Namespace, context: Context) -> int:
    """List; return 0, or 11 when a snapshot was refused or the chain has a gap."""
    repository = open_repository(context.require_repository())
    result = snapshots_action.list_snapshots(repository)
    if context.json_output:
        context.emit_json(result.to_dict())
    else:
        table = Table()
        for column in ("id", "seq", "time", "host", "components", "size"):
            table.add_column(column)
        for row in result.rows:
            table.add_row(
                row.name[:8], str(row.sequence), row.time, row.host or "",
                "" if row.components is None else str(row.components),
                "" if row.size is None else human_bytes(row.size),
            )
        context.console.print(table)
        for problem in result.problems:
            context.error_console.print(Text.assemble((f"{problem['kind']}: ", "red"), problem["message"]))
    return int(ExitCode.CHECK_FAILED) if result.problems else int(ExitCode.OK)
