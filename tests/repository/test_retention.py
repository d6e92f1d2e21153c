"""Retention policies on synthetic snapshot histories, hours to years, with their edge cases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from strongroom.config.schema import RetentionConfig
from strongroom.errors import ConfigError
from strongroom.repository.retention import Candidate, Policy, apply_policy, parse_duration, policy_from_settings, time_zone

START = datetime(2024, 1, 1, 0, 30, tzinfo=timezone.utc)


def history(count: int, step: timedelta, start: datetime = START) -> list[Candidate]:
    return [Candidate(f"{i:064x}", start + i * step, i + 1) for i in range(count)]


def kept(policy: Policy, snapshots: list[Candidate], **kwargs: object) -> list[int]:
    return sorted(d.snapshot.sequence for d in apply_policy(policy, snapshots, **kwargs) if d.keep)  # type: ignore[arg-type]


def test_keep_last_and_the_newest_is_always_kept() -> None:
    snapshots = history(10, timedelta(hours=1))
    assert kept(Policy(last=3), snapshots) == [8, 9, 10]
    decisions = apply_policy(Policy(daily=0, last=1), snapshots)
    assert decisions[0].reasons == ("last 1", "newest snapshot")


def test_hourly_snapshots_for_two_years_under_a_gfs_policy() -> None:
    snapshots = history(2 * 365 * 24, timedelta(hours=1))
    decisions = apply_policy(Policy(hourly=24, daily=7, weekly=4, monthly=12, yearly=3), snapshots)
    kept_times = [d.snapshot.time for d in decisions if d.keep]
    newest = snapshots[-1].time
    # 24 hourly + 7 daily (the newest day's is the newest hour) + weekly + monthly + yearly, overlapping.
    assert len(kept_times) < 24 + 7 + 4 + 12 + 3
    assert all(newest - t < timedelta(hours=24) for t in kept_times[:24])
    days = {t.date() for t in kept_times}
    assert len({newest.date() - timedelta(days=n) for n in range(7)} - days) == 0
    assert min(kept_times).year == 2024  # the oldest year is kept by yearly 3
    reasons = {r.split()[0] for d in decisions if d.keep for r in d.reasons}
    assert {"hourly", "daily", "weekly", "monthly", "yearly"} <= reasons


def test_periods_without_a_snapshot_do_not_count() -> None:
    # One snapshot every third day: keep daily 3 keeps the newest three, spanning nine days.
    snapshots = history(10, timedelta(days=3))
    assert kept(Policy(daily=3), snapshots) == [8, 9, 10]


def test_same_time_snapshots_fall_in_one_period_and_the_higher_sequence_is_newer() -> None:
    moment = START + timedelta(days=5)
    snapshots = [Candidate("a" * 64, moment, 1), Candidate("b" * 64, moment, 2), Candidate("c" * 64, moment - timedelta(days=1), 0)]
    decisions = {d.snapshot.name[0]: d for d in apply_policy(Policy(daily=2), snapshots)}
    assert decisions["b"].keep and "daily 1" in decisions["b"].reasons
    assert not decisions["a"].keep
    assert decisions["c"].keep and "daily 2" in decisions["c"].reasons


def test_days_are_counted_in_the_policy_time_zone() -> None:
    # 22:00 and 23:30 UTC share a UTC day; in Berlin (UTC+1 in winter) they are 23:00 and 00:30.
    snapshots = [
        Candidate("a" * 64, datetime(2024, 1, 12, 22, 0, tzinfo=timezone.utc), 1),
        Candidate("b" * 64, datetime(2024, 1, 12, 23, 30, tzinfo=timezone.utc), 2),
    ]
    assert kept(Policy(daily=10), snapshots) == [2]
    assert kept(Policy(daily=10, zone=time_zone("Europe/Berlin")), snapshots) == [1, 2]


def test_daylight_saving_change_does_not_lose_a_day() -> None:
    zone = time_zone("Europe/Berlin")
    snapshots = history(6, timedelta(days=1), start=datetime(2024, 3, 29, 1, 0, tzinfo=timezone.utc))
    assert kept(Policy(daily=6, zone=zone), snapshots) == [1, 2, 3, 4, 5, 6]


def test_keep_within_is_measured_from_the_newest_snapshot() -> None:
    snapshots = history(48, timedelta(hours=1))
    assert kept(Policy(within=parse_duration("12h")), snapshots) == list(range(36, 49))
    # Far in the future or the past, the window still follows the newest snapshot.
    assert kept(Policy(within=parse_duration("12h")), snapshots, now=START + timedelta(days=900)) == list(range(36, 49))


def test_protected_snapshots_survive_any_policy() -> None:
    snapshots = history(5, timedelta(days=1))
    drilled = Candidate(snapshots[1].name, snapshots[1].time, snapshots[1].sequence, drill_passed=True)
    locked = Candidate(snapshots[0].name, snapshots[0].time, snapshots[0].sequence, locked_until=START + timedelta(days=30))
    decisions = {d.snapshot.sequence: d for d in apply_policy(Policy(last=1), [locked, drilled, *snapshots[2:]], now=START)}
    assert [s for s, d in sorted(decisions.items()) if d.keep] == [1, 2, 5]
    assert "newest snapshot that passed a drill" in decisions[2].reasons
    assert any(r.startswith("object lock until") for r in decisions[1].reasons)
    # An expired lock protects nothing.
    expired = apply_policy(Policy(last=1), [locked, *snapshots[1:]], now=START + timedelta(days=31))
    assert [d.snapshot.sequence for d in expired if d.keep] == [5]


def test_an_empty_policy_keeps_everything() -> None:
    decisions = apply_policy(Policy(), history(4, timedelta(days=1)))
    assert all(d.keep for d in decisions)
    assert Policy().describe() == "keep everything"


def test_durations_and_configuration() -> None:
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("1y6M") == timedelta(days=365 + 180)
    assert parse_duration("90m") == timedelta(minutes=90)
    for bad in ("", "soon", "3 fortnights", "12"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    with pytest.raises(ConfigError, match="time zone"):
        time_zone("Mars/Olympus")
    policy = policy_from_settings(RetentionConfig(keep_daily=7, keep_within="2d", time_zone="Europe/Paris"))
    assert policy.daily == 7 and policy.within == timedelta(days=2)
    assert policy.describe() == "daily 7, within 2 days, 0:00:00"
