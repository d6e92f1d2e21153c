"""The local backend: the conformance suite, plus what only a filesystem shows."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from strongroom.errors import PermanentStorageError
from strongroom.storage.backend import Backend, Handle, ObjectType
from strongroom.storage.layers import open_backend
from strongroom.storage.local import LocalBackend
from storage_conformance import BackendConformance


class TestLocalBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "repo", create=True)


class TestLayeredLocalBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return open_backend(str(tmp_path / "repo"), create=True)


def test_files_are_private_and_temporaries_unlisted(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo", create=True)
    handle = Handle(ObjectType.DATA, "ab" * 32)
    backend.save(handle, b"x")
    path = tmp_path / "repo" / "data" / "ab" / ("ab" * 32)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "repo").stat().st_mode) == 0o700
    # A save killed halfway leaves only a temporary file, which is never listed.
    (path.parent / ".tmp-0123").write_bytes(b"partial")
    (tmp_path / "repo" / "index" / "not-hex").write_bytes(b"foreign")
    assert [i.handle for i in backend.list(ObjectType.DATA)] == [handle]
    assert list(backend.list(ObjectType.INDEX)) == []


def test_missing_root_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentStorageError, match="does not exist"):
        LocalBackend(tmp_path / "nowhere")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_permission_denied_is_permanent(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo", create=True)
    os.chmod(tmp_path / "repo" / "keys", 0o500)
    with pytest.raises(PermanentStorageError):
        backend.save(Handle(ObjectType.KEYS, "aa"), b"x")


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(PermanentStorageError, match="unsupported"):
        open_backend("ftp://host/prefix")
