"""``strongroom verify``: check the repository's integrity."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.text import Text

from strongroom.actions import verify as verify_action
from strongroom.actions.repository_access import open_repository
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.repository.check import CheckResult
from strongroom.errors import ExitCode, RepositoryError, StorageError

NAME = "verify"
HELP = "check the repository's integrity"
DESCRIPTION = """\
Check that every object's bytes match its name (any flipped byte is found without
a key), that every snapshot is signed by the pinned writer key, that the chain has
no gap, and (with the writer key or an identity) that every snapshot's chunks,
packs and keys are present and intact, naming the snapshots that damage affects.
Packs no snapshot uses (left by an interrupted backup) are reported as
reclaimable, not as damage. --read-data with --identity also decrypts every chunk
and checks its id. Every storage target is checked (the primary location and each
[[repository.targets]] copy); one that cannot be reached is reported and the others
are still checked. Exit status 11 when damage or a gap is found anywhere, 7 when a
target cannot be read at all."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``verify``."""
    parser.add_argument("--read-data", action="store_true", help="decrypt every chunk and check its id (needs --identity)")
    parser.add_argument("--identity", metavar="FILE", type=Path, default=None,
                        help="age identity, SSH private key, or passphrase identity file")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, default=None,
                        help="passphrase for a passphrase identity (default: ask on the terminal)")
    parser.add_argument("--target", metavar="NAME", default=None,
                        help="check only this target: 'primary' or a [[repository.targets]] name (default: every one)")


def execute(args: argparse.Namespace, context: Context) -> int:
    """Verify every target; return 0, 11 when damage or a chain gap was found, 7 when a target is unreadable."""
    config = context.require_repository()
    names = [args.target] if args.target else ["primary", *(t.name for t in config.targets)]
    outcomes: list[dict[str, object]] = []
    damaged = unreadable = False
    primary_json: dict[str, object] = {}
    for name in names:
        try:
            repository = open_repository(
                config, identity_file=args.identity, passphrase_file=args.passphrase_file,
                target=None if name == "primary" else name,
            )
            reporter = context.reporter()
            result = verify_action.run(repository, read_data=args.read_data, reporter=reporter)
            reporter.done()
        except (StorageError, RepositoryError) as error:
            # Unreachable storage (7), or no usable repository there (11); the other targets are still checked.
            if isinstance(error, StorageError):
                unreadable = True
            else:
                damaged = True
            outcomes.append({"target": name, "ok": False, "error": error.message})
            context.error_console.print(Text.assemble(("target ", "red"), f"{name} cannot be checked: {error.message}"))
            continue
        data = verify_action.result_to_dict(result)
        outcomes.append({"target": name, **data})
        if name == names[0]:
            primary_json = data
        damaged = damaged or not result.ok
        if not context.json_output:
            if len(names) > 1:
                context.say(f"target {name}:")
            _render(context, result)
    code = ExitCode.CHECK_FAILED if damaged else ExitCode.STORAGE if unreadable else ExitCode.OK
    if context.json_output:
        context.emit_json({**primary_json, "ok": code == ExitCode.OK, "targets": outcomes})
    return int(code)


def _render(context: Context, result: CheckResult) -> None:
    context.say(
        f"checked {result.objects_checked} objects ({human_bytes(result.bytes_read)}), "
        f"{result.snapshots} snapshots, level: {result.level}"
        + (f", {result.chunks_verified} chunks decrypted and verified" if result.chunks_verified else "")
    )
    for note in result.notes:
        context.say(f"note: {note}")
    if result.unreferenced_packs:
        context.say(
            f"{result.unreferenced_packs} unreferenced packs ({human_bytes(result.unreferenced_bytes)}), "
            "reclaimable by prune (left by an interrupted backup): not damage"
        )
    for damage in result.damage:
        affected = ", ".join(damage.snapshots) if damage.snapshots else "no snapshot"
        context.error_console.print(
            Text.assemble(("damage: ", "red"), f"{damage.object}: {damage.message}; affects {affected}")
        )
    for gap in result.chain:
        context.error_console.print(Text.assemble(("chain: ", "red"), gap))
    context.say("no damage found" if result.ok else "the repository has problems (see above)")
