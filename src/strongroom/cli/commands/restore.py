"""``strongroom restore SNAPSHOT --identity FILE (--to DIR | --root DIR)``: extract a snapshot, or put it back onto a server."""

from __future__ import annotations

import argparse
from pathlib import Path

from strongroom.actions import restore as restore_action
from strongroom.actions import server_restore
from strongroom.actions.repository_access import open_repository
from strongroom.actions.restore_plan import PARTS
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import ExitCode, UsageError
from strongroom.source.layouts import LAYOUT_NAMES

NAME = "restore"
HELP = "extract a snapshot into a folder, or restore it onto a server"
DESCRIPTION = """\
With --to DIR: extract every component of SNAPSHOT (an id prefix or 'latest') into
DIR (new or empty): files with their recorded modes, the database dump as a plain
.sql file, byte-identical to what the dumper produced. --merge-inserts writes
MariaDB dumps with multi-row INSERTs instead (same data, loads several times faster).

With --root DIR (no default: name --root / for this machine): restore onto a
passbolt server. The database (from the restored configuration, or --database URL)
must be empty unless --replace-database; --create-database creates it and its user
with --admin-database. Configuration, server keys, JWT keys, subscription key and
(before passbolt 3.2) avatars go to the target layout's paths (--layout, default
the snapshot's) with passbolt's owners and modes; the server key is imported into
the web user's keyring. A snapshot of a newer passbolt than the target's
version.php is refused. --dry-run prints the plan and changes nothing. passbolt's
post-restore steps run with --run-passbolt-steps (when bin/cake is there), else
they are printed. Then the drill's checks run on the restored database and files.

Needs a recipient identity: the backup host's writer key cannot decrypt data."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``restore``."""
    parser.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id (a unique prefix) or 'latest'")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="DIR", type=Path, default=None, dest="target", help="folder to extract into")
    where.add_argument("--root", metavar="DIR", type=Path, default=None,
                       help="restore onto the passbolt server whose filesystem root is DIR ('/' for this machine)")
    parser.add_argument("--identity", metavar="FILE", type=Path, default=None,
                        help="age identity, SSH private key, or passphrase identity file")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, default=None,
                        help="passphrase for a passphrase identity (default: ask on the terminal)")
    parser.add_argument("--merge-inserts", action="store_true", help="--to: write MariaDB dumps with multi-row INSERTs")
    parser.add_argument("--owners", action="store_true", help="--to: also set the recorded file owners (needs root)")
    server = parser.add_argument_group("restore onto a server (--root)")
    server.add_argument("--layout", choices=LAYOUT_NAMES, default=None, help="the target's layout (default: the snapshot's)")
    server.add_argument("--database", metavar="URL", default=None,
                        help="target database, e.g. mariadb://passbolt@127.0.0.1:3306/passbolt (default: the restored configuration's)")
    server.add_argument("--database-password-file", metavar="FILE", type=Path, default=None,
                        help="file holding the target database password (instead of a password in the URL)")
    server.add_argument("--create-database", action="store_true", help="create the database and its user first")
    server.add_argument("--admin-database", metavar="URL", default=None,
                        help="an account that may create databases and users (for --create-database)")
    server.add_argument("--admin-password-file", metavar="FILE", type=Path, default=None,
                        help="file holding the admin account's password")
    server.add_argument("--replace-database", action="store_true",
                        help="drop the tables of a non-empty target database before loading (same run)")
    server.add_argument("--only", action="append", choices=PARTS, default=None,
                        help="restore only this part (repeatable): database, keys, config, files (files: every file)")
    server.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    server.add_argument("--run-passbolt-steps", action="store_true",
                        help="run passbolt's migrate, cache clear and healthcheck as the web user afterwards")
    server.add_argument("--web-user", metavar="NAME", default=None, help="the web server's account (default: the layout's)")
    server.add_argument("--docker-project", metavar="NAME", default=None,
                        help="Docker: the compose project naming the key volumes (default: the compose directory's name)")


def _database(url: str | None, password_file: Path | None, what: str) -> DatabaseTarget | None:
    if url is None:
        if password_file is not None:
            raise UsageError(f"--{what}-password-file needs --{what} URL" if what != "database" else
                             "--database-password-file needs --database URL")
        return None
    target = DatabaseTarget.from_url(url)
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\n")
        except OSError as error:
            raise UsageError(f"cannot read {password_file}: {error.strerror}") from None
        target = target.with_account(target.user or "", password)
    return target


