"""Location hints: restores follow where the writer put each record, byte-identical, without
reading the index, and fall back to the index for exactly what the hints cannot say."""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from repository_helpers import make_setup, secret_row, synthetic_dump
from test_list_chains import _applied, _chain

from strongroom.repository import idlist, locations
from strongroom.repository.check import check_repository
from strongroom.repository import repository as repository_module
from strongroom.repository.locations import Hints, LocationMap, decode_hints, encode_hints
from strongroom.storage.backend import ObjectType

NAME = "database.sql"


class CountingLoads:
    """Counts the objects a repository loads, by type (wraps its backend's ``load``)."""

    def __init__(self, repository: Any) -> None:
        self.counts: dict[ObjectType, int] = {}
        backend = repository.backend
        original = backend.load

        def load(handle: Any, *args: Any, **kwargs: Any) -> Any:
            self.counts[handle.type] = self.counts.get(handle.type, 0) + 1
            return original(handle, *args, **kwargs)

        backend.load = load


def restore(setup: Any, snapshot: str, target: Path) -> dict[ObjectType, int]:
    reader = setup.reader()
    counting = CountingLoads(reader)
    reader.restore_component(reader.load_snapshot(snapshot), NAME, target)
    return counting.counts


def back_up(setup: Any, lines: list[bytes]) -> Any:
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream(NAME, io.BytesIO(b"".join(lines)))
        return writer.commit()


def changed(lines: list[bytes], generator: random.Random, fraction: float = 0.02) -> list[bytes]:
    """A later day: some rows rewritten, some deleted, some added, blank lines kept."""
    result = []
    for line in lines:
        roll = generator.random()
        if roll < fraction:
            result.append(secret_row(generator))
        elif roll < fraction * 1.5:
            continue
        else:
            result.append(line)
        if generator.random() < fraction / 2:
            result.append(secret_row(generator))
    return result


def with_blank_lines(lines: list[bytes]) -> list[bytes]:
    """Blank lines and repeated statements: records repeated inside a block, stored once."""
    out = []
    for number, line in enumerate(lines):
        out.append(line)
        if number % 50 == 0:
            out += [b"\n", b"UNLOCK TABLES;\n", b"\n"]
    return out


def five_days(rows: int, seed: int) -> list[list[bytes]]:
    """A first day's dump and four days of scattered changes after it."""
    generator = random.Random(seed + 1000)  # not the dump's own sequence: changed rows are new rows
    days = [with_blank_lines(synthetic_dump(rows, seed=seed))]
    for _ in range(4):
        days.append(changed(days[-1], generator))
    return days


@pytest.mark.parametrize("cache", [True, False], ids=["record-cache", "no-cache"])
def test_a_chain_of_days_restores_from_hints_alone(tmp_path: Path, cache: bool) -> None:
    setup = make_setup(tmp_path / "setup")
    days = five_days(6000, seed=3)
    names = []
    for day in days:
        if not cache:
            shutil.rmtree(setup.config.cache_dir, ignore_errors=True)  # every record looked up in the index's ids
        names.append(back_up(setup, day).name)
    for number, (name, day) in enumerate(zip(names, days)):
        target = tmp_path / f"day{number}.sql"
        counts = restore(setup, name, target)
        assert target.read_bytes() == b"".join(day)
        assert counts.get(ObjectType.INDEX, 0) == 0, f"day {number} read the index: {counts}"
    component = setup.reader().load_snapshot(names[-1]).component(NAME)
    assert len(component["locations"]) == component["list_depth"] + 1


def test_a_full_list_in_pieces_and_a_rebase_keep_their_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository_module, "_LIST_PIECE", 1000)
    monkeypatch.setattr(idlist, "MAX_DEPTH", 2 + 3)  # the 3 pieces, then two deltas, then a rebase
    setup = make_setup(tmp_path / "setup")
    days = five_days(2500, seed=5)
    depths = []
    for number, day in enumerate(days):
        name = back_up(setup, day).name
        component = setup.reader().load_snapshot(name).component(NAME)
        depths.append(component["list_depth"])
        counts = restore(setup, name, tmp_path / f"out{number}.sql")
        assert (tmp_path / f"out{number}.sql").read_bytes() == b"".join(day)
        assert counts.get(ObjectType.INDEX, 0) == 0, f"day {number} (depth {depths[-1]}) read the index: {counts}"
    # three pieces, two deltas on them, then a rebase: a new full list (in pieces again)
    assert depths == [2, 3, 4, 5, 2], depths


