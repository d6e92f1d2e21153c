"""Tampering: a flipped byte, a truncation or a deletion in any object type is found by verify
without an identity, and the affected snapshot is named."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from repository_helpers import Setup, synthetic_dump

from strongroom.repository.check import check_repository
from strongroom.storage.backend import ObjectType


def _two_snapshots(setup: Setup) -> list[str]:
    lines = synthetic_dump(500)
    names = []
    for day in range(2):
        lines.append(b"-- day %d\n" % day)
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            writer.add_file("etc/key.asc", b"key %d" % day)
            names.append(writer.commit().name)
    return names


def _path(setup: Setup, object_type: ObjectType, name: str) -> Path:
    root = Path(setup.config.url) / object_type.value
    return root / name[:2] / name if object_type is ObjectType.DATA else root / name


def _mutate(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[: len(data) - 7]))
    else:
        path.unlink()


def test_clean_repository_verifies(setup: Setup) -> None:
    _two_snapshots(setup)
    result = check_repository(setup.writer())
    assert result.ok and result.level == "references" and result.unreferenced_packs == 0
    deep = check_repository(setup.reader(), read_data=True)
    assert deep.ok and deep.chunks_verified > 500


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("object_type", [ObjectType.DATA, ObjectType.INDEX, ObjectType.LISTS, ObjectType.KEYS])
def test_damage_is_found_and_attributed(setup: Setup, object_type: ObjectType, how: str) -> None:
    names = _two_snapshots(setup)
    backend = setup.writer().backend
    objects = sorted(info.handle.name for info in backend.list(object_type))
    # The first snapshot's objects: data and index of run 1, its list, its data key.
    first = setup.writer().load_snapshot_by_name(names[0])
    if object_type is ObjectType.KEYS:
        victim = first.body["data_keys"][0]
    elif object_type is ObjectType.LISTS:
        victim = first.component("database.sql")["list"]
    elif object_type is ObjectType.INDEX:
        victim = first.body["index"][0]
    else:
        index_objects, _ = setup.writer().load_index_objects()
        (content,) = [obj for name, obj in index_objects if name == first.body["index"][0]]
        victim = content.packs[0]
        assert victim in objects
    _mutate(_path(setup, object_type, victim), how)
    # No identity: the writer key's metadata key is enough to name snapshots.
    result = check_repository(setup.writer())
    assert not result.ok
    affected = " ".join(s for d in result.damage for s in d.snapshots)
    assert names[0][:8] in affected, result.damage
    # Without any key at all, a flipped or truncated object is still found by its hash.
    if how != "delete":
        from strongroom.repository.repository import Repository

        keyless = Repository.open(backend, setup.config)
        bare = check_repository(keyless)
        assert not bare.ok and bare.level == "structure"
        assert any(victim in d.object for d in bare.damage)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_snapshot_is_reported(setup: Setup, how: str) -> None:
    names = _two_snapshots(setup)
    _mutate(_path(setup, ObjectType.SNAPSHOTS, names[1]), how)
    result = check_repository(setup.writer())
    assert any(names[1] in d.object for d in result.damage)


def test_deleted_snapshot_is_a_chain_gap(setup: Setup) -> None:
    names = _two_snapshots(setup)
    with setup.writer().begin_snapshot() as writer:
        writer.add_file("x", b"x")
        names.append(writer.commit().name)
    _mutate(_path(setup, ObjectType.SNAPSHOTS, names[1]), "delete")
    result = check_repository(setup.writer())
    assert not result.ok and len(result.chain) == 1 and names[1][:8] in result.chain[0]