def execute(args: argparse.Namespace, context: Context) -> int:
    """Restore; return the exit status (CHECK_FAILED when a check after a server restore failed)."""
    repository = open_repository(
        context.require_repository(), identity_file=args.identity, passphrase_file=args.passphrase_file
    )
    if args.target is not None:
        return _extract(args, context, repository)
    if args.admin_database is not None and not args.create_database:
        raise UsageError("--admin-database is only used with --create-database")
    options = server_restore.ServerRestoreOptions(
        root=args.root,
        layout=args.layout,
        database=_database(args.database, args.database_password_file, "database"),
        admin=_database(args.admin_database, args.admin_password_file, "admin"),
        create_database=args.create_database,
        replace_database=args.replace_database,
        only=tuple(dict.fromkeys(args.only or ())),
        dry_run=args.dry_run,
        run_passbolt_steps=args.run_passbolt_steps,
        web_user=args.web_user,
        docker_project=args.docker_project,
    )
    result = server_restore.run(repository, args.snapshot, options, reporter=context.reporter())
    failed = result.failed_checks
    if context.json_output:
        context.emit_json(result.to_dict())
        return int(ExitCode.CHECK_FAILED if failed else ExitCode.OK)
    _render(context, result)
    return int(ExitCode.CHECK_FAILED if failed else ExitCode.OK)


def _render(context: Context, result: server_restore.ServerRestoreResult) -> None:
    plan = result.plan
    heading = "plan (dry run: nothing was changed)" if result.dry_run else "restored"
    context.say(f"{heading}: snapshot {plan.snapshot[:8]} (passbolt {plan.snapshot_version}, {plan.source_layout}) "
                f"onto {plan.root} as {plan.target_layout.name} (installed: {plan.target_version or 'unknown'})")
    if plan.database is not None:
        context.say("database:")
        for action in plan.database.actions():
            context.say(f"  {action}")
        if plan.database.datasource_updates:
            context.say(f"  the restored configuration's datasource is updated: {', '.join(plan.database.datasource_updates)}")
    context.say("files:")
    for entry in plan.paths:
        change = f"  ({entry.change})" if entry.change else ""
        size = f"  {human_bytes(len(entry.content))}" if entry.content is not None else ""
        context.say(f"  {entry.mode:04o} {entry.owner:<20} {entry.location}{size}{change}")
    if plan.keyring is not None:
        context.say(f"keyring: import the server private key into {plan.keyring.location} as {plan.web.name}")
    for fingerprint in result.keyring_fingerprints:
        context.say(f"  keyring holds {fingerprint}")
    steps_to_print = [s for s in plan.passbolt_steps if not s.run]
    if steps_to_print:
        context.say("then run passbolt's post-restore steps:")
        for step in steps_to_print:
            context.say(f"  {step.shown}")
    for step_result in result.steps:
        context.say(f"passbolt {step_result.name}: exit status {step_result.returncode}")
    for note in plan.notes:
        context.say(f"note: {note}")
    for warning in plan.warnings:
        context.say(f"warning: {warning}")
    for check in result.checks:
        context.say(f"check {check.name}: {check.status.value}: {check.reason}")
    if not result.dry_run:
        context.say(f"done in {result.seconds:.1f} s" + (f"; failed: {', '.join(result.failed_checks)}" if result.failed_checks else ""))


def _extract(args: argparse.Namespace, context: Context, repository: object) -> int:
    result = restore_action.run(
        repository, args.snapshot, args.target, merge_inserts=args.merge_inserts, apply_owners=args.owners,  # type: ignore[arg-type]
        reporter=context.reporter(),
    )
    if context.json_output:
        context.emit_json(result.to_dict())
        return int(ExitCode.OK)
    for item in result.items:
        mode = f" mode {item.mode:04o}" if item.mode is not None else ""
        context.say(f"{item.path}  {human_bytes(item.size)}{mode}")
    context.say(f"restored snapshot {result.snapshot[:8]} into {result.target} in {result.seconds:.1f} s")
    return int(ExitCode.OK)
