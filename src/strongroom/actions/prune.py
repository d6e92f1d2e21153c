"""``prune``: apply the retention policy, then remove the data no snapshot references (two phases).

The policy comes from ``[retention]``; drill records from trusted drill keys protect
the newest snapshot that passed a drill; on a storage with object lock (an S3
location with ``lock=...``) a snapshot is protected until ``lock_days`` after its
time. See :mod:`strongroom.repository.prune` for the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from strongroom.config.schema import Config
from strongroom.errors import IdentityError, StorageError, UsageError
from strongroom.repository import prune as engine
from strongroom.repository import repack as repacking
from strongroom.repository.drills import list_records
from strongroom.repository.repository import Repository
from strongroom.repository.retention import parse_duration, policy_from_settings
from strongroom.repository.snapshot import SnapshotHeader
from strongroom.storage.location import parse_location

ObjectGroup = engine.ObjectGroup


@dataclass
class PruneOutcome:
    """The plan, and what executing it did (None for a dry run)."""

    plan: engine.PrunePlan
    result: engine.PruneResult | None
    grace_seconds: float
    policy: str
    repack_plan: repacking.RepackPlan | None = None
    repack_result: repacking.RepackResult | None = None


def _drilled(repository: Repository, trusted: tuple[str, ...]) -> set[str]:
    """Names of snapshots with a passed drill recorded by a trusted drill key."""
    if not trusted:
        return set()
    records, _ = list_records(repository.backend, repository.metadata_key, frozenset(trusted))
    return {str(record.get("snapshot")) for record in records if record.get("passed") is True}


def _object_lock(url: str) -> timedelta | None:
    """How long the storage retains each object (S3 ``lock`` with ``lock_days``), or None."""
    try:
        location = parse_location(url)
    except StorageError:
        return None
    if not location.option("lock"):
        return None
    return timedelta(days=float(location.option("lock_days") or 30))


def run(
    repository: Repository, config: Config, *, dry_run: bool, repack: bool = False,
    repack_threshold: float = repacking.DEFAULT_THRESHOLD_PERCENT, location: str | None = None,
) -> PruneOutcome:
    """Plan a prune under ``config.retention`` and (unless ``dry_run``) execute it; with
    ``repack``, then copy the live chunks of packs more than ``repack_threshold`` percent
    dead into new packs and mark the old ones for a later prune.

    Raises UsageError (no writer key, bad threshold), IdentityError (``repack`` without an
    identity that opens the repository and the data keys of the packs to repack: raised
    before anything changes), ConfigError (bad retention settings), IntegrityError (the
    repository is damaged: prune refuses), LockedError, StorageError. ``location`` is
    the URL the repository was opened from (a [[repository.targets]] copy), for its
    object-lock settings; default: ``[repository] url``.
    """
    if repository.writer_key is None:
        raise UsageError(
            "prune needs the writer key: it signs removal records and reads the index",
            hint="run on the backup host, or on a trusted machine with a copy of the writer key ([repository] writer_key)",
        )
    retention = config.retention
    policy = policy_from_settings(retention)
    grace = parse_duration(retention.prune_grace).total_seconds()
    trusted = config.drill.trusted_keys
    try:
        drilled = _drilled(repository, trusted)
    except IdentityError:
        drilled = set()
    retained = _object_lock(location or config.repository.url) if config.repository else None

    def locked_until(header: SnapshotHeader) -> datetime | None:
        return datetime.fromisoformat(header.time) + retained if retained else None

    if repack:
        repacking.check_threshold(repack_threshold)
        repacking.require_identity(repository)  # IdentityError now, before the prune changes anything
    plan = engine.make_plan(repository, policy, grace_seconds=grace, drilled=drilled, locked_until=locked_until)
    repack_plan = None
    if repack:
        removed = set(plan.remove)
        kept = [header for header in repository.list_snapshots().snapshots if header.name not in removed]
        repack_plan = repacking.make_plan(repository, kept, threshold_percent=repack_threshold)
        repacking.open_data_keys(repository, [share.name for share in repack_plan.chosen])
    if dry_run:
        return PruneOutcome(plan, None, grace, policy.describe(), repack_plan)
    result = engine.execute_plan(repository, plan, grace_seconds=grace)
    repack_result = repacking.execute_plan(repository, threshold_percent=repack_threshold) if repack else None
    return PruneOutcome(
        plan, result, grace, policy.describe(), repack_result.plan if repack_result else None, repack_result
    )


def outcome_to_dict(outcome: PruneOutcome) -> dict[str, Any]:
    """JSON-ready form of a prune's plan and result."""
    plan = outcome.plan
    data: dict[str, Any] = {
        "policy": outcome.policy,
        "grace_seconds": outcome.grace_seconds,
        "dry_run": outcome.result is None,
        "snapshots": [
            {
                "name": d.snapshot.name,
                "sequence": d.snapshot.sequence,
                "time": d.snapshot.time.isoformat(),
                "keep": d.keep,
                "reasons": list(d.reasons),
            }
            for d in plan.decisions
        ],
        "delete_now": plan.delete_now.to_dict(),
        "mark_now": plan.mark_now.to_dict(),
        "waiting": plan.waiting.to_dict() | {"reasons": list(plan.waiting_reasons)},
        "repack": {
            "reclaimable_bytes": plan.repack_bytes,
            "packs_with_dead_chunks": plan.repack_packs,
            "mostly_dead_packs": plan.mostly_dead_packs,
        },
        "referenced_pack_bytes": plan.referenced_bytes,
    }
    if outcome.repack_plan is not None:
        data["repack"]["plan"] = outcome.repack_plan.to_dict()
    if outcome.repack_result is not None:
        data["repack"]["result"] = outcome.repack_result.to_dict()
    if outcome.result is not None:
        result = outcome.result
        data["result"] = {
            "removed_snapshots": result.removed_snapshots,
            "removal_record": result.removal_record,
            "deleted": result.deleted.to_dict(),
            "marked": result.marked.to_dict(),
            "index_written": len(result.index_written),
            "index_deleted": len(result.index_deleted),
            "marks_record": result.marks_record,
            "marks_deleted": len(result.marks_deleted),
            "kept_back": result.kept_back,
        }
    return data

