"""Prune on real local repositories: the plan, two-phase removal, backups during and after a
prune, and a prune SIGKILLed at random points."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from repository_helpers import Setup, make_setup, secret_row, synthetic_dump

from strongroom.repository import prune
from strongroom.repository.check import check_repository
from strongroom.repository.retention import Policy
from strongroom.repository.snapshot import KIND_REMOVAL
from strongroom.storage.backend import ObjectType

CHILD = Path(__file__).parent / "prune_child.py"


@pytest.fixture(autouse=True)
def no_clock_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs on one machine and one clock: no margin needed for marks to be seen."""
    monkeypatch.setattr(prune, "CLOCK_MARGIN_SECONDS", 0.0)


def _content(day: int, rows: int = 300) -> bytes:
    """A dump whose rows partly change each day: 2/3 shared with the day before, 1/3 new
    (days from 10 on share no row with days before 10)."""
    lines = synthetic_dump(rows, seed=1 if day < 10 else day)
    if day >= 10:
        lines = [b"/* %d */ " % day + line for line in lines]
    generator = random.Random(1000 + day)
    for position in range(2 + day % 3, len(lines) - 1, 3):
        lines[position] = secret_row(generator)
    return b"".join(lines) + b"-- day %d\n" % day


def _backup(setup: Setup, day: int) -> str:
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(_content(day)))
        writer.add_file("etc/key.asc", b"server key of day %d\n" % day * 50)
        return writer.commit({"day": day}).name


def _objects(setup: Setup) -> dict[str, set[str]]:
    backend = setup.writer().backend
    return {t.value: {info.handle.name for info in backend.list(t)} for t in ObjectType if t is not ObjectType.LOCKS}


def _assert_restores(setup: Setup, expected: dict[str, int], tmp_path: Path) -> None:
    """Every snapshot in the repository restores byte-identical to the day it was made of."""
    reader = setup.reader()
    listing = reader.list_snapshots()
    assert listing.problems == ()
    for header in listing.snapshots:
        day = expected[header.name]
        snapshot = reader.load_snapshot_by_name(header.name)
        folder = tmp_path / f"restore-{time.monotonic_ns()}"
        folder.mkdir()
        reader.restore_component(snapshot, "database.sql", folder / "database.sql")
        assert (folder / "database.sql").read_bytes() == _content(day)
        reader.restore_component(snapshot, "etc/key.asc", folder / "key.asc")
        assert (folder / "key.asc").read_bytes() == b"server key of day %d\n" % day * 50


def _prune(setup: Setup, policy: Policy, grace: float = 0.0) -> tuple[prune.PrunePlan, prune.PruneResult]:
    repository = setup.writer()
    plan = prune.make_plan(repository, policy, grace_seconds=grace)
    return plan, prune.execute_plan(repository, plan, grace_seconds=grace)


def test_plan_of_a_history(setup: Setup) -> None:
    names = [_backup(setup, day) for day in range(4)]
    before = _objects(setup)
    plan = prune.make_plan(setup.writer(), Policy(last=2), grace_seconds=0)
    assert _objects(setup) == before, "planning changes nothing"
    decided = {d.snapshot.name: d for d in plan.decisions}
    assert [decided[n].keep for n in names] == [False, False, True, True]
    assert decided[names[3]].reasons == ("last 1", "newest snapshot")
    assert decided[names[2]].reasons == ("last 2",)
    assert plan.remove == names[:2]
    # Nothing was marked yet: the data only the removed snapshots use is marked now, deleted later.
    assert plan.delete_now.count() == 0 and plan.waiting.count() == 0
    assert plan.mark_now.count("lists") == 0, "the removed snapshots' lists are bases of the kept ones' deltas"
    assert plan.mark_now.count("data") == 0, "every pack still holds a chunk of a kept snapshot"
    assert plan.repack_packs >= 1 and plan.repack_bytes > 0, "the removed days' rows are dead inside live packs"


