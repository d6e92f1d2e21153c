"""``strongroom init``: create the repository, the host's writer key and the configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strongroom.actions import init as init_action
from strongroom.cli.context import Context
from strongroom.errors import ExitCode
from strongroom.repository.keys import read_passphrase

NAME = "init"
HELP = "create the repository, the writer key and the configuration"
DESCRIPTION = """\
Create an encrypted repository at --repository, a writer key for this host (a file
of mode 0600: it signs snapshots and cannot decrypt earlier data) and the
[repository] section of the configuration, which pins the recipients and the
writer key's fingerprint. Any one recipient's identity restores. Write the printed
fingerprint on the recovery sheet: a restoring machine trusts only snapshots
signed by that key.

--passphrase-identity FILE generates an age identity protected by a passphrase
(age scrypt) and adds it as a recipient; keep FILE off this host. The passphrase
is asked on the terminal, or read from --passphrase-file (a file or /dev/fd/N).
init never prompts without a terminal."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``init``."""
    parser.add_argument("--repository", metavar="PATH", required=True, help="where the repository goes (a local folder)")
    parser.add_argument("--recipient", metavar="KEY", action="append", default=[],
                        help="an age (age1...) or SSH public key, or a file of them; repeat for several")
    parser.add_argument("--writer-key", metavar="FILE", type=Path, default=None,
                        help="where to write the writer key (default: writer.key beside the configuration)")
    parser.add_argument("--passphrase-identity", metavar="FILE", type=Path, default=None,
                        help="generate a passphrase-protected identity into FILE and add it as a recipient")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, default=None,
                        help="read the passphrase for --passphrase-identity from FILE (or /dev/fd/N)")
    parser.add_argument("--root", metavar="DIR", type=Path, default=None,
                        help="record DIR as the filesystem root of the passbolt instance (instance.root)")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Run init and print the fingerprint; return 0."""
    passphrase = None
    if args.passphrase_identity is not None:
        passphrase = read_passphrase(
            prompt="passphrase for the new identity: ", passphrase_file=args.passphrase_file,
            confirm=args.passphrase_file is None and sys.stdin.isatty(),
        )
    result = init_action.run(
        init_action.InitOptions(
            repository=args.repository,
            recipients=tuple(args.recipient),
            config_path=context.effective_config_path,
            writer_key=args.writer_key,
            passphrase_identity=args.passphrase_identity,
            passphrase=passphrase,
            root=args.root,
        )
    )
    if context.json_output:
        context.emit_json(result.to_dict())
        return int(ExitCode.OK)
    context.say(f"repository created at {result.location}")
    context.say(f"configuration written to {result.config_path}")
    context.say(f"writer key written to {result.writer_key} (mode 0600; keep it on this host only)")
    for recipient in result.recipients:
        context.say(f"recipient: {recipient}")
    if result.passphrase_identity:
        context.say(f"passphrase identity written to {result.passphrase_identity}: move it off this host")
    context.say(f"writer fingerprint (for the recovery sheet): {result.writer_fingerprint}")
    return int(ExitCode.OK)
