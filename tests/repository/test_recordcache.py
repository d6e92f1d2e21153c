"""The writer's record cache: changed days hash only changed groups, and the cache is never trusted blindly."""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest

from repository_helpers import Setup, make_setup, secret_row, synthetic_dump

from strongroom.repository import format as format_module, idlist, recordcache, repository as repository_module
from strongroom.repository.chunker import record_spans
from strongroom.repository.recordcache import GROUP_SPREAD, MAX_GROUP, group_ends
from strongroom.repository.repository import ComponentStatistics


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path / "repository")


def _backup(setup: Setup, content: bytes, name: str = "database.sql") -> ComponentStatistics:
    with setup.writer().begin_snapshot() as writer:
        statistics = writer.add_record_stream(name, io.BytesIO(content))
        writer.commit()
    return statistics


def _restored(setup: Setup, tmp_path: Path, name: str = "database.sql") -> bytes:
    reader = setup.reader()
    target = tmp_path / f"restored-{os.urandom(4).hex()}.sql"
    reader.restore_component(reader.load_snapshot("latest"), name, target)
    return target.read_bytes()


def _change_day(lines: list[bytes], seed: int) -> tuple[list[bytes], int]:
    """About 0.3 % of rows rewritten, 0.15 % added, 0.1 % deleted, scattered (as the benchmark's
    days: 0.4 % of a passbolt dump's lines differ): (new lines, rows that differ)."""
    generator = random.Random(seed)
    before = set(lines)
    lines = list(lines)
    for position in generator.sample(range(2, len(lines) - 1), len(lines) // 300):
        lines[position] = secret_row(generator)
    for _ in range(len(lines) // 600):
        lines.insert(generator.randrange(2, len(lines) - 1), secret_row(generator))
    for _ in range(len(lines) // 1000):
        del lines[generator.randrange(2, len(lines) - 1)]
    return lines, len(set(lines) - before)


def test_changed_days_hash_only_changed_groups_and_restore_byte_identical(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(20000)
    first = _backup(setup, b"".join(lines))
    assert first.hashed_records == first.chunks, "without a cache every record is hashed"
    for day in range(2, 5):
        lines, changed = _change_day(lines, seed=day)
        content = b"".join(lines)
        statistics = _backup(setup, content)
        # exactly the rows that differ are new, and few records beyond the changed groups were hashed
        assert statistics.new_chunks == changed
        assert statistics.hashed_records < changed * 3 * GROUP_SPREAD
        assert statistics.hashed_records < statistics.chunks // 2
        assert _restored(setup, tmp_path) == content
    component = setup.writer().load_snapshot_by_name(setup.writer().list_snapshots().snapshots[-1].name)
    assert component.component("database.sql")["list_depth"] == 3  # deltas against the previous lists


def test_a_lost_cache_costs_time_not_storage(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(5000)
    _backup(setup, b"".join(lines))
    for cache in (setup.root / "cache").rglob("records-*"):
        cache.unlink()
    lines, changed = _change_day(lines, seed=7)
    statistics = _backup(setup, b"".join(lines))
    assert statistics.hashed_records == statistics.chunks
    assert statistics.new_chunks == changed  # the index still tells what the repository holds
    lines, changed = _change_day(lines, seed=8)
    statistics = _backup(setup, b"".join(lines))
    assert statistics.hashed_records < statistics.chunks // 2, "the slow run wrote a new cache"
    assert statistics.new_chunks == changed
    assert _restored(setup, tmp_path) == b"".join(lines)


@pytest.mark.parametrize("damage", ["flipped id", "flipped group", "truncated", "foreign"])
def test_a_damaged_or_foreign_cache_is_ignored(setup: Setup, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    lines = synthetic_dump(3000)
    _backup(setup, b"".join(lines))
    (cache,) = (setup.root / "cache").rglob("records-*")
    data = bytearray(cache.read_bytes())
    if damage == "flipped id":
        data[16 * 100 + 3] ^= 1  # an id the next run would copy: a forged cache must not plant it
    elif damage == "flipped group":
        data[16 * 3002 + 20] ^= 0x40
    elif damage == "truncated":
        del data[-40:]
    else:
        # a well-formed cache of another repository (its own key) put in place of this one
        other = make_setup(tmp_path / "other")
        _backup(other, b"".join(lines))
        (foreign,) = (other.root / "cache").rglob("records-*")
        data = bytearray(foreign.read_bytes())
    cache.write_bytes(bytes(data))
    lines, changed = _change_day(lines, seed=3)
    with caplog.at_level(logging.INFO, logger="strongroom.repository.recordcache"):
        statistics = _backup(setup, b"".join(lines))
    assert statistics.hashed_records == statistics.chunks
    assert "record cache" in caplog.text
    assert statistics.new_chunks == changed
    assert _restored(setup, tmp_path) == b"".join(lines)


def test_a_stale_cache_is_not_used(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(3000)
    _backup(setup, b"".join(lines))
    (cache,) = (setup.root / "cache").rglob("records-*")
    stale = cache.read_bytes()
    lines, _ = _change_day(lines, seed=4)
    _backup(setup, b"".join(lines))
    cache.write_bytes(stale)  # describes the snapshot before the latest one
    lines, changed = _change_day(lines, seed=5)
    statistics = _backup(setup, b"".join(lines))
    assert statistics.hashed_records == statistics.chunks
    assert statistics.new_chunks == changed
    assert _restored(setup, tmp_path) == b"".join(lines)


def test_an_aborted_run_leaves_the_cache_of_the_last_snapshot(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(3000)
    _backup(setup, b"".join(lines))
    (cache,) = (setup.root / "cache").rglob("records-*")
    before = cache.read_bytes()
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(synthetic_dump(500, seed=9))))
        writer.abort()
    assert cache.read_bytes() == before
    assert [path.name for path in cache.parent.iterdir()] == [cache.name], "no temporary file left"
    lines, changed = _change_day(lines, seed=6)
    statistics = _backup(setup, b"".join(lines))
    assert statistics.hashed_records < statistics.chunks // 2
    assert statistics.new_chunks == changed


def test_reordered_rows_are_found_in_the_index(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(4000)
    _backup(setup, b"".join(lines))
    body = lines[2:-1]
    random.Random(2).shuffle(body)  # a table rewritten in another physical order
    content = b"".join(lines[:2] + body + lines[-1:])
    statistics = _backup(setup, content)
    assert statistics.new_chunks == 0
    assert _restored(setup, tmp_path) == content


def test_full_lists_are_written_at_the_depth_limit_on_the_cached_path(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idlist, "MAX_DEPTH", 1)
    lines = synthetic_dump(2000)
    depths = []
    for day in range(4):
        lines, _ = _change_day(lines, seed=20 + day)
        statistics = _backup(setup, b"".join(lines))
        depths.append(setup.writer().load_snapshot("latest").component("database.sql")["list_depth"])
        if day:
            assert statistics.hashed_records < statistics.chunks // 2
        assert _restored(setup, tmp_path) == b"".join(lines)
    assert depths == [0, 1, 0, 1]


def test_rows_of_marked_packs_are_stored_again(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(2000)
    _backup(setup, b"".join(lines))
    repository = setup.writer()
    (pack,) = [info.handle.name for info in repository.backend.list(recordcache_object_type("data"))]
    with repository.begin_snapshot() as writer:
        writer._marked = frozenset({pack})  # as if prune had marked the pack of day 1
        statistics = writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
        writer.commit()
    assert statistics.new_chunks == len(lines)
    assert _restored(setup, tmp_path) == b"".join(lines)


def recordcache_object_type(name: str):  # noqa: ANN201 - a test helper
    from strongroom.storage.backend import ObjectType

    return ObjectType(name)


def test_group_cuts_follow_content_not_position() -> None:
    lines = synthetic_dump(5000)

    def cuts_of(content: bytes) -> list[bytes]:
        groups = []
        for data, starts, ends in record_spans(io.BytesIO(content), read_size=1 << 30):
            raw = np.frombuffer(data, dtype=np.uint8)
            cuts = group_ends(raw, starts, ends)
            begin = 0
            for cut in cuts.tolist():
                groups.append(bytes(data[int(starts[begin]) : int(ends[cut - 1])]))
                begin = cut
        return groups

    before = cuts_of(b"".join(lines))
    assert b"".join(before) == b"".join(lines)
    sizes = [group.count(b"\n") for group in before]
    assert max(sizes) <= MAX_GROUP
    assert GROUP_SPREAD / 2 < sum(sizes) / len(sizes) < GROUP_SPREAD * 2
    changed = list(lines)
    changed[2500] = secret_row(random.Random(1))
    after = cuts_of(b"".join(changed))
    assert len(set(before) - set(after)) <= 2, "one changed row changes at most the groups around it"
    # a constant dump gives no content cut: groups end by count
    constant = cuts_of(b"x\n" * 1000)
    assert [group.count(b"\n") for group in constant[:-1]] == [MAX_GROUP] * (len(constant) - 1)


def test_cache_files_are_private(setup: Setup) -> None:
    _backup(setup, b"".join(synthetic_dump(100)))
    (cache,) = (setup.root / "cache").rglob("records-*")
    assert cache.stat().st_mode & 0o077 == 0
    assert cache.parent.stat().st_mode & 0o077 == 0
    assert recordcache.MAGIC in cache.read_bytes()[-100:]


def test_a_long_full_list_is_saved_as_a_short_chain(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository_module, "_LIST_PIECE", 1000)
    monkeypatch.setattr(repository_module, "_LIST_PIECES_MAX", 3)
    monkeypatch.setattr(format_module, "SPOOL_MEMORY", 4096)  # the literals go through the file
    lines = synthetic_dump(5000)
    _backup(setup, b"".join(lines))
    component = setup.writer().load_snapshot("latest").component("database.sql")
    assert component["list_depth"] == 2  # three objects of at most 1668 ids
    reader = setup.writer()
    chain = idlist.chain_of(component["list"], reader.load_list)
    assert len(chain) == 3 and max(reader.load_list(name).count for name in chain) == 5003
    assert all(len(reader.load_list(name).literals) <= 1668 * 16 for name in chain)
    assert _restored(setup, tmp_path) == b"".join(lines)
    lines, changed = _change_day(lines, seed=31)
    statistics = _backup(setup, b"".join(lines))
    assert statistics.new_chunks == changed
    assert setup.writer().load_snapshot("latest").component("database.sql")["list_depth"] == 3
    assert _restored(setup, tmp_path) == b"".join(lines)


def test_an_unwritable_cache_folder_costs_only_speed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = make_setup(tmp_path / "repository")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    setup.config = setup.config.model_copy(update={"cache_dir": blocker / "cache"})
    lines = synthetic_dump(2000)
    with caplog.at_level(logging.WARNING):
        _backup(setup, b"".join(lines))
        lines, changed = _change_day(lines, seed=41)
        statistics = _backup(setup, b"".join(lines))
    assert "record cache" in caplog.text
    assert statistics.hashed_records == statistics.chunks and statistics.new_chunks == changed
    assert _restored(setup, tmp_path) == b"".join(lines)


def test_a_cache_write_failure_mid_stream_costs_only_speed(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    lines = synthetic_dump(20000)
    original = recordcache.RecordCacheWriter.add
    calls = []

    def full_disk(self, ids, hashes, cuts):  # noqa: ANN001, ANN202 - stands for add
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(self, ids, hashes, cuts)

    monkeypatch.setattr(recordcache.RecordCacheWriter, "add", full_disk)
    with caplog.at_level(logging.WARNING):
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)), kind="mariadb-dump")
            writer.commit()
    assert "No space left" in caplog.text
    assert len(calls) >= 2, "the dump spans several blocks"
    assert not list((setup.root / "cache").rglob("records-*")), "no partial cache is installed"
    assert _restored(setup, tmp_path) == b"".join(lines)


def test_a_cache_cut_short_during_the_backup_fails_it_clearly(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from strongroom.errors import RepositoryError

    lines = synthetic_dump(20000)
    _backup(setup, b"".join(lines))
    original = recordcache.RecordCache.open.__func__  # type: ignore[attr-defined]

    def open_then_cut(cls, context, list_name):  # noqa: ANN001, ANN202 - stands for open
        cache = original(cls, context, list_name)
        os.truncate(context.path, 16 * 100)  # checked when opened, cut while in use
        return cache

    monkeypatch.setattr(recordcache.RecordCache, "open", classmethod(open_then_cut))
    changed, _ = _change_day(lines, seed=51)
    with pytest.raises(RepositoryError, match="record cache") as raised:
        _backup(setup, b"".join(changed))
    assert "delete" in (raised.value.hint or "")
    assert len(setup.writer().list_snapshots().snapshots) == 1
    monkeypatch.undo()
    statistics = _backup(setup, b"".join(changed))  # the cut cache fails its check: a slower backup
    assert statistics.hashed_records == statistics.chunks
    assert _restored(setup, tmp_path) == b"".join(changed)
