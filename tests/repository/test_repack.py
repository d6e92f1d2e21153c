"""Repack on real local repositories: live chunks of mostly-dead packs copied into new packs,
the old packs marked and deleted by later prunes; every snapshot restores throughout; no
identity or --dry-run changes nothing; a prune + repack SIGKILLed at random points."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repository_helpers import Setup, make_setup, secret_row, synthetic_dump

from strongroom.errors import IdentityError
from strongroom.repository import prune, repack
from strongroom.repository.check import check_repository
from strongroom.repository.keys import WriterKey, load_identities
from strongroom.repository.repository import Repository
from strongroom.repository.retention import Policy
from strongroom.storage.backend import ObjectType
from strongroom.storage.layers import open_backend

CHILD = Path(__file__).parent / "repack_child.py"
ROWS = 1500


@pytest.fixture(autouse=True)
def no_clock_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs on one machine and one clock: no margin needed for marks to be seen."""
    monkeypatch.setattr(prune, "CLOCK_MARGIN_SECONDS", 0.0)


def _content(day: int) -> bytes:
    """A dump of which each day replaces a third of the rows (a different third each day), so
    after five days about 13 % of the first day's rows remain."""
    lines = synthetic_dump(ROWS, seed=1)
    for earlier in range(1, day + 1):
        generator = random.Random(1000 + earlier)
        for position in generator.sample(range(2, len(lines) - 1), ROWS // 3):
            lines[position] = secret_row(generator)
    return b"".join(lines) + b"-- day %d\n" % day


def _key_file(day: int) -> bytes:
    return b"server key of day %d\n" % (day % 2) * 40


def _backup(setup: Setup, day: int) -> str:
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(_content(day)))
        writer.add_file("etc/key.asc", _key_file(day))
        return writer.commit({"day": day}).name


def _trusted(setup: Setup) -> Repository:
    """The repository as a trusted machine sees it: the writer key and an identity."""
    return Repository.open(
        open_backend(setup.config.url), setup.config, writer_key=WriterKey.load(setup.config.writer_key),
        identities=load_identities(setup.identity_file),
    )


def _state(setup: Setup) -> dict[str, set[tuple[str, int]]]:
    """Every object (locks included) with its size."""
    backend = open_backend(setup.config.url)
    return {t.value: {(info.handle.name, info.size) for info in backend.list(t)} for t in ObjectType}


def _data_bytes(setup: Setup) -> int:
    return sum(size for _, size in _state(setup)["data"])


def _assert_restores(setup: Setup, expected: dict[str, int], tmp_path: Path) -> None:
    """Every snapshot in the repository restores byte-identical to the day it was made of."""
    reader = setup.reader()
    listing = reader.list_snapshots()
    assert listing.problems == ()
    assert listing.snapshots, "at least one snapshot is checked"
    for header in listing.snapshots:
        day = expected[header.name]
        snapshot = reader.load_snapshot_by_name(header.name)
        folder = tmp_path / f"restore-{time.monotonic_ns()}"
        folder.mkdir()
        reader.restore_component(snapshot, "database.sql", folder / "database.sql")
        assert (folder / "database.sql").read_bytes() == _content(day)
        reader.restore_component(snapshot, "etc/key.asc", folder / "key.asc")
        assert (folder / "key.asc").read_bytes() == _key_file(day)


def _prune(setup: Setup, keep: int) -> prune.PruneResult:
    repository = setup.writer()
    plan = prune.make_plan(repository, Policy(last=keep), grace_seconds=0)
    return prune.execute_plan(repository, plan, grace_seconds=0)


def _history(setup: Setup, days: int, keep: int) -> dict[str, int]:
    """``days`` backups, then a prune keeping the last ``keep``: the old packs are mostly dead."""
    names = {_backup(setup, day): day for day in range(days)}
    _prune(setup, keep)
    kept = {h.name for h in setup.writer().list_snapshots().snapshots}
    return {name: day for name, day in names.items() if name in kept}


