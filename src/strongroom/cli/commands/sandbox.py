"""``strongroom sandbox create``: build a realistic sandbox passbolt instance (demo, tests, benchmarks)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from strongroom.cli.context import Context
from strongroom.cli.render import parse_size
from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import ExitCode, UsageError
from strongroom.execute import register_secret
from strongroom.sandbox import LAYOUTS, create_sandbox
from strongroom.sandbox.generate import DEFAULT_MANIFEST_RESOURCES_PER_USER, DEFAULT_REAL_SECRET_LIMIT

NAME = "sandbox"
HELP = "build a sandbox passbolt instance (database, files, manifest) to try strongroom on"
DESCRIPTION = """\
Build sandbox passbolt instances. 'sandbox create' generates a passbolt 5.12
instance: a database with passbolt's exact schema and realistic content (users
with real OpenPGP key pairs, groups, folders, v4 and v5 resources, secrets
encrypted to each user with access, action logs, avatars, an SMTP setting and the
metadata key's server copy encrypted to the server key), the files of an install
layout with passbolt's owners and modes, and a manifest of what was generated."""

CREATE_DESCRIPTION = """\
Create a sandbox passbolt 5.12 instance.

The database is created on the server named by --database; the files go under
--root in the chosen layout; the manifest (private keys, passphrases, plaintexts:
mode 0600) goes to --manifest, by default beside the root as <root>-sandbox.json.

Same --seed, same instance: ids, names, counts, passwords, passphrases, row order
and timestamps repeat. Key material and every ciphertext are random by nature, so
keys and encrypted values differ from run to run.

--scale is the amount of row data (about what a dump of it holds; the server's
own size on disk is two to three times larger). Above about 150,000 secret rows,
bulk resources reuse a small pool of real messages per user: every row still
decrypts with its user's key to the recorded plaintext."""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``create`` sub-verb and its options."""
    sub_verbs = parser.add_subparsers(dest="sandbox_verb", metavar="SUBVERB", title="sub-verbs")
    sub_verbs.required = True
    create = sub_verbs.add_parser(
        "create",
        help="create a sandbox instance",
        description=CREATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument(
        "--database",
        metavar="URL",
        required=True,
        help="the database server to create the sandbox database on: mariadb://, mysql://, postgresql:// URL;"
        " for throwaway servers the URL may carry the password, else use --database-password-file",
    )
    create.add_argument(
        "--database-password-file",
        metavar="FILE",
        type=Path,
        help="read the database password from FILE (first line) instead of the URL",
    )
    create.add_argument(
        "--database-name", metavar="NAME", default="passbolt", help="name of the database to create (default: passbolt)"
    )
    create.add_argument("--root", metavar="DIR", type=Path, required=True, help="directory the instance's files go under")
    create.add_argument(
        "--layout", choices=LAYOUTS, default="debian", help="install layout of the files (default: debian)"
    )
    create.add_argument(
        "--scale",
        metavar="SIZE",
        default="5MB",
        help="target amount of row data, from 1MB to several GB (default: 5MB; 1GB takes minutes)",
    )
    create.add_argument("--seed", type=int, default=1, help="seed of the generator: same seed, same instance (default: 1)")
    create.add_argument(
        "--manifest",
        metavar="FILE",
        type=Path,
        help="where to write the manifest (default: <root>-sandbox.json beside the root; never inside it)",
    )
    create.add_argument("--domain", default="example.com", help="email and URL domain of the instance (default: example.com)")
    create.add_argument(
        "--replace",
        action="store_true",
        help="drop an existing database of that name and empty the root first",
    )
    create.add_argument(
        "--real-secret-limit",
        type=int,
        default=DEFAULT_REAL_SECRET_LIMIT,
        metavar="ROWS",
        help=f"secret rows encrypted one by one before pooled messages are reused (default: {DEFAULT_REAL_SECRET_LIMIT})",
    )
    create.add_argument(
        "--manifest-resources",
        type=int,
        default=DEFAULT_MANIFEST_RESOURCES_PER_USER,
        metavar="COUNT",
        help="readable resources (with plaintexts) listed per user in the manifest"
        f" (default: {DEFAULT_MANIFEST_RESOURCES_PER_USER})",
    )
    create.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a summary as JSON")


def _target(args: argparse.Namespace) -> DatabaseTarget:
    target = DatabaseTarget.from_url(args.database)
    if args.database_password_file is not None:
        try:
            lines = args.database_password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(
                f"cannot read the password file {args.database_password_file}: {exc.strerror}",
                hint="name a readable file holding the password on its first line",
            ) from None
        password = lines[0] if lines else ""
        register_secret(password)
        target = dataclasses.replace(target, password=password)
    return target


def execute(args: argparse.Namespace, context: Context) -> int:
    """Run ``sandbox create``; return the exit status."""
    reporter = context.reporter()
    try:
        sandbox = create_sandbox(
            database_target=_target(args),
            root=args.root,
            layout=args.layout,
            size=parse_size(args.scale),
            seed=args.seed,
            database_name=args.database_name,
            manifest_path=args.manifest,
            replace=args.replace,
            domain=args.domain,
            real_secret_limit=args.real_secret_limit,
            manifest_resources_per_user=args.manifest_resources,
            reporter=reporter,
        )
    finally:
        reporter.done()
    summary = sandbox.summary()
    if context.json_output:
        context.emit_json(summary)
        return int(ExitCode.OK)
    context.say(f"sandbox passbolt {args.layout} instance under {sandbox.root}")
    context.say(f"  database   {summary['database']} ({summary['rows']} rows, {summary['row_bytes'] / 1e6:.1f} MB of row data)")
    context.say(f"  users      {summary['users']}, resources {summary['resources']}")
    context.say(f"  server key {sandbox.server_fingerprint}")
    context.say(f"  manifest   {sandbox.manifest_path} (private keys: keep it safe)")
    context.say(f"  took       {summary['seconds']} s")
    for warning in sandbox.warnings:
        context.say(f"  warning: {warning}")
    return int(ExitCode.OK)
