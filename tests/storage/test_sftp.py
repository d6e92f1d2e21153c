"""The SFTP backend against a real OpenSSH server: the conformance suite, then what only SFTP shows."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, PermanentStorageError
from strongroom.storage.backend import Backend, Handle, ObjectType
from strongroom.storage.layers import open_backend
from conftest import SSHServer
from storage_conformance import BackendConformance


class TestSFTPBackend(BackendConformance):
    @pytest.fixture
    def backend(self, sshd_server: SSHServer) -> Iterator[Backend]:
        folder = sshd_server.root / secrets.token_hex(6)
        backend = open_backend(sshd_server.url(str(folder)), create=True)
        yield backend
        backend.close()


def test_objects_are_files_and_temporaries_unlisted(sshd_server: SSHServer) -> None:
    folder = sshd_server.root / secrets.token_hex(6)
    backend = open_backend(sshd_server.url(str(folder)), create=True)
    handle = Handle(ObjectType.DATA, "cd" * 32)
    backend.save(handle, b"x" * 1_000_000)
    path = folder / "data" / "cd" / ("cd" * 32)
    assert path.read_bytes() == b"x" * 1_000_000
    assert path.stat().st_mode & 0o077 == 0
    (path.parent / ".tmp-0123").write_bytes(b"partial")
    assert [info.handle for info in backend.list(ObjectType.DATA)] == [handle]
    backend.close()


def test_missing_folder_without_create(sshd_server: SSHServer) -> None:
    with pytest.raises(PermanentStorageError, match="does not exist"):
        open_backend(sshd_server.url(str(sshd_server.root / "nowhere")))


def test_unknown_host_key_is_refused(sshd_server: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 {other}\n")
    url = sshd_server.url(str(sshd_server.root)).replace(str(sshd_server.known_hosts), str(known))
    with pytest.raises(PermanentStorageError, match="host key does not match"):
        open_backend(url)
    known.write_text("")
    with pytest.raises(PermanentStorageError, match="not in the known_hosts"):
        open_backend(url)


def test_key_file_readable_by_others_is_refused(sshd_server: SSHServer, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(sshd_server.identity.read_bytes())
    key.chmod(0o644)
    url = sshd_server.url(str(sshd_server.root)).replace(str(sshd_server.identity), str(key))
    with pytest.raises(ConfigError, match="can be read by other users"):
        open_backend(url)


def test_wrong_key_is_a_permanent_error(sshd_server: SSHServer, tmp_path: Path) -> None:
    import paramiko

    key = tmp_path / "other"
    paramiko.Ed25519Key  # noqa: B018 - present in every paramiko we support
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    url = sshd_server.url(str(sshd_server.root)).replace(str(sshd_server.identity), str(key))
    with pytest.raises(PermanentStorageError, match="refused the credentials"):
        open_backend(url)


def test_account_without_delete_rights(sshd_append_only: SSHServer) -> None:
    folder = sshd_append_only.root / secrets.token_hex(6)
    backend = open_backend(sshd_append_only.url(str(folder)), create=True)
    handle = Handle(ObjectType.SNAPSHOTS, "ab" * 32)
    backend.save(handle, b"snapshot")
    backend.save(handle, b"snapshot")  # replacing through rename still works
    with pytest.raises(PermanentStorageError):
        backend.remove(handle)
    assert backend.load(handle) == b"snapshot"
    backend.close()