def test_repack_then_two_prunes_reclaim_space(setup: Setup, tmp_path: Path) -> None:
    expected = _history(setup, days=6, keep=2)
    before = _data_bytes(setup)
    repository = _trusted(setup)
    snapshots = repository.list_snapshots().snapshots
    plan = repack.make_plan(repository, snapshots, threshold_percent=30)
    assert plan.chosen and plan.reclaim_bytes > 0
    assert all(share.dead_share > 0.3 for share in plan.chosen)
    assert plan.packs_in_use > len(plan.chosen), "the newest packs are mostly live and stay"

    result = repack.execute_plan(repository, threshold_percent=30)
    assert sorted(result.marked_packs) == sorted(share.name for share in result.plan.chosen)
    assert result.chunks_copied > 0 and result.new_packs >= 1 and result.index_written and result.marks_record
    assert len(result.data_keys) == 1, "one new data key seals the new packs"
    assert not _state(setup)["locks"], "the lock is released"
    # The old packs are only marked: every snapshot restores, verify reads every chunk.
    check = check_repository(setup.reader(), read_data=True)
    assert check.ok, check.damage
    _assert_restores(setup, expected, tmp_path)
    assert _data_bytes(setup) > before

    # Within the grace period a prune keeps them marked (their chunks are located in the new packs).
    repository = setup.writer()
    waiting_plan = prune.make_plan(repository, Policy(last=2), grace_seconds=3600)
    assert set(waiting_plan.waiting.names["data"]) == set(result.marked_packs)
    waited = prune.execute_plan(repository, waiting_plan, grace_seconds=3600)
    assert waited.deleted.count("data") == 0 and not waited.kept_back
    marks = prune._marks(repository, repository.list_snapshots())
    assert marks.packs == frozenset(result.marked_packs), "the marks survive a prune within the grace period"
    first = _prune(setup, keep=2)
    assert set(first.deleted.names["data"]) == set(result.marked_packs), "the marked old packs go after the grace period"
    second = _prune(setup, keep=2)
    after = _data_bytes(setup)
    assert after < before * 0.8, (before, after)
    remaining = {name for name, _ in _state(setup)["data"]}
    assert not remaining & set(result.marked_packs)
    assert second.deleted.count("data") == 0
    check = check_repository(setup.reader(), read_data=True)
    assert check.ok and check.unreferenced_packs == 0, check.damage
    _assert_restores(setup, expected, tmp_path)
    # Nothing is left above the threshold: a second repack copies nothing.
    again = repack.execute_plan(_trusted(setup), threshold_percent=30)
    assert again.chunks_copied == 0 and not again.marked_packs and again.marks_record is None
    # A backup after the repack deduplicates against the new packs.
    name = _backup(setup, 5)
    expected[name] = 5
    stored = setup.writer().load_snapshot_by_name(name).component("database.sql")
    assert stored["new_chunks"] == 0
    _assert_restores(setup, expected, tmp_path)


def test_repack_needs_an_identity(setup: Setup) -> None:
    _history(setup, days=4, keep=1)
    before = _state(setup)
    with pytest.raises(IdentityError, match="identity"):
        repack.execute_plan(setup.writer(), threshold_percent=30)
    assert _state(setup) == before, "nothing changed, not even a lock"
    # An identity that is not a recipient is refused as clearly.
    import pyrage

    other = setup.root / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    stranger = Repository.open(
        open_backend(setup.config.url), setup.config, writer_key=WriterKey.load(setup.config.writer_key),
        identities=load_identities(other),
    )
    with pytest.raises(IdentityError):
        repack.execute_plan(stranger, threshold_percent=30)
    assert _state(setup) == before


def test_plan_changes_nothing_and_threshold_decides(setup: Setup) -> None:
    _history(setup, days=5, keep=1)
    before = _state(setup)
    repository = _trusted(setup)
    snapshots = repository.list_snapshots().snapshots
    low = repack.make_plan(repository, snapshots, threshold_percent=0)
    high = repack.make_plan(repository, snapshots, threshold_percent=99)
    assert len(low.chosen) > len(high.chosen) == 0
    assert low.packs_with_dead_chunks == len(low.chosen)
    assert _state(setup) == before


