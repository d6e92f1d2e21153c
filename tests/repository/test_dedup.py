"""Row-level deduplication: only new records are stored; id lists are deltas; the writer needs no cache."""

from __future__ import annotations

import io
import random

from repository_helpers import Setup, secret_row, synthetic_dump

from strongroom.repository import idlist
from strongroom.storage.backend import ObjectType


def _stored_bytes(setup: Setup) -> int:
    backend = setup.writer().backend
    return sum(info.size for t in ObjectType for info in backend.list(t) if t is not ObjectType.LOCKS)


def test_scattered_changes_store_only_the_changed_rows(setup: Setup) -> None:
    lines = synthetic_dump(20000)
    with setup.writer().begin_snapshot() as writer:
        first = writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
        writer.commit()
    day1 = _stored_bytes(setup)
    generator = random.Random(7)
    changed = generator.sample(range(2, len(lines) - 1), 200)  # 1 % of rows, scattered
    for position in changed:
        lines[position] = secret_row(generator)
    changed_bytes = sum(len(lines[p]) for p in changed)
    with setup.writer().begin_snapshot() as writer:
        second = writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
        writer.commit()
    added = _stored_bytes(setup) - day1
    assert first.new_chunks == first.chunks
    assert second.new_chunks == 200
    assert second.new_bytes == changed_bytes
    # Compressed rows plus a small delta list and snapshot: far below a full copy (day 1).
    assert added < changed_bytes * 1.5
    assert added < day1 / 20


def test_writer_rebuilds_known_ids_from_the_index_without_an_identity(setup: Setup) -> None:
    content = b"".join(synthetic_dump(2000))
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(content))
        writer.commit()
    # A new component name has no base list: dedup must come from the index alone.
    with setup.writer().begin_snapshot() as writer:
        statistics = writer.add_record_stream("other.sql", io.BytesIO(content))
        writer.commit()
    assert statistics.new_chunks == 0


def test_long_delta_chains_are_cut_by_full_lists(setup: Setup, monkeypatch) -> None:
    monkeypatch.setattr(idlist, "MAX_DEPTH", 2)
    lines = synthetic_dump(200)
    depths = []
    for day in range(5):
        lines.append(b"-- day %d\n" % day)
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            writer.commit()
        depths.append(setup.writer().load_snapshot("latest").component("database.sql")["list_depth"])
    assert depths == [0, 1, 2, 0, 1]


def test_delta_list_restores_reordered_and_deleted_rows(setup: Setup, tmp_path) -> None:
    lines = synthetic_dump(1000)
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
        writer.commit()
    lines = lines[:300] + lines[600:] + lines[300:600]  # a block moved
    del lines[10:500]  # many rows deleted
    content = b"".join(lines)
    with setup.writer().begin_snapshot() as writer:
        statistics = writer.add_record_stream("database.sql", io.BytesIO(content))
        writer.commit()
    assert statistics.new_chunks == 0
    reader = setup.reader()
    target = tmp_path / "out.sql"
    reader.restore_component(reader.load_snapshot("latest"), "database.sql", target)
    assert target.read_bytes() == content
