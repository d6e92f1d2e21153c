"""``status``: for every storage target, the last backup and the last successful drill, their age,
size and problems; stale when either is older than allowed.

Needs the writer key or an identity (to read snapshot bodies and drill records),
never both. Drill records count only when signed by a drill key pinned in
``[drill] trusted_keys``; others are ignored and said so. With ``space`` it also
dry-runs the prune plan to say how much only a repack could reclaim, and warns
when that share passes ``[status] repack_warning_percent``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from strongroom.actions.repository_access import open_repository
from strongroom.config.schema import Config
from strongroom.errors import ConfigError, IdentityError, IntegrityError, RepositoryError, StorageError, StrongroomError
from strongroom.repository import prune as prune_engine
from strongroom.repository.drills import list_records
from strongroom.repository.repository import Repository, parse_time
from strongroom.repository.retention import parse_duration, policy_from_settings
from strongroom.storage.location import display_location


@dataclass
class TargetStatus:
    """What status found on one storage target."""

    name: str
    location: str
    reachable: bool = True
    snapshots: int = 0
    last_backup: dict[str, Any] | None = None
    last_drill: dict[str, Any] | None = None
    last_passed_drill: dict[str, Any] | None = None
    backup_age_seconds: float | None = None
    drill_age_seconds: float | None = None
    repack_bytes: int | None = None
    referenced_bytes: int | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class StatusResult:
    """Every target's status; ``stale`` and ``problems`` decide the exit status."""

    targets: list[TargetStatus]
    max_backup_age_seconds: float
    max_drill_age_seconds: float
    checked: str

    @property
    def stale(self) -> bool:
        """True when any target's last backup or last passed drill is too old (or missing)."""
        return any(t.stale for t in self.targets)

    @property
    def unreachable(self) -> bool:
        """True when a target could not be read at all."""
        return any(not t.reachable for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "checked": self.checked,
            "stale": self.stale,
            "max_backup_age_seconds": self.max_backup_age_seconds,
            "max_drill_age_seconds": self.max_drill_age_seconds,
            "targets": [t.to_dict() for t in self.targets],
        }


def _age(moment: str | None, now: datetime) -> float | None:
    if not moment:
        return None
    try:
        return max(0.0, now.timestamp() - parse_time(moment))
    except ValueError:
        return None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} days"


def _inspect(
    repository: Repository, status: TargetStatus, config: Config, now: datetime, *, max_backup: float, max_drill: float, space: bool
) -> None:
    listing = repository.list_snapshots()
    status.snapshots = len(listing.snapshots)
    for problem in listing.problems:
        status.problems.append(f"{problem.kind}: {problem.message}")
    if listing.snapshots:
        header = listing.snapshots[-1]
        last: dict[str, Any] = {"snapshot": header.name, "sequence": header.sequence, "time": header.time}
        try:
            body = repository.load_snapshot_by_name(header.name).body
            last["size"] = sum(int(c.get("size", 0)) for c in body.get("components", []))
            last["stored_bytes"] = int(body.get("statistics", {}).get("stored_bytes", 0))
            manifest = body.get("manifest", {})
            last["passbolt_version"] = (manifest.get("passbolt") or {}).get("version")
            for warning in manifest.get("warnings", []):
                status.warnings.append(f"last backup: {warning}")
        except (IdentityError, IntegrityError) as error:
            status.problems.append(f"the last snapshot's body cannot be read: {error.message}")
        status.last_backup = last
        status.backup_age_seconds = _age(header.time, now)
    trusted = frozenset(config.drill.trusted_keys)
    try:
        records, ignored = list_records(repository.backend, repository.metadata_key, trusted)
    except IdentityError:
        records, ignored = [], []
    if ignored:
        status.warnings.append(f"{len(ignored)} drill record(s) ignored: not signed by a drill key pinned in [drill] trusted_keys")
    if records:
        status.last_drill = records[-1]
        passed = [r for r in records if r.get("passed") is True]
        if passed:
            status.last_passed_drill = passed[-1]
            status.drill_age_seconds = _age(str(passed[-1].get("finished")), now)
        if records[-1].get("passed") is not True:
            failed = ", ".join(records[-1].get("failed_checks", [])) or "unknown checks"
            status.problems.append(f"the last drill failed: {failed}")
    if status.backup_age_seconds is None:
        status.stale = True
        status.problems.append("no backup yet")
    elif status.backup_age_seconds > max_backup:
        status.stale = True
        status.problems.append(f"the last backup is {_hours(status.backup_age_seconds)} old (allowed: {_hours(max_backup)})")
    if status.drill_age_seconds is None:
        status.stale = True
        status.problems.append("no successful drill recorded (by a trusted drill key)")
    elif status.drill_age_seconds > max_drill:
        status.stale = True
        status.problems.append(f"the last successful drill is {_hours(status.drill_age_seconds)} old (allowed: {_hours(max_drill)})")
    if space and repository.writer_key is not None and listing.snapshots:
        plan = prune_engine.make_plan(
            repository, policy_from_settings(config.retention), grace_seconds=parse_duration(config.retention.prune_grace).total_seconds()
        )
        status.repack_bytes, status.referenced_bytes = plan.repack_bytes, plan.referenced_bytes
        total = plan.repack_bytes + plan.referenced_bytes
        share = 100.0 * plan.repack_bytes / total if total else 0.0
        if share > config.status.repack_warning_percent:
            status.warnings.append(
                f"{share:.0f} % of the stored data is dead inside packs that still hold live data: "
                "schedule 'strongroom prune --repack' on a trusted machine"
            )


def run(config: Config, *, identity_file: Any = None, space: bool = True) -> StatusResult:
    """Report every target. Raises ConfigError (no repository configured, bad thresholds)."""
    if config.repository is None:
        raise ConfigError("the configuration has no [repository] section", hint="run 'strongroom init' first")
    now = datetime.now(timezone.utc)
    max_backup = parse_duration(config.status.max_backup_age).total_seconds()
    max_drill = parse_duration(config.status.max_drill_age).total_seconds()
    names: list[tuple[str, str]] = [("primary", config.repository.url)] + [(t.name, t.url) for t in config.repository.targets]
    targets: list[TargetStatus] = []
    for name, url in names:
        status = TargetStatus(name, display_location(url))
        try:
            repository = open_repository(config.repository, identity_file=identity_file, target=None if name == "primary" else name)
            _inspect(repository, status, config, now, max_backup=max_backup, max_drill=max_drill, space=space)
        except (StorageError, RepositoryError) as error:
            status.reachable = False
            status.stale = True
            status.problems.append(f"cannot be read: {error.message}")
        except StrongroomError as error:
            status.problems.append(error.message)
        targets.append(status)
    return StatusResult(targets, max_backup, max_drill, now.isoformat(timespec="seconds"))