def _cli_setup(tmp_path: Path) -> tuple[list[str], Path, Setup]:
    """A repository made by ``init`` through the CLI, with a test identity, grace 0 and keep_last 1."""
    import pyrage

    from strongroom.cli.main import main
    from strongroom.config import load_config

    identity = pyrage.x25519.Identity.generate()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"{identity}\n")
    config_path = tmp_path / "etc" / "strongroom.toml"
    base = ["--config", str(config_path)]
    assert main([*base, "init", "--repository", str(tmp_path / "repo"), "--recipient", str(identity.to_public())]) == 0
    text = config_path.read_text()
    for old, new in (("keep_last = 0", "keep_last = 1"), ('prune_grace = "1h"', 'prune_grace = "0m"')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    config_path.write_text(text)
    config = load_config(config_path).repository
    assert config is not None
    return base, identity_file, Setup(tmp_path, config, WriterKey.load(config.writer_key), identity_file)


def test_prune_repack_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from strongroom.cli.main import main
    from strongroom.errors import ExitCode

    base, identity_file, setup = _cli_setup(tmp_path)
    expected = {_backup(setup, day): day for day in range(5)}
    capsys.readouterr()
    before = _state(setup)
    assert main([*base, "prune", "--repack"]) == ExitCode.IDENTITY
    assert "identity" in capsys.readouterr().err
    assert _state(setup) == before, "refused before the prune changed anything"

    assert main([*base, "--json", "prune", "--repack", "--identity", str(identity_file), "--dry-run"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] and planned["repack"]["plan"]["chosen_packs"] >= 1
    assert _state(setup) == before, "--dry-run changes nothing"

    assert main([*base, "prune", "--repack", "--identity", str(identity_file), "--repack-threshold", "30"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "repacked" in shown and "removed 4 snapshots" in shown
    size = _data_bytes(setup)
    assert main([*base, "--json", "prune"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["deleted"]["data"]["count"] >= 1
    assert _data_bytes(setup) < size
    assert main([*base, "--json", "verify", "--read-data", "--identity", str(identity_file)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    _assert_restores(setup, {n: d for n, d in expected.items() if d == 4}, tmp_path)


@pytest.mark.slow
def test_prune_and_repack_killed_at_random_points(tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "repository")
    config_file = tmp_path / "config.json"
    config_file.write_text(setup.config.model_dump_json())
    generator = random.Random(7)
    expected: dict[str, int] = {}
    repack_starts: list[float] = []  # when unkilled runs began repacking, and finished
    durations: list[float] = []
    stages: list[str] = []
    for day in range(10):
        expected[_backup(setup, day)] = day
        if day == 0:
            continue
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(config_file), str(setup.identity_file), "2"], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().startswith("opened")
        started = time.monotonic()
        if day >= 3:  # the first runs are not killed: their timings place the kill points, mostly in the repack
            try:
                child.wait(timeout=generator.uniform(0.5 * min(repack_starts), max(durations)))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
        else:
            while not (line := child.stdout.readline()).startswith("finished"):
                if line.startswith("repack lock"):
                    repack_starts.append(time.monotonic() - started)
            durations.append(time.monotonic() - started)
        output, _ = child.communicate(timeout=60)
        stages.append((["opened"] + output.strip().splitlines())[-1])
        assert child.returncode in (0, -signal.SIGKILL), output
        listing = setup.writer().list_snapshots()
        assert listing.problems == (), listing.problems
        result = check_repository(setup.writer())
        assert result.ok, (day, result.damage, result.chain)
    killed = [stage for stage in stages[2:] if not stage.startswith("finished")]
    assert len(killed) >= 3, f"most runs should be killed midway: {stages}"
    print("last stage reached by each run:", stages)
    _assert_restores(setup, expected, tmp_path)
    assert check_repository(setup.reader(), read_data=True).ok
    # An uninterrupted run and a prune finish the job: no marked pack is left over.
    final = repack.execute_plan(_trusted(setup), threshold_percent=30)
    _prune(setup, keep=2)
    _prune(setup, keep=2)
    assert not {name for name, _ in _state(setup)["data"]} & set(final.marked_packs)
    check = check_repository(setup.reader(), read_data=True)
    assert check.ok and check.unreferenced_packs == 0, check.damage
    _assert_restores(setup, expected, tmp_path)