def test_removal_in_two_phases(setup: Setup, tmp_path: Path) -> None:
    expected = {}
    for day in range(3):
        expected[_backup(setup, day)] = day
    # A killed backup's leftovers: a pack and index no snapshot references.
    with setup.writer().begin_snapshot() as writer:
        # rows only (no header or footer line the snapshots hold): a run looks for rows around
        # their place, so a line it finds elsewhere may be stored again and hold the pack alive
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(synthetic_dump(200, seed=77)[2:-1])))
        writer.packer.flush()
        writer.abort()
    leftover_packs = _objects(setup)["data"] - {p for n in expected for p in _packs_of(setup, n)}
    assert leftover_packs

    plan, result = _prune(setup, Policy(last=1))
    assert result.removed_snapshots == plan.remove and len(plan.remove) == 2
    assert set(result.marked.names["data"]) == leftover_packs and result.deleted.count() == 0
    listing = setup.writer().list_snapshots()
    assert listing.problems == () and len(listing.snapshots) == 1
    assert {r.kind for r in listing.records} == {KIND_REMOVAL, "marks"}
    check = check_repository(setup.writer())
    assert check.ok and check.unreferenced_packs == len(leftover_packs)
    _assert_restores(setup, expected, tmp_path)

    second_plan, second = _prune(setup, Policy(last=1))
    assert set(second_plan.delete_now.names["data"]) == leftover_packs
    assert set(second.deleted.names["data"]) == leftover_packs
    assert second.deleted.count("lists") == 1 and second.deleted.count("keys") == 1  # the killed run's
    assert second.index_deleted and not (_objects(setup)["data"] & leftover_packs)
    check = check_repository(setup.reader(), read_data=True)
    assert check.ok and check.unreferenced_packs == 0
    _assert_restores(setup, expected, tmp_path)
    # the kept snapshot's location hints were kept (its chain's lists were, too)
    kept = setup.reader().load_snapshot("latest").component("database.sql")
    assert kept["locations"] and set(kept["locations"].values()) <= _objects(setup)["lists"]
    # Nothing is left to do; the consumed marks go.
    third_plan, third = _prune(setup, Policy(last=1))
    assert third_plan.delete_now.count() == third_plan.mark_now.count() == 0 and third.deleted.count() == 0
    assert not [r for r in setup.writer().list_snapshots().records if r.kind == "marks"]


def _packs_of(setup: Setup, name: str, avoid: set[str] | None = None) -> set[str]:
    """The packs snapshot ``name`` needs, locating chunks outside ``avoid`` where they are stored twice."""
    repository = setup.writer()
    objects, _ = repository.load_index_objects()
    header = next(h for h in repository.list_snapshots().snapshots if h.name == name)
    return prune.compute_references(repository, [header], objects, avoid_packs=frozenset(avoid or ())).packs


def test_grace_period_keeps_marked_data(setup: Setup) -> None:
    for day in range(2):
        _backup(setup, day)
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(synthetic_dump(100, seed=5)[2:-1])))
        writer.packer.flush()
        writer.abort()
    _, first = _prune(setup, Policy(last=1), grace=3600)
    assert first.marked.count("data") == 1
    plan, second = _prune(setup, Policy(last=1), grace=3600)
    assert second.deleted.count() == 0 and plan.waiting.count("data") == 1
    assert any("grace period" in reason for reason in plan.waiting_reasons)


def test_backup_after_a_mark_does_not_reference_marked_packs(setup: Setup, tmp_path: Path) -> None:
    expected = {}
    for day in (0, 10):  # no rows in common
        expected[_backup(setup, day)] = day
    first_packs = _packs_of(setup, next(n for n, d in expected.items() if d == 0))
    plan, result = _prune(setup, Policy(last=1))
    assert set(result.marked.names["data"]) == first_packs
    # The next backup has the removed snapshot's content: it stores it again.
    name = _backup(setup, 0)
    expected[name] = 0
    snapshot = setup.writer().load_snapshot_by_name(name)
    assert snapshot.component("database.sql")["new_chunks"] == snapshot.component("database.sql")["chunks"]
    assert not (_packs_of(setup, name, avoid=first_packs) & first_packs), "every chunk is stored in a new pack"
    _, second = _prune(setup, Policy(last=2))
    assert set(second.deleted.names["data"]) == first_packs
    assert check_repository(setup.writer()).ok
    _assert_restores(setup, expected, tmp_path)


