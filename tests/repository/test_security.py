"""The security model: write-only host, pinned writer key, refused forgeries, chain gaps, age interop."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pyrage
import pytest

from repository_helpers import Setup, make_setup, need_program

from strongroom.errors import IdentityError, IntegrityError
from strongroom.repository.keys import WriterKey
from strongroom.repository.repository import Repository
from strongroom.repository.snapshot import encode_snapshot
from strongroom.repository.keys import object_name
from strongroom.storage.backend import Handle, ObjectType


def _backup(setup: Setup, content: bytes = b"INSERT INTO `t` VALUES (1);\n") -> str:
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(content))
        return writer.commit().name


def test_restore_with_only_the_writer_key_fails_clearly(setup: Setup, tmp_path: Path) -> None:
    _backup(setup)
    repository = setup.writer()
    snapshot = repository.load_snapshot("latest")  # metadata is readable by the writer
    with pytest.raises(IdentityError, match="this host holds only the writer key; restore needs a recipient identity"):
        repository.restore_component(snapshot, "database.sql", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_wrong_identity_fails_clearly(setup: Setup, tmp_path: Path) -> None:
    _backup(setup)
    stranger = tmp_path / "stranger.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    with pytest.raises(IdentityError, match="not a recipient"):
        setup.reader(stranger).load_snapshot("latest")


def test_age_cli_decrypts_a_data_key(setup: Setup) -> None:
    age = need_program("age")
    _backup(setup)
    repository = setup.writer()
    snapshot = repository.load_snapshot("latest")
    (data_key,) = snapshot.body["data_keys"]
    path = Path(setup.config.url) / "keys" / data_key
    output = subprocess.run([age, "--decrypt", "-i", str(setup.identity_file), str(path)], capture_output=True, check=True)
    data = json.loads(output.stdout)
    assert data["type"] == "strongroom-data-key" and len(data["key"]) == 44


def test_each_run_has_its_own_data_key(setup: Setup) -> None:
    _backup(setup, b"a\n")
    _backup(setup, b"b\n")
    keys = [setup.writer().load_snapshot_by_name(h.name).body["data_keys"] for h in setup.writer().list_snapshots().snapshots]
    assert len(keys[0]) == 1 and len(keys[1]) == 1 and keys[0] != keys[1]
    # The writer key file holds no data key: the host cannot reopen its earlier data.
    text = Path(setup.config.writer_key).read_text()
    assert "key" in text and all(k not in text for k in keys[0])


def _forge(setup: Setup, forger: WriterKey, predecessor: str | None) -> str:
    """A snapshot encrypted for the repository's readers but signed by ``forger``."""
    repository = setup.writer()
    header = {"kind": "snapshot", "repository": repository.repository_id, "sequence": 2,
              "predecessor": predecessor, "time": "2030-01-01T00:00:00+00:00", "keys": repository.keys_object}
    forged = WriterKey(forger.signing_key, setup.writer_key.id_key, setup.writer_key.metadata_key, forger.repository_id)
    stored = encode_snapshot(forged, header, {"components": [], "manifest": {"evil": True}})
    name = object_name(stored)
    repository.backend.save(Handle(ObjectType.SNAPSHOTS, name), stored)
    return name


def test_a_snapshot_signed_by_another_key_is_refused(setup: Setup) -> None:
    first = _backup(setup)
    forged = _forge(setup, WriterKey.generate("x"), first)
    listing = setup.reader().list_snapshots()
    assert [h.name for h in listing.snapshots] == [first]
    assert [p.object_name for p in listing.problems if p.kind == "refused"] == [forged]
    with pytest.raises(IntegrityError, match="not the pinned one"):
        setup.reader().load_snapshot(forged[:12])


def test_a_writer_key_planted_in_storage_is_ignored(setup: Setup, tmp_path: Path) -> None:
    first = _backup(setup)
    # An attacker with storage access makes a whole new repository config and key, and a snapshot with it.
    planted = make_setup(tmp_path / "attacker")
    for info in planted.writer().backend.list(ObjectType.CONFIG):
        data = planted.writer().backend.load(info.handle)
        setup.writer().backend.save(info.handle, data)
    _forge(setup, planted.writer_key, first)
    repository = Repository.open(setup.writer().backend, setup.config, identities=setup.reader().identities)
    assert repository.repository_id == setup.writer().repository_id
    assert [h.name for h in repository.list_snapshots().snapshots] == [first]


def test_a_deleted_middle_snapshot_is_a_gap(setup: Setup) -> None:
    names = [_backup(setup, b"row %d\n" % day) for day in range(3)]
    setup.writer().backend.remove(Handle(ObjectType.SNAPSHOTS, names[1]))
    listing = setup.reader().list_snapshots()
    gaps = [p for p in listing.problems if p.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].object_name == names[2]
    assert names[1][:8] in gaps[0].message


def test_storage_names_and_headers_reveal_no_content(setup: Setup) -> None:
    secret = b"INSERT INTO `secrets` VALUES ('very-secret-value');\n"
    _backup(setup, secret * 3)
    root = Path(setup.config.url)
    for path in root.rglob("*"):
        if path.is_file():
            assert b"very-secret-value" not in path.read_bytes()
            assert b"secrets" not in path.read_bytes()
