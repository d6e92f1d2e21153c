"""``strongroom prune``: apply the retention policy and remove unreferenced data in two phases."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from strongroom.actions import prune as prune_action
from strongroom.actions.prune import ObjectGroup
from strongroom.actions.repository_access import open_repository
from strongroom.cli.context import Context
from strongroom.cli.render import human_bytes
from strongroom.errors import ExitCode
from strongroom.repository.repack import DEFAULT_THRESHOLD_PERCENT

NAME = "prune"
HELP = "remove the snapshots the retention policy lets go, and data nothing references"
DESCRIPTION = """\
Decide every snapshot by the [retention] rules (the newest snapshot, the newest
one that passed a drill and object-locked ones are always kept), save a signed
removal record, delete the removed snapshots, and remove the data no remaining
snapshot references in two phases: unreferenced packs, id lists and data keys are
marked first and deleted by a later prune, once the mark is older than
[retention] prune_grace and no backup that started before it is still running.
Needs the writer key (no identity, unless --repack). --dry-run prints the plan only. Space
held by dead chunks inside packs that still hold live ones is shown as what a
repack could reclaim.

--repack (on a trusted machine: it needs an identity as well as the writer key)
then copies the live chunks of every pack more dead than --repack-threshold into
new packs under a new data key, and marks the old packs: a later prune deletes
them after prune_grace, with the same checks. Without a usable identity it stops
before changing anything (exit status 10)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``prune``."""
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--target", metavar="NAME", default=None,
                        help="prune this [[repository.targets]] copy instead of the primary location")
    parser.add_argument("--repack", action="store_true",
                        help="then rewrite packs more dead than --repack-threshold (needs --identity)")
    parser.add_argument("--repack-threshold", metavar="PERCENT", type=float, default=DEFAULT_THRESHOLD_PERCENT,
                        help=f"repack packs whose dead share exceeds PERCENT (default {DEFAULT_THRESHOLD_PERCENT:g})")
    parser.add_argument("--identity", metavar="FILE", type=Path, default=None,
                        help="age identity, SSH private key, or passphrase identity file (for --repack)")
    parser.add_argument("--passphrase-file", metavar="FILE", type=Path, default=None,
                        help="passphrase for a passphrase identity (default: ask on the terminal)")


def _group(group: ObjectGroup) -> str:
    return (
        f"{group.count('data')} packs ({human_bytes(sum(group.names['data'].values()))}), "
        f"{group.count('lists')} id lists, {group.count('keys')} data keys"
    )


def execute(args: argparse.Namespace, context: Context) -> int:
    """Plan and (unless --dry-run) prune; return 0."""
    config = context.require_repository()
    repository = open_repository(
        config, writer_key_required=True,
        identity_file=args.identity if args.repack else None, passphrase_file=args.passphrase_file,
        target=args.target,
    )
    location = next((t.url for t in config.targets if t.name == args.target), None) if args.target else None
    outcome = prune_action.run(
        repository, context.config, dry_run=args.dry_run, repack=args.repack, repack_threshold=args.repack_threshold,
        location=location,
    )
    if context.json_output:
        context.emit_json(prune_action.outcome_to_dict(outcome))
        return int(ExitCode.OK)
    plan = outcome.plan
    table = Table(title=f"retention: {outcome.policy}")
    for column in ("id", "seq", "time", "action", "rule"):
        table.add_column(column)
    for decision in plan.decisions:
        snapshot = decision.snapshot
        table.add_row(
            snapshot.name[:8], str(snapshot.sequence), snapshot.time.isoformat(timespec="seconds"),
            "keep" if decision.keep else "[red]remove[/red]", ", ".join(decision.reasons) or "no rule keeps it",
        )
    context.console.print(table)
    verb = "would" if outcome.result is None else "will"
    context.say(f"frees now: {_group(plan.delete_now)} (marked earlier, grace {outcome.grace_seconds:.0f} s passed)")
    context.say(f"marks for a later prune: {_group(plan.mark_now)}")
    if plan.waiting.count():
        context.say(f"marked, waiting: {_group(plan.waiting)}")
        for reason in plan.waiting_reasons:
            context.say(f"  {reason}")
    if plan.repack_packs and outcome.repack_plan is None:
        context.say(
            f"only a repack could reclaim about {human_bytes(plan.repack_bytes)}: dead chunks in {plan.repack_packs} "
            f"packs still in use ({plan.mostly_dead_packs} more than half dead); on a trusted machine, "
            "'prune --repack --identity FILE' rewrites them"
        )
    if outcome.repack_plan is not None:
        repack_plan = outcome.repack_plan
        context.say(
            f"repack: {len(repack_plan.chosen)} of {repack_plan.packs_in_use} packs in use are more than "
            f"{repack_plan.threshold_percent:g} % dead ({human_bytes(repack_plan.chosen_bytes)}); copying their live chunks "
            f"frees about {human_bytes(repack_plan.reclaim_bytes)} once a later prune deletes them"
        )
    if outcome.result is None:
        context.say(f"dry run: nothing changed ({verb} remove {len(plan.remove)} snapshots)")
        return int(ExitCode.OK)
    result = outcome.result
    context.say(
        f"removed {len(result.removed_snapshots)} snapshots; deleted {_group(result.deleted)}; "
        f"marked {_group(result.marked)}; rewrote {len(result.index_deleted)} index objects into {len(result.index_written)}"
    )
    repacked = outcome.repack_result
    if repacked is not None:
        context.say(
            f"repacked {repacked.chunks_copied} live chunks ({human_bytes(repacked.plaintext_bytes)}) into "
            f"{repacked.new_packs} new packs; marked {len(repacked.marked_packs)} old packs for a later prune"
        )
    if result.kept_back:
        context.say(f"{len(result.kept_back)} marked objects are in use again and stay: {', '.join(result.kept_back[:5])}")
    return int(ExitCode.OK)
