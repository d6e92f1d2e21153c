"""``strongroom show SNAPSHOT``: show one snapshot's manifest and components."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from strongroom.actions import snapshots as snapshots_action
from strongroom.actions.repository_access import open_repository
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.errors import ExitCode

NAME = "show"
HELP = "show one snapshot's manifest"
DESCRIPTION = """\
Show a snapshot's manifest (what the backup recorded: versions, row counts, key
fingerprints, file modes and owners) and its components. SNAPSHOT is an id prefix
or 'latest'. Needs the writer key (on the backup host) or --identity."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``show``."""
    parser.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id (a unique prefix) or 'latest'")
    parser.add_argument("--identity", metavar="FILE", type=Path, default=None,
                        help="an identity file, when this machine has no writer key")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Show the snapshot; return 0."""
    repository = open_repository(context.require_repository(), identity_file=args.identity)
    shown = snapshots_action.show_snapshot(repository, args.snapshot)
    if context.json_output:
        context.emit_json(shown)
        return int(ExitCode.OK)
    console = context.console
    console.print(f"snapshot {shown['name']}")
    console.print(f"  sequence {shown['sequence']}, {shown['time']}, host {shown['host']}")
    console.print(f"  predecessor {shown['predecessor'] or '(none)'}")
    console.print(f"  writer {shown['writer']}")
    table = Table(title="components")
    for column in ("name", "kind", "size", "chunks", "new", "mode", "owner"):
        table.add_column(column)
    for component in shown["components"]:
        mode = component.get("mode")
        table.add_row(
            component["name"], component["kind"], human_bytes(int(component["size"])), str(component["chunks"]),
            human_bytes(int(component.get("new_bytes", 0))),
            f"{mode:04o}" if mode is not None else "",
            f"{component.get('uid')}:{component.get('gid')}" if "uid" in component else "",
        )
    console.print(table)
    for component in shown["components"]:
        if component.get("row_counts"):
            console.print(f"rows in {component['name']}: " + ", ".join(f"{t} {n}" for t, n in component["row_counts"].items()))
    if shown["manifest"]:
        console.print("manifest:")
        console.print(json.dumps(shown["manifest"], indent=2, sort_keys=True), markup=False, highlight=False)
    return int(ExitCode.OK)