def test_records_without_a_hint_are_located_in_the_index(tmp_path: Path) -> None:
    """A row that comes back after a day away is found in the repository, not stored again: the
    writer does not know where it is. Only such records are looked up. (Without a record cache
    every record is looked up in the repository's ids; with one, a few such rows are stored again.)"""
    setup = make_setup(tmp_path / "setup")
    day1 = synthetic_dump(3000, seed=9)
    day2 = day1[:100] + day1[200:]
    back_up(setup, day1)
    back_up(setup, day2)
    shutil.rmtree(setup.config.cache_dir)
    name = back_up(setup, day1).name
    counts = restore(setup, name, tmp_path / "out.sql")
    assert (tmp_path / "out.sql").read_bytes() == b"".join(day1)
    assert counts.get(ObjectType.INDEX, 0) > 0  # the hundred rows that came back


def test_unreadable_or_missing_hints_fall_back_to_the_index(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = make_setup(tmp_path / "setup")
    lines = synthetic_dump(2000, seed=2)
    name = back_up(setup, lines).name
    component = setup.reader().load_snapshot(name).component(NAME)
    (hint_name,) = component["locations"].values()
    path = next((tmp_path / "setup/repo").rglob(hint_name))
    stored = bytearray(path.read_bytes())
    stored[-5] ^= 1
    path.write_bytes(bytes(stored))
    counts = restore(setup, name, tmp_path / "damaged.sql")
    assert (tmp_path / "damaged.sql").read_bytes() == b"".join(lines)
    assert counts.get(ObjectType.INDEX, 0) > 0 and "location hints are unreadable" in caplog.text
    path.unlink()
    restore(setup, name, tmp_path / "missing.sql")
    assert (tmp_path / "missing.sql").read_bytes() == b"".join(lines)
    check = check_repository(setup.writer())
    assert not check.ok and any("location hints object is missing" in d.message for d in check.damage)


def test_hints_survive_their_encoding_and_give_each_literal_its_place() -> None:
    generator = np.random.default_rng(4)
    literals = 5000
    batch = np.sort(generator.integers(-1, 3, literals)).astype(np.int32)
    length = generator.integers(1, 400, literals).astype(np.uint32)
    offset = np.zeros(literals, dtype=np.uint32)
    offset[batch >= 0] = generator.integers(0, 1 << 20, int((batch >= 0).sum()))
    offset[batch == 1] = np.cumsum(length[batch == 1]) - length[batch == 1]  # one contiguous batch
    runs = locations.literal_runs(batch, offset, length)
    assert len(runs) < literals and runs["first"][0] == 0
    table = np.zeros(3, locations.BATCH_DTYPE)
    table["pack"] = [0, 1, 0]
    hints = Hints("ab" * 32, None, 0, literals, np.array([[-1, literals]]), ["01" * 32, "02" * 32], table,
                  runs["first"], runs["batch"], runs["offset"], length)
    payload = b"".join(bytes(part) for part in encode_hints(hints))
    decoded = decode_hints(payload, "test hints")
    assert (decoded.list_name, decoded.base, decoded.depth, decoded.count) == (hints.list_name, None, 0, literals)
    assert decoded.packs == hints.packs and np.array_equal(decoded.operations, hints.operations)
    assert np.array_equal(decoded.length, length) and np.array_equal(decoded.run_first, runs["first"])
    mapping = LocationMap([decoded])
    found_batch, found_offset, found_length = mapping.places(np.arange(literals))
    known = batch >= 0
    assert np.array_equal(found_batch, np.where(known, batch, -1)) and np.array_equal(found_length, length)
    assert np.array_equal(found_offset[known], offset[known])
    with pytest.raises(Exception, match="size"):
        decode_hints(payload[:-1], "test hints")


@pytest.mark.parametrize("seed", range(3))
def test_composed_segments_give_the_applied_list(seed: int) -> None:
    """The location map of a chain names, for every position, the literal the list holds there
    (random chains, as the list tests make them)."""
    generator = random.Random(seed)
    for _ in range(150):
        objects, top = _chain(generator, generator.randint(0, 5))
        names = [top]
        while objects[names[-1]].base is not None:
            names.append(objects[names[-1]].base)  # type: ignore[arg-type]
        names.reverse()
        chain = []
        for name in names:
            decoded = objects[name]
            count = len(decoded.literals) // 16
            runs = locations.literal_runs(np.full(count, -1, np.int32), np.zeros(count, np.uint32), np.ones(count, np.uint32))
            chain.append(Hints(name, decoded.base, decoded.depth, decoded.count, decoded.operations, [],
                               np.zeros(0, locations.BATCH_DTYPE), runs["first"], runs["batch"], runs["offset"],
                               np.ones(count, np.uint32)))
        mapping = LocationMap(chain)
        joined = mapping.literals_at(np.arange(mapping.count))
        owners = mapping.object_of(joined)
        composed = b"".join(
            bytes(objects[names[owner]].literals[16 * local : 16 * (local + 1)])
            for owner, local in zip(owners.tolist(), (joined - mapping.literal_base[owners]).tolist())
        )
        assert composed == bytes(_applied(objects, top))
