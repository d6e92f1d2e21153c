"""``strongroom discover``: show the backup set of this host's passbolt instance and every problem in it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table
from rich.text import Text

from strongroom.actions import discover as discover_action
from strongroom.cli.context import Context
from strongroom.config.schema import InstanceConfig
from strongroom.errors import ExitCode
from strongroom.source.findings import Severity

NAME = "discover"
HELP = "find the passbolt instance and show its backup set and every problem found in it"
DESCRIPTION = """\
Find the passbolt instance on this host (Debian/Ubuntu or RPM package, Docker,
source install, or passbolt v1), show what a backup of it holds (database, server
keys, configuration, JWT keys, subscription key, avatars, version) and check it.
Errors stop a backup; warnings are reported and recorded. The database password is
never shown. Exit status 11 when an error is found."""

_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.OK: "green"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``discover``."""
    parser.add_argument("--root", metavar="DIR", type=Path, default=None,
                        help="treat DIR as the filesystem root (a sandbox, a mounted disk); default: instance.root")
    parser.add_argument("--layout", choices=("auto", "debian", "rpm", "docker", "source", "v1"), default=None,
                        help="installation layout (default: instance.layout, else detect it)")
    parser.add_argument("--no-database", action="store_true",
                        help="do not connect to the database (skip the database checks)")
    parser.add_argument("--all", action="store_true", dest="show_all",
                        help="list passed checks too (default: only errors and warnings)")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Run discovery and the checks, render them; return 0, or 11 when an error was found."""
    config = context.optional_config()
    instance_config = config.instance if config is not None else InstanceConfig()
    if args.layout is not None:
        instance_config = instance_config.model_copy(update={"layout": args.layout})
    result = discover_action.run(
        instance_config,
        environment=dict(os.environ),
        root=args.root,
        connect_database=not args.no_database,
    )
    if context.json_output:
        context.emit_json(result.to_dict())
    else:
        _render(context, result, show_all=args.show_all)
    return int(ExitCode.CHECK_FAILED) if result.failed else int(ExitCode.OK)


def _render(context: Context, result: discover_action.DiscoverResult, *, show_all: bool) -> None:
    instance = result.instance
    backup = instance.backup_set
    console = context.console
    summary = Table(title="passbolt instance", show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("layout", instance.layout)
    summary.add_row("root", str(instance.root))
    summary.add_row("version", f"{backup.version or 'unknown'}{' ' + backup.edition if backup.edition else ''}")
    summary.add_row("config dir", str(instance.paths.config_dir))
    summary.add_row("web user", instance.web_user or "unknown")
    summary.add_row("fingerprint", backup.fingerprint or "not configured")
    database = backup.database
    if database is not None:
        where = database.socket or f"{database.host}:{database.effective_port}"
        password = "password set" if database.password else "no password"
        summary.add_row("database", f"{database.engine} {database.user}@{where}/{database.database} ({password})")
        if backup.database_container:
            summary.add_row("database container", backup.database_container)
        summary.add_row("database from", backup.database_origin or "")
    else:
        summary.add_row("database", Text("not found", style="red"))
    if instance.docker is not None:
        summary.add_row("docker", f"project {instance.docker.project or '?'}, container {instance.docker.passbolt_container or 'not running'}")
    for note in backup.notes:
        summary.add_row("note", note)
    console.print(summary)

    files = Table(title="backup set")
    for column in ("role", "path", "on this host", "mode", "state"):
        files.add_column(column)
    for item in backup.files:
        state = item.state()
        if state.exists:
            shown_state = Text("present", style="green")
        elif item.location is None:
            shown_state = Text("in container only", style="yellow")
        else:
            shown_state = Text("missing" if item.required else "absent", style="red" if item.required else "yellow")
        files.add_row(
            item.role,
            str(item.path),
            str(item.location) if item.location is not None else "",
            f"{state.mode:04o}" if state.mode is not None else "",
            shown_state,
        )
    console.print(files)

    shown = [f for f in result.findings if show_all or f.severity is not Severity.OK]
    findings = Table(title="findings")
    findings.add_column("severity")
    findings.add_column("check")
    findings.add_column("message", overflow="fold")
    for finding in shown:
        findings.add_row(Text(finding.severity.value, style=_STYLE[finding.severity]), finding.check, finding.message)
    if shown:
        console.print(findings)
    counts = result.counts()
    verdict = Text("errors found: a backup would be refused" if result.failed else "no errors", style="red" if result.failed else "green")
    console.print(Text.assemble(verdict, f"  ({counts['error']} errors, {counts['warning']} warnings, {counts['ok']} passed)"))
