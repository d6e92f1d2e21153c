"""Restore: records from many batches and backups written front to back, located with or
without a merged index; the id ordering helper; missing index entries."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from repository_helpers import Setup, secret_row, synthetic_dump

from strongroom.errors import IntegrityError
from strongroom.repository import restore
from strongroom.repository.index import sort_in_two, sort_order, split_ids
from strongroom.storage.backend import Handle, ObjectType


def _three_days(setup: Setup) -> list[bytes]:
    """Back up three days of a dump with scattered changes, repeated lines and deletions; return day 3."""
    lines = synthetic_dump(6000)
    generator = random.Random(3)
    for _ in range(3):
        for position in generator.sample(range(2, len(lines) - 1), 60):
            lines[position] = secret_row(generator)
        for position in sorted(generator.sample(range(2, len(lines) - 1), 20), reverse=True):
            del lines[position]
        lines[100:100] = [b"UNLOCK TABLES;\n"] * 3  # the same record several times
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            writer.commit()
    return lines


def test_restore_with_and_without_a_merged_index(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _three_days(setup)
    expected = b"".join(lines)
    # Small write buffers: many flushes, runs split across them.
    monkeypatch.setattr(restore, "WRITE_BUFFER", 4096)
    reader = setup.reader()
    snapshot = reader.load_snapshot("latest")
    hinted = reader.restore_component(snapshot, "database.sql", tmp_path / "hinted.sql")
    reader.use_hints = False  # every record located in the index objects
    streamed = reader.restore_component(snapshot, "database.sql", tmp_path / "streamed.sql")
    merged = reader.restore_component(snapshot, "database.sql", tmp_path / "merged.sql", index=reader.load_index())
    assert (tmp_path / "hinted.sql").read_bytes() == expected
    assert (tmp_path / "streamed.sql").read_bytes() == expected
    assert (tmp_path / "merged.sql").read_bytes() == expected
    assert hinted.size == streamed.size == merged.size == len(expected)
    # Several batches were needed, and records of later days are scattered among day 1's.
    ids = reader.component_ids(snapshot.component("database.sql"))
    located = restore.locate_listed(reader.iter_index_objects(), ids, "test")
    assert len(np.unique(located.batch)) > 3
    assert len(restore._runs(located)[0]) > 100


def test_a_missing_index_object_fails_and_leaves_no_file(setup: Setup, tmp_path: Path) -> None:
    expected = b"".join(_three_days(setup))
    reader = setup.reader()
    backend = reader.backend
    largest = max(backend.list(ObjectType.INDEX), key=lambda info: info.size)
    backend.remove(Handle(ObjectType.INDEX, largest.handle.name))
    # The location hints do not need the index: the restore still succeeds.
    reader.restore_component(reader.load_snapshot("latest"), "database.sql", tmp_path / "hinted.sql")
    assert (tmp_path / "hinted.sql").read_bytes() == expected
    reader.use_hints = False
    target = tmp_path / "out.sql"
    with pytest.raises(IntegrityError, match="missing from the index"):
        reader.restore_component(reader.load_snapshot("latest"), "database.sql", target)
    assert not target.exists()


def test_a_wrong_content_hash_is_detected(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _three_days(setup)
    reader = setup.reader()
    snapshot = reader.load_snapshot("latest")
    component = snapshot.component("database.sql")
    monkeypatch.setitem(component, "content_hash", "00" * 32)
    with pytest.raises(IntegrityError, match="wrong content hash"):
        reader.restore_component(snapshot, "database.sql", tmp_path / "out.sql")


def test_sort_order_is_lexsort_also_with_equal_first_halves() -> None:
    generator = np.random.default_rng(5)
    high = generator.integers(0, 50, 20000, dtype=np.uint64)  # many equal highs, lows out of order
    low = generator.integers(0, 1 << 63, 20000, dtype=np.uint64)
    low[::7] = low[0]  # and some exact duplicates
    high[::7] = high[0]
    assert np.array_equal(sort_order(high, low), np.lexsort((low, high)))
    ids = np.frombuffer(generator.bytes(16 * 50000), "S16")
    ids = np.concatenate((ids, ids[:100]))  # duplicates keep their order (stable)
    high, low = split_ids(ids)
    assert np.array_equal(sort_order(high, low), np.lexsort((low, high)))


def test_pieces_of_a_list_are_the_list(setup: Setup) -> None:
    from strongroom.repository import idlist

    _three_days(setup)
    reader = setup.reader()
    listed = reader.load_snapshot("latest").component("database.sql")["list"]
    whole = idlist.materialize(listed, reader.load_list)
    pieces = list(idlist.materialize_pieces(listed, reader.load_list, piece_ids=1000))
    assert len(pieces) > 3
    assert b"".join(pieces) == bytes(whole)
    assert len(whole) // 16 == reader.load_snapshot("latest").component("database.sql")["chunks"]


def test_known_ids_from_index_objects_match_the_index(setup: Setup) -> None:
    from strongroom.repository.index import KnownIds

    _three_days(setup)
    reader = setup.reader()
    known = KnownIds.from_index_objects(reader.iter_index_objects(), lambda index_object: index_object.entries["id"])
    every = np.concatenate([obj.entries["id"] for _, obj in reader.iter_index_objects()])
    assert len(known) == len(every)
    found, _ = known.lookup(every, None)
    assert found.all()
    strangers = np.frombuffer(np.random.default_rng(1).bytes(16 * 500), "S16")
    assert not known.lookup(strangers, None)[0].any()
    ids = reader.component_ids(reader.load_snapshot("latest").component("database.sql"))
    positions = known.base_positions([ids[: 16 * 1000], ids[16 * 1000 :]])
    rows, hit = known.ids.find(*split_ids(np.frombuffer(ids, "S16")))
    assert hit.all()
    listed = np.frombuffer(ids, "S16")
    # each listed id's row points back at a place in the list that holds the same id
    assert (listed[positions[rows]] == listed).all()


def test_bucket_search_is_searchsorted() -> None:
    from strongroom.repository.index import SortedIds

    generator = np.random.default_rng(9)
    spread = np.sort(generator.integers(0, 2**64 - 1, 200_000, dtype=np.uint64))
    skewed = np.sort(generator.integers(0, 1000, 200_000, dtype=np.uint64))  # one full bucket: binary search
    for high in (spread, skewed):
        ids = SortedIds(high, np.zeros(len(high), dtype=np.uint64))
        needles = np.concatenate((
            generator.integers(0, 2**64 - 1, 5000, dtype=np.uint64),
            high[generator.integers(0, len(high), 5000)],
            np.array([0, 2**64 - 1, high[0], high[-1]], dtype=np.uint64),
        ))
        assert np.array_equal(ids._search(needles, None), np.searchsorted(high, needles))
    assert SortedIds(spread, spread)._bucket_table() is not None
    assert SortedIds(skewed, skewed)._bucket_table() is None


def test_index_objects_are_written_sorted_by_id_and_bounded(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from strongroom.repository import packer
    from strongroom.repository.index import ascending

    # Small batches and packs, and an index object once 500 entries wait: many index objects.
    monkeypatch.setattr(packer, "BATCH_TARGET", 8 << 10)
    monkeypatch.setattr(packer, "PACK_TARGET", 32 << 10)
    monkeypatch.setattr(packer, "INDEX_ENTRIES", 500)
    lines = _three_days(setup)
    reader = setup.reader()
    objects = [obj for _, obj in reader.iter_index_objects()]
    assert len(objects) > 5
    largest_pack = 0
    for obj in objects:
        assert ascending(*split_ids(obj.entries["id"]))
        per_pack = np.bincount(obj.batches["pack"][obj.entries["batch"]], minlength=len(obj.packs))
        largest_pack = max(largest_pack, int(per_pack.max()))
        # written as soon as 500 entries waited: at most one pack's entries more
        assert len(obj.entries) < 500 + int(per_pack.max())
    assert largest_pack < 500
    reader.restore_component(reader.load_snapshot("latest"), "database.sql", tmp_path / "out.sql")
    assert (tmp_path / "out.sql").read_bytes() == b"".join(lines)


def test_index_objects_of_earlier_versions_in_write_order_still_restore(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day 1 written as earlier versions did (entries in write order, one large index object),
    later days sorted: both kinds are located, with and without a merged index."""
    from strongroom.repository import packer
    from strongroom.repository.index import ascending

    lines = synthetic_dump(6000)
    generator = random.Random(4)
    with monkeypatch.context() as old_writer:
        old_writer.setattr(packer, "sorted_entries", lambda parts: np.concatenate(parts))
        old_writer.setattr(packer, "INDEX_ENTRIES", 1 << 30)
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            writer.commit()
    reader = setup.reader()
    [(_, day_one)] = list(reader.iter_index_objects())
    assert not ascending(*split_ids(day_one.entries["id"]))
    for _ in range(2):
        for position in generator.sample(range(2, len(lines) - 1), 60):
            lines[position] = secret_row(generator)
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            writer.commit()
    kinds = [ascending(*split_ids(obj.entries["id"])) for _, obj in reader.iter_index_objects()]
    assert sorted(kinds) == [False, True, True]
    snapshot = reader.load_snapshot("latest")
    reader.restore_component(snapshot, "database.sql", tmp_path / "streamed.sql")
    reader.restore_component(snapshot, "database.sql", tmp_path / "merged.sql", index=reader.load_index())
    assert (tmp_path / "streamed.sql").read_bytes() == (tmp_path / "merged.sql").read_bytes() == b"".join(lines)
    assert (tmp_path / "streamed.sql").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_raises_and_leaves_no_file(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _three_days(setup)
    reader = setup.reader()
    monkeypatch.setattr(restore, "WRITE_BUFFER", 4096)
    calls = []
    real_pwrite = restore.os.pwrite

    def failing_pwrite(fd: int, data: memoryview, offset: int) -> int:
        calls.append(offset)
        if len(calls) == 20:
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(restore.os, "pwrite", failing_pwrite)
    target = tmp_path / "out.sql"
    with pytest.raises(OSError, match="No space left"):
        reader.restore_component(reader.load_snapshot("latest"), "database.sql", target)
    assert not target.exists()
    assert len(calls) < 40  # stopped soon after the failure, not after writing everything


def test_sort_order_with_ids_sharing_their_first_bits() -> None:
    """sort_order sorts first bits with the position in the last ones; ids whose first bits are
    equal (and whose lows or exact values tie) must still come out in lexsort order."""
    generator = np.random.default_rng(11)
    high = generator.integers(0, 2**64 - 1, 300_000, dtype=np.uint64)
    low = generator.integers(0, 2**64 - 1, 300_000, dtype=np.uint64)
    # neighbours differing only in the last 19 bits (the position bits for 300 000 ids)
    high[1000:3000] = (high[0:2000] & ~np.uint64((1 << 19) - 1)) | generator.integers(0, 1 << 19, 2000, dtype=np.uint64)
    high[5000:5100] = high[4900:5000]  # equal highs, lows in any order
    high[6000:6100], low[6000:6100] = high[7000:7100], low[7000:7100]  # exact duplicates
    assert np.array_equal(sort_order(high, low), np.lexsort((low, high)))


def test_sort_order_of_a_long_list_sorted_in_two_threads() -> None:
    """Past the two-thread size the keys are partitioned and their halves sorted apart; the
    order must still be lexsort's, also for ids tied in their first bits across the middle."""
    generator = np.random.default_rng(12)
    count = (1 << 20) + 12345
    high = generator.integers(0, 2**64 - 1, count, dtype=np.uint64)
    low = generator.integers(0, 2**64 - 1, count, dtype=np.uint64)
    middle_value = np.sort(high)[count // 2]
    high[:500] = middle_value  # a run of equal first halves straddling the partition point
    high[600:700], low[600:700] = high[800:900], low[800:900]  # exact duplicates
    assert np.array_equal(sort_order(high, low), np.lexsort((low, high)))
    keys = generator.integers(0, 2**64 - 1, count, dtype=np.uint64)
    expected = np.sort(keys)
    sort_in_two(keys)
    assert np.array_equal(keys, expected)


@pytest.mark.parametrize("size_given", ["right", "larger", "smaller", "none"])
def test_prepared_pages_never_change_the_output(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size_given: str) -> None:
    """The zeros written ahead of the records (small pieces, many of them) never overwrite a record,
    and the file ends as long as what was written, whatever size the caller gave."""
    from strongroom.repository.repository import content_hasher

    lines = _three_days(setup)
    expected = b"".join(lines)
    monkeypatch.setattr(restore, "WRITE_BUFFER", 4096)
    monkeypatch.setattr(restore, "PREFILL_PIECE", 1000)
    monkeypatch.setattr(restore, "PREFILL_AHEAD", 20_000)
    reader = setup.reader()
    ids = reader.component_ids(reader.load_snapshot("latest").component("database.sql"))
    size = {"right": len(expected), "larger": len(expected) + 123_457, "smaller": len(expected) // 3, "none": None}[size_given]
    hasher = content_hasher(reader.id_key)
    target = tmp_path / "out.sql"
    written = restore.write_component(reader, None, ids, target, what="test", hasher=hasher, size=size)
    assert written == len(expected)
    assert target.read_bytes() == expected
    reference = content_hasher(reader.id_key)
    reference.update(expected)
    assert hasher.hexdigest() == reference.hexdigest()


def test_items_read_ahead_come_in_order_and_errors_reach_the_consumer() -> None:
    with restore._Ahead(iter(range(50)), 1) as ahead:
        assert list(ahead) == list(range(50))

    def failing() -> Iterator[int]:
        yield 1
        raise IntegrityError("index 1234 does not authenticate")

    with restore._Ahead(failing(), 1) as ahead, pytest.raises(IntegrityError, match="does not authenticate"):
        list(ahead)
    # A consumer leaving early stops the thread, which was blocked on the full queue.
    with restore._Ahead(iter(range(1000)), 1) as ahead:
        assert next(iter(ahead)) == 0
    assert not ahead.thread.is_alive()


def test_file_index_holds_just_the_files_chunks_and_restores_them(setup: Setup, tmp_path: Path) -> None:
    """`restore` locates dumps as it writes them and files through an index of just their chunks."""
    lines = synthetic_dump(3000)
    files = {"etc/key.asc": random.Random(1).randbytes(9_000_000), "avatars/a.png": b"tiny", "empty": b""}
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
        for name, data in files.items():
            writer.add_file(name, data)
        writer.commit()
    reader = setup.reader()
    snapshot = reader.load_snapshot("latest")
    index = reader.file_index(snapshot)
    wanted = set()
    for name in files:
        ids = reader.component_ids(snapshot.component(name))
        wanted.update(bytes(ids[start : start + 16]) for start in range(0, len(ids), 16))
    held = index.entries["id"].tobytes()  # whole ids: numpy drops an S16 item's trailing zero bytes
    assert {held[start : start + 16] for start in range(0, len(held), 16)} == wanted
    assert len(wanted) >= 4  # the large file is at least 3 chunks (at most 4 MiB each), plus the tiny one
    for number, (name, data) in enumerate(files.items()):
        reader.restore_component(snapshot, name, tmp_path / f"{number}.out", index=index)
        assert (tmp_path / f"{number}.out").read_bytes() == data
    reader.restore_component(snapshot, "database.sql", tmp_path / "database.sql")
    assert (tmp_path / "database.sql").read_bytes() == b"".join(lines)
    assert len(reader.load_index_of(np.empty(0, "S16")).entries) == 0
