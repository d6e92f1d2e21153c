"""Fault injection through a real TCP proxy in front of real servers: transient faults are
retried and succeed; a fault that persists fails the backup clearly, leaves no snapshot, and
the next backup succeeds."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from strongroom.errors import StorageError
from strongroom.storage.backend import Handle, ObjectType
from strongroom.storage.layers import open_backend
from conftest import S3Server, SSHServer, new_bucket
from fault_proxy import FaultProxy


@pytest.fixture
def s3_proxy(seaweedfs_server: S3Server) -> Iterator[FaultProxy]:
    endpoint = urlsplit(seaweedfs_server.endpoint)
    proxy = FaultProxy((endpoint.hostname or "127.0.0.1", endpoint.port or 80))
    yield proxy
    proxy.close()


def proxied_url(proxy: FaultProxy, bucket: str, prefix: str, credentials: Path, **options: str) -> str:
    query = "".join(f"&{key}={value}" for key, value in options.items())
    return f"s3://{bucket}/{prefix}?endpoint=http://127.0.0.1:{proxy.port}&credentials={credentials}{query}"


@pytest.fixture(scope="module")
def bucket(seaweedfs_server: S3Server) -> str:
    return new_bucket(seaweedfs_server)


def test_dropped_connections_and_503_are_retried(s3_proxy: FaultProxy, seaweedfs_server: S3Server, bucket: str,
                                                 tmp_path: Path) -> None:
    backend = open_backend(proxied_url(s3_proxy, bucket, "drops", seaweedfs_server.credentials_file(tmp_path)),
                           create=True)
    handle = Handle(ObjectType.DATA, "aa" * 32)
    data = secrets.token_bytes(200_000)
    s3_proxy.arm(drop=2)
    backend.save(handle, data)
    s3_proxy.arm(unavailable=2)
    assert backend.load(handle) == data
    assert s3_proxy.faults_injected == 4


def test_timeout_is_retried(s3_proxy: FaultProxy, seaweedfs_server: S3Server, bucket: str, tmp_path: Path) -> None:
    backend = open_backend(proxied_url(s3_proxy, bucket, "slow", seaweedfs_server.credentials_file(tmp_path),
                                       timeout="1"), create=True)
    handle = Handle(ObjectType.INDEX, "bb" * 32)
    backend.save(handle, b"index")
    s3_proxy.arm(delay=1, delay_seconds=2.5)
    assert backend.load(handle) == b"index"
    assert s3_proxy.faults_injected >= 1


def test_upload_cut_midway_is_retried_and_never_half_visible(s3_proxy: FaultProxy, seaweedfs_server: S3Server,
                                                             bucket: str, tmp_path: Path) -> None:
    backend = open_backend(proxied_url(s3_proxy, bucket, "cut", seaweedfs_server.credentials_file(tmp_path),
                                       probe="off"), create=True)
    handle = Handle(ObjectType.DATA, "cc" * 32)
    data = secrets.token_bytes(3_000_000)
    s3_proxy.arm(cut=1, cut_after=1_000_000)
    backend.save(handle, data)
    assert s3_proxy.faults_injected == 1
    assert backend.load(handle) == data


def test_sftp_connection_cut_midway_reconnects(sshd_server: SSHServer, tmp_path: Path) -> None:
    proxy = FaultProxy(("127.0.0.1", sshd_server.port))
    try:
        known = tmp_path / "known_hosts"
        known.write_text(sshd_server.known_hosts.read_text().replace(f"]:{sshd_server.port} ", f"]:{proxy.port} "))
        url = sshd_server.url(str(sshd_server.root / secrets.token_hex(6))).replace(
            f":{sshd_server.port}/", f":{proxy.port}/").replace(str(sshd_server.known_hosts), str(known))
        backend = open_backend(url, create=True)
        proxy.arm(cut=1, cut_after=500_000)  # cuts the live SSH connection: the backend reconnects
        handle = Handle(ObjectType.DATA, "dd" * 32)
        data = secrets.token_bytes(2_000_000)
        backend.save(handle, data)
        assert proxy.faults_injected == 1
        assert backend.load(handle) == data
        assert [info.handle for info in backend.list(ObjectType.DATA)] == [handle]
        backend.close()
    finally:
        proxy.close()


@pytest.mark.slow
def test_persistent_fault_fails_the_backup_without_a_snapshot(
    mariadb_server: Any, s3_proxy: FaultProxy, seaweedfs_server: S3Server, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from test_end_to_end import Setup

    credentials = seaweedfs_server.credentials_file(tmp_path)
    proxied = proxied_url(s3_proxy, new_bucket(seaweedfs_server), "faulty", credentials)
    setup = Setup(mariadb_server, tmp_path, proxied)
    s3_proxy.arm(cut=-1, cut_after=20_000)  # every connection dies after 20 kB: the pack uploads fail
    capsys.readouterr()
    assert setup.run("backup") == 7
    error = capsys.readouterr().err
    assert "saving data/" in error or "saving" in error, error
    assert seaweedfs_server.secret_access_key not in error
    s3_proxy.arm(cut=0)
    assert setup.json(capsys, "snapshots")["snapshots"] == []
    assert setup.run("backup", "--quiet") == 0
    assert len(setup.json(capsys, "snapshots")["snapshots"]) == 1
    assert setup.run("verify", "--quiet") == 0
