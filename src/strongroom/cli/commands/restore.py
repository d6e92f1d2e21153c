"""``strongroom restore SNAPSHOT --identity FILE --to DIR``: extract a snapshot into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from strongroom.actions import restore as restore_action
from strongroom.actions.repository_access import open_repository
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.errors import ExitCode

NAME = "restore"
HELP = "extract a snapshot into a folder"
DESCRIPTION = """\
Extract every component of SNAPSHOT (an id prefix or 'latest') into DIR (new or
empty): files with their recorded modes, the database dump as a plain .sql file,
byte-identical to what the dumper produced. --merge-inserts writes MariaDB dumps
with multi-row INSERTs instead (same data, loads several times faster).
Needs a recipient identity: the backup host's writer key cannot decrypt data."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``restore``."""
    parser.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id (a unique prefix) or 'latest'")
    parser.add_argument("--to", metavar="DIR", type=Path, required=True, dest="target", help="folder to extract into")
    parser.add_argument("--identity", metavar="FILE", type=Path, default=None,
                        help="age identity, SSH private key, or passphrase identity file")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, default=None,
                        help="passphrase for a passphrase identity (default: ask on the terminal)")
    parser.add_argument("--merge-inserts", action="store_true", help="write MariaDB dumps with multi-row INSERTs")
    parser.add_argument("--owners", action="store_true", help="also set the recorded file owners (needs root)")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Restore; return 0."""
    repository = open_repository(
        context.require_repository(), identity_file=args.identity, passphrase_file=args.passphrase_file
    )
    result = restore_action.run(
        repository, args.snapshot, args.target, merge_inserts=args.merge_inserts, apply_owners=args.owners,
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
