"""Verify and the objects test_tamper.py does not cover: prune's removal and marks records,
drill records, the config object, and deletions found with no key at all."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from repository_helpers import Setup, synthetic_dump

from strongroom.repository import prune
from strongroom.repository.check import check_repository
from strongroom.repository.drills import DrillKey, save_record
from strongroom.repository.repository import Repository
from strongroom.repository.retention import Policy
from strongroom.storage.backend import ObjectType


def _pruned(setup: Setup) -> tuple[list[str], dict[str, str]]:
    """Four snapshots, the two oldest pruned: returns the snapshot names and the records by kind."""
    names = []
    lines = synthetic_dump(300)
    for day in range(4):
        lines.append(b"-- day %d\n" % day)
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            names.append(writer.commit().name)
    with setup.writer().begin_snapshot() as writer:  # a killed run's pack: something to mark
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(synthetic_dump(50, seed=3))))
        writer.packer.flush()
        writer.abort()
    repository = setup.writer()
    plan = prune.make_plan(repository, Policy(last=2), grace_seconds=0)
    prune.execute_plan(repository, plan, grace_seconds=0)
    records = {r.kind: r.name for r in setup.writer().list_snapshots().records}
    assert set(records) == {"removal", "marks"}
    return names, records


def _path(setup: Setup, object_type: ObjectType, name: str) -> Path:
    root = Path(setup.config.url) / object_type.value
    return root / name[:2] / name if object_type is ObjectType.DATA else root / name


def _mutate(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[:-7]))
    else:
        path.unlink()


def test_pruned_repository_verifies(setup: Setup) -> None:
    _pruned(setup)
    result = check_repository(setup.reader(), read_data=True)
    assert result.ok and result.chain == [] and result.snapshots == 2


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("kind", ["removal", "marks"])
def test_damaged_prune_record_is_reported(setup: Setup, kind: str, how: str) -> None:
    _, records = _pruned(setup)
    _mutate(_path(setup, ObjectType.SNAPSHOTS, records[kind]), how)
    for repository in (setup.writer(), Repository.open(setup.writer().backend, setup.config)):  # and with no key
        result = check_repository(repository)
        assert not result.ok
        assert any(records[kind] in d.object for d in result.damage), result.damage


def test_deleted_removal_record_shows_the_gap(setup: Setup) -> None:
    names, records = _pruned(setup)
    _mutate(_path(setup, ObjectType.SNAPSHOTS, records["removal"]), "delete")
    keyless = Repository.open(setup.writer().backend, setup.config)
    result = check_repository(keyless)
    assert not result.ok and len(result.chain) == 1
    assert names[2][:8] in result.chain[0] and names[1][:8] in result.chain[0]


def test_a_pruned_repository_still_names_affected_snapshots(setup: Setup) -> None:
    names, _ = _pruned(setup)
    snapshot = setup.writer().load_snapshot_by_name(names[3])
    list_name = snapshot.component("database.sql")["list"]
    _mutate(_path(setup, ObjectType.LISTS, list_name), "delete")
    result = check_repository(setup.writer())
    assert not result.ok
    assert any(list_name in d.object and any(names[3][:8] in s for s in d.snapshots) for d in result.damage)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_drill_record_is_reported(setup: Setup, how: str) -> None:
    names, _ = _pruned(setup)
    record = save_record(setup.writer().backend, DrillKey.generate(), setup.writer_key.metadata_key,
                         {"snapshot": names[3], "passed": True, "finished": "2024-01-01T00:00:00+00:00"})
    assert check_repository(setup.writer()).ok
    _mutate(_path(setup, ObjectType.DRILLS, record), how)
    result = check_repository(Repository.open(setup.writer().backend, setup.config))
    assert not result.ok and any(record in d.object for d in result.damage)


def test_damaged_config_is_reported(setup: Setup) -> None:
    _pruned(setup)
    backend = setup.writer().backend
    (config,) = [info.handle.name for info in backend.list(ObjectType.CONFIG)]
    repository = setup.writer()  # opened before the damage
    _mutate(_path(setup, ObjectType.CONFIG, config), "flip")
    result = check_repository(repository)
    assert not result.ok and any(config in d.object for d in result.damage)


def test_deleted_snapshot_found_without_any_key(setup: Setup) -> None:
    names, _ = _pruned(setup)
    _mutate(_path(setup, ObjectType.SNAPSHOTS, names[2]), "delete")
    result = check_repository(Repository.open(setup.writer().backend, setup.config))
    assert result.level == "structure" and not result.ok
    assert any(names[2][:8] in gap and names[3][:8] in gap for gap in result.chain)
