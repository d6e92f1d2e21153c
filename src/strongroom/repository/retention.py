"""Retention: which snapshots a policy keeps, and the rule that decided each one.

The rules are the grandfather-father-son rules users know from restic and borg:

- ``keep_last N``: the N newest snapshots;
- ``keep_hourly/daily/weekly/monthly/yearly N``: walking from the newest snapshot
  back, the newest snapshot of each of the last N hours/days/ISO weeks/months/years
  that have one (periods without a snapshot do not count);
- ``keep_within D``: every snapshot taken within D of the newest one.

A snapshot is kept when any rule keeps it; its reasons name every rule that did.
Periods are computed in the policy's time zone (a daily backup at 00:30 local time
belongs to that local day, not to the UTC day before). Snapshots with the same time
fall in the same period: the one with the higher sequence number counts as newer.

Whatever the policy says, three kinds of snapshot are never removed: the newest
snapshot, the newest snapshot that passed a drill, and any snapshot under
object-lock retention. An empty policy keeps everything (prune refuses to guess).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from strongroom.errors import ConfigError

PERIOD_RULES: tuple[str, ...] = ("hourly", "daily", "weekly", "monthly", "yearly")

_DURATION = re.compile(r"(\d+)\s*([yMwdhm])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"2w"``, ``"1y6M"``, ``"12h"``, ``"90m"`` as a timedelta.

    ``y`` is 365 days and ``M`` (capital) 30 days; ``m`` is minutes. Raises ConfigError.
    """
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise ConfigError(
            f"cannot read the duration {text!r}",
            hint="write it like 30d, 2w, 1y6M or 12h (y years, M months, w weeks, d days, h hours, m minutes)",
        )
    seconds = 0
    for number, unit in parts:
        if unit == "y":
            seconds += int(number) * 365 * 86400
        elif unit == "M":
            seconds += int(number) * 30 * 86400
        else:
            seconds += int(number) * _UNIT_SECONDS[unit]
    return timedelta(seconds=seconds)


def time_zone(name: str) -> tzinfo:
    """The named IANA time zone (``UTC``, ``Europe/Paris``). Raises ConfigError."""
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}", hint="use an IANA name such as UTC or Europe/Berlin") from None


@dataclass(frozen=True)
class Policy:
    """A retention policy. Counts of 0 disable a rule; ``within`` None disables keep-within."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: timedelta | None = None
    zone: tzinfo = timezone.utc

    @property
    def empty(self) -> bool:
        """True when no rule is set (such a policy keeps everything)."""
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly or self.yearly or self.within)

    def describe(self) -> str:
        """The policy in words: ``last 3, daily 7, within 2d``."""
        parts = [f"{rule} {getattr(self, rule)}" for rule in ("last", *PERIOD_RULES) if getattr(self, rule)]
        if self.within:
            parts.append(f"within {self.within}")
        return ", ".join(parts) or "keep everything"


@dataclass(frozen=True)
class Candidate:
    """What retention needs to know of a snapshot."""

    name: str
    time: datetime
    sequence: int
    drill_passed: bool = False
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """Keep or remove one snapshot, and why."""

    snapshot: Candidate
    keep: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _bucket(rule: str, moment: datetime) -> tuple[int, ...]:
    if rule == "hourly":
        return (moment.year, moment.month, moment.day, moment.hour)
    if rule == "daily":
        return (moment.year, moment.month, moment.day)
    if rule == "weekly":
        year, week, _ = moment.isocalendar()
        return (year, week)
    if rule == "monthly":
        return (moment.year, moment.month)
    return (moment.year,)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def apply_policy(policy: Policy, snapshots: Iterable[Candidate], *, now: datetime | None = None) -> list[Decision]:
    """Decide every snapshot; return the decisions newest first.

    ``now`` is when object-lock retention is judged (default: the current time).
    """
    ordered = sorted(snapshots, key=lambda s: (_aware(s.time), s.sequence), reverse=True)
    if not ordered:
        return []
    moment_now = now or datetime.now(timezone.utc)
    reasons: dict[str, list[str]] = {s.name: [] for s in ordered}
    if policy.empty:
        for snapshot in ordered:
            reasons[snapshot.name].append("no retention policy: keep everything")
    for index, snapshot in enumerate(ordered[: policy.last]):
        reasons[snapshot.name].append(f"last {index + 1}")
    for rule in PERIOD_RULES:
        count = getattr(policy, rule)
        kept = 0
        previous: tuple[int, ...] | None = None
        for snapshot in ordered:
            if kept >= count:
                break
            bucket = _bucket(rule, _aware(snapshot.time).astimezone(policy.zone))
            if bucket != previous:
                kept += 1
                reasons[snapshot.name].append(f"{rule} {kept}")
                previous = bucket
    if policy.within is not None:
        newest = _aware(ordered[0].time)
        for snapshot in ordered:
            if newest - _aware(snapshot.time) <= policy.within:
                reasons[snapshot.name].append(f"within {policy.within}")
    reasons[ordered[0].name].append("newest snapshot")
    drilled = next((s for s in ordered if s.drill_passed), None)
    if drilled is not None:
        reasons[drilled.name].append("newest snapshot that passed a drill")
    for snapshot in ordered:
        if snapshot.locked_until is not None and _aware(snapshot.locked_until) > moment_now:
            reasons[snapshot.name].append(f"object lock until {snapshot.locked_until.isoformat(timespec='seconds')}")
    return [Decision(s, bool(reasons[s.name]), tuple(reasons[s.name])) for s in ordered]


def policy_from_settings(settings: object, lookup: Callable[[str], object] | None = None) -> Policy:
    """Build a Policy from an object with keep_* attributes (the ``[retention]`` section)."""
    get = lookup or (lambda name: getattr(settings, name))
    within = get("keep_within")
    return Policy(
        last=int(get("keep_last") or 0),  # type: ignore[call-overload]
        hourly=int(get("keep_hourly") or 0),  # type: ignore[call-overload]
        daily=int(get("keep_daily") or 0),  # type: ignore[call-overload]
        weekly=int(get("keep_weekly") or 0),  # type: ignore[call-overload]
        monthly=int(get("keep_monthly") or 0),  # type: ignore[call-overload]
        yearly=int(get("keep_yearly") or 0),  # type: ignore[call-overload]
        within=parse_duration(str(within)) if within else None,
        zone=time_zone(str(get("time_zone") or "UTC")),
    )


def summary(decisions: Sequence[Decision]) -> tuple[int, int]:
    """(kept, removed) counts."""
    kept = sum(1 for d in decisions if d.keep)
    return kept, len(decisions) - kept