class _SlowStream(io.RawIOBase):
    """A dump that pauses after its first part until ``resume`` is set (a backup in progress)."""

    def __init__(self, data: bytes, started: threading.Event, resume: threading.Event) -> None:
        self.parts = [data[: len(data) // 2], data[len(data) // 2 :]]
        self.started, self.resume = started, resume

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if not self.parts:
            return 0
        if len(self.parts) == 1:
            self.started.set()
            assert self.resume.wait(30)
        part = self.parts[0][: len(buffer)]
        self.parts[0] = self.parts[0][len(part) :]
        if not self.parts[0]:
            self.parts.pop(0)
        buffer[: len(part)] = part
        return len(part)


def test_backup_running_during_prune_loses_nothing(setup: Setup, tmp_path: Path) -> None:
    expected = {}
    for day in (0, 10):
        expected[_backup(setup, day)] = day
    started, resume = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def backup() -> None:
        # Began before the prune: it knows day 0's chunks and will reference day 0's packs.
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BufferedReader(_SlowStream(_content(0), started, resume)))
            writer.add_file("etc/key.asc", b"server key of day 0\n" * 50)
            outcome["name"] = writer.commit().name

    thread = threading.Thread(target=backup)
    thread.start()
    assert started.wait(30)
    day0_packs = _packs_of(setup, next(n for n, d in expected.items() if d == 0))
    _, first = _prune(setup, Policy(last=1))  # removes day 0, marks its packs
    assert set(first.marked.names["data"]) >= day0_packs
    plan, second = _prune(setup, Policy(last=1))  # the running backup's lock holds the deletion back
    assert second.deleted.count("data") == 0
    assert any("backup may still use" in reason for reason in plan.waiting_reasons)
    resume.set()
    thread.join(30)
    expected[outcome["name"]] = 0
    assert _packs_of(setup, outcome["name"]) & day0_packs, "the backup deduplicated against the marked packs"
    _, third = _prune(setup, Policy(last=3))  # recomputed references rescue the packs
    assert not (set(third.deleted.names["data"]) & day0_packs)
    assert check_repository(setup.reader(), read_data=True).ok
    _assert_restores(setup, expected, tmp_path)


@pytest.mark.slow
def test_prune_killed_at_random_points(tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "repository")
    config_file = tmp_path / "config.json"
    config_file.write_text(setup.config.model_dump_json())
    generator = random.Random(5)
    expected: dict[str, int] = {}
    durations: list[float] = []
    killed = 0
    stages: list[str] = []  # the last thing each child printed
    for day in range(10):
        expected[_backup(setup, day)] = day
        child = subprocess.Popen([sys.executable, str(CHILD), str(config_file), "2"], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().startswith("opened")
        started = time.monotonic()
        if day >= 3:  # the first runs are not killed: their durations scale the kill points
            try:
                child.wait(timeout=generator.uniform(0.0, max(durations)))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                killed += 1
        else:
            while not child.stdout.readline().startswith("done"):
                pass
            durations.append(time.monotonic() - started)
        output, _ = child.communicate(timeout=60)
        stages.append((["opened"] + output.strip().splitlines())[-1])
        assert child.returncode in (0, -signal.SIGKILL), output
        listing = setup.writer().list_snapshots()
        assert listing.problems == (), listing.problems
        result = check_repository(setup.writer())
        assert result.ok, (day, result.damage, result.chain)
    assert sum(not stage.startswith("done") for stage in stages) >= 3, f"most prunes should be killed midway ({killed} killed): {stages}"
    print("last stage reached by each prune:", stages)
    _assert_restores(setup, expected, tmp_path)
    assert check_repository(setup.reader(), read_data=True).ok
