"""Crash safety and locking with real processes: SIGKILL at random points, two backups at once."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repository_helpers import Setup, make_setup

from strongroom.errors import LockedError
from strongroom.repository.check import check_repository

CHILD = Path(__file__).parent / "backup_child.py"


def _start(setup: Setup, rows: int, seed: int) -> subprocess.Popen[str]:
    config_file = setup.root / "config.json"
    config_file.write_text(setup.config.model_dump_json())
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(config_file), str(rows), str(seed)], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_no_damage(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    generator = random.Random(11)
    committed = 0
    listed = 0
    run_seconds = 0.0
    runs = 0
    # Ten runs; more (killed earlier) while every run so far has landed, so that some kill always
    # falls before a commit even when the first, timed run was much slower than the rest.
    while runs < 10 or (listed == runs and runs < 20):
        iteration = runs
        runs += 1
        child = _start(setup, 20000, seed=iteration)
        assert child.stdout is not None
        assert child.stdout.readline().startswith("started")  # the run holds the lock now
        if iteration == 0:
            # The first run is not killed: its time to commit scales the kill points to this
            # machine's speed (about 0.1 s here, so scheduling noise matters: see the loop's end).
            started = time.monotonic()
            first_line = child.stdout.readline()
            run_seconds = time.monotonic() - started
            child.wait(timeout=120)
        else:
            time.sleep(generator.uniform(0.0, (1.2 if iteration < 10 else 0.3) * run_seconds))
            child.send_signal(signal.SIGKILL)
        output, _ = child.communicate()
        if iteration == 0:
            output = first_line + output
        reported = "committed" in output
        committed += reported
        listing = setup.writer().list_snapshots()
        assert listing.problems == ()
        # a run killed after its snapshot was saved, before it said so, has landed too
        assert len(listing.snapshots) - listed in ((1,) if reported else (0, 1))
        listed = len(listing.snapshots)
    result = check_repository(setup.writer())
    assert result.ok, result.damage
    assert 0 < committed and listed < runs, "the kill points should fall both before and after commits"
    # The next backup succeeds at once: the dead runs' locks are stale (same host, pid gone).
    started = time.monotonic()
    with setup.writer().begin_snapshot(lock_wait_seconds=0) as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"after the crashes\n"))
        writer.commit()
    assert time.monotonic() - started < 10
    reader = setup.reader()
    reader.restore_component(reader.load_snapshot("latest"), "database.sql", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"after the crashes\n"
    assert check_repository(reader, read_data=True).ok


def test_a_second_backup_fails_clearly_while_the_first_holds_the_lock(setup: Setup) -> None:
    repository = setup.writer()
    with repository.begin_snapshot() as first:
        with pytest.raises(LockedError, match="locked by another run"):
            setup.writer().begin_snapshot(lock_wait_seconds=0)
        first.add_file("a", b"a")
        first.commit()
    with setup.writer().begin_snapshot(lock_wait_seconds=0) as second:
        second.add_file("b", b"b")
        second.commit()


def test_two_backup_processes_at_once_both_land_in_order(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, lock_wait_seconds=60)
    children = [_start(setup, 5000, seed=n) for n in range(2)]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    listing = setup.writer().list_snapshots()
    assert [h.sequence for h in listing.snapshots] == [1, 2] and listing.problems == ()
    assert listing.snapshots[1].predecessor == listing.snapshots[0].name
    assert check_repository(setup.writer()).ok
