"""The S3 backend against real servers: SeaweedFS (enforces conditional writes and object
lock) and ``rclone serve s3`` (a minimal S3 that ignores both)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.errors import ConfigError, ObjectNotFound, PermanentStorageError
from strongroom.storage.backend import Backend, Handle, ObjectType
from strongroom.storage.layers import open_backend
from conftest import S3Server, new_bucket
from storage_conformance import BackendConformance


def s3_url(server: S3Server, bucket: str, prefix: str, **options: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in {"endpoint": server.endpoint, **options}.items())
    return f"s3://{bucket}/{prefix}?{query}"


@pytest.fixture(scope="module")
def seaweed_bucket(seaweedfs_server: S3Server) -> str:
    return new_bucket(seaweedfs_server)


@pytest.fixture(scope="module")
def rclone_bucket(rclone_s3_server: S3Server) -> str:
    return new_bucket(rclone_s3_server)


class TestSeaweedFS(BackendConformance):
    @pytest.fixture
    def backend(self, seaweedfs_server: S3Server, seaweed_bucket: str, tmp_path: Path) -> Iterator[Backend]:
        credentials = seaweedfs_server.credentials_file(tmp_path)
        backend = open_backend(s3_url(seaweedfs_server, seaweed_bucket, f"instances/{secrets.token_hex(4)}"),
                               create=True, credentials_file=credentials)
        yield backend
        backend.close()


class TestRcloneServeS3(BackendConformance):
    @pytest.fixture
    def backend(self, rclone_s3_server: S3Server, rclone_bucket: str, tmp_path: Path) -> Iterator[Backend]:
        credentials = rclone_s3_server.credentials_file(tmp_path)
        backend = open_backend(s3_url(rclone_s3_server, rclone_bucket, secrets.token_hex(4)),
                               create=True, credentials_file=credentials)
        yield backend
        backend.close()


def test_probed_capabilities_differ(seaweedfs_server: S3Server, seaweed_bucket: str, rclone_s3_server: S3Server,
                                    rclone_bucket: str, tmp_path: Path) -> None:
    seaweed = open_backend(s3_url(seaweedfs_server, seaweed_bucket, "probe"),
                           credentials_file=seaweedfs_server.credentials_file(tmp_path))
    rclone = open_backend(s3_url(rclone_s3_server, rclone_bucket, "probe"),
                          credentials_file=rclone_s3_server.credentials_file(tmp_path))
    assert seaweed.capabilities.conditional_write
    assert not rclone.capabilities.conditional_write
    assert seaweed.capabilities.delete and rclone.capabilities.delete
    assert not seaweed.capabilities.immutable


def test_multipart_upload_with_and_without_checksums(seaweedfs_server: S3Server, seaweed_bucket: str,
                                                     tmp_path: Path) -> None:
    data = secrets.token_bytes(12 * 1024 * 1024 + 123)
    for checksums in ("on", "off"):
        backend = open_backend(s3_url(seaweedfs_server, seaweed_bucket, f"multi-{checksums}",
                                      part_size_mb="5", checksums=checksums),
                               create=True, credentials_file=seaweedfs_server.credentials_file(tmp_path))
        handle = Handle(ObjectType.DATA, "ee" * 32)
        backend.save(handle, data)
        assert backend.stat(handle).size == len(data)
        assert backend.load(handle, 5 * 1024 * 1024 - 3, 10) == data[5 * 1024 * 1024 - 3:5 * 1024 * 1024 + 7]
        assert backend.load(handle) == data
    uploads = seaweedfs_server.client().list_multipart_uploads(Bucket=seaweed_bucket)
    assert not uploads.get("Uploads")


def test_object_lock_refuses_early_delete(seaweedfs_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(seaweedfs_server, object_lock=True)
    backend = open_backend(s3_url(seaweedfs_server, bucket, "locked", lock="governance", lock_days="1"),
                           create=True, credentials_file=seaweedfs_server.credentials_file(tmp_path))
    assert backend.capabilities.immutable
    handle = Handle(ObjectType.SNAPSHOTS, "ab" * 32)
    backend.save(handle, b"snapshot")
    with pytest.raises(PermanentStorageError, match="denied|refused"):
        backend.remove(handle)
    assert backend.load(handle) == b"snapshot"
    retention = seaweedfs_server.client().get_object_retention(Bucket=bucket, Key="locked/snapshots/" + "ab" * 32)
    assert retention["Retention"]["Mode"] == "GOVERNANCE"
    # Lock files carry no retention: a run can remove its own lock.
    lock = Handle(ObjectType.LOCKS, "12")
    backend.save(lock, b"{}")
    backend.remove(lock)
    with pytest.raises(ObjectNotFound):
        backend.stat(lock)


def test_object_lock_that_is_ignored_fails_loudly(rclone_s3_server: S3Server, rclone_bucket: str,
                                                  tmp_path: Path) -> None:
    with pytest.raises(PermanentStorageError, match="does not enforce S3 Object Lock"):
        open_backend(s3_url(rclone_s3_server, rclone_bucket, "locked", lock="compliance"),
                     credentials_file=rclone_s3_server.credentials_file(tmp_path))


def test_object_lock_on_a_bucket_without_it(seaweedfs_server: S3Server, seaweed_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(PermanentStorageError):
        open_backend(s3_url(seaweedfs_server, seaweed_bucket, "nolock", lock="governance"),
                     credentials_file=seaweedfs_server.credentials_file(tmp_path))


def test_wrong_credentials_are_permanent_and_masked(seaweedfs_server: S3Server, seaweed_bucket: str,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "bad.credentials"
    secret = "wrong-secret-" + secrets.token_hex(8)
    path.write_text(f'access_key_id = "{seaweedfs_server.access_key_id}"\nsecret_access_key = "{secret}"\n')
    path.chmod(0o600)
    with pytest.raises(PermanentStorageError) as caught:
        open_backend(s3_url(seaweedfs_server, seaweed_bucket, "x"), credentials_file=path)
    assert secret not in str(caught.value)


def test_credentials_file_readable_by_others_is_refused(seaweedfs_server: S3Server, seaweed_bucket: str,
                                                        tmp_path: Path) -> None:
    path = seaweedfs_server.credentials_file(tmp_path)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        open_backend(s3_url(seaweedfs_server, seaweed_bucket, "x"), credentials_file=path)


def test_credentials_from_the_environment(seaweedfs_server: S3Server, seaweed_bucket: str) -> None:
    environment = {"AWS_ACCESS_KEY_ID": seaweedfs_server.access_key_id,
                   "AWS_SECRET_ACCESS_KEY": seaweedfs_server.secret_access_key}
    backend = open_backend(s3_url(seaweedfs_server, seaweed_bucket, "environment"), create=True,
                           environment=environment)
    backend.save(Handle(ObjectType.KEYS, "aa"), b"k")
    assert [i.handle.name for i in backend.list(ObjectType.KEYS)] == ["aa"]


def test_instances_share_a_bucket_under_prefixes(seaweedfs_server: S3Server, seaweed_bucket: str,
                                                 tmp_path: Path) -> None:
    credentials = seaweedfs_server.credentials_file(tmp_path)
    first = open_backend(s3_url(seaweedfs_server, seaweed_bucket, "shared/one"), create=True, credentials_file=credentials)
    second = open_backend(s3_url(seaweedfs_server, seaweed_bucket, "shared/one-more"), create=True,
                          credentials_file=credentials)
    first.save(Handle(ObjectType.SNAPSHOTS, "01"), b"1")
    second.save(Handle(ObjectType.SNAPSHOTS, "02"), b"2")
    assert [i.handle.name for i in first.list(ObjectType.SNAPSHOTS)] == ["01"]
    assert [i.handle.name for i in second.list(ObjectType.SNAPSHOTS)] == ["02"]


def test_append_only_bucket_is_probed(seaweedfs_server: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket(seaweedfs_server, deny_delete=True)
    backend = open_backend(s3_url(seaweedfs_server, bucket, "append"), create=True,
                           credentials_file=seaweedfs_server.credentials_file(tmp_path, writer=True))
    assert not backend.capabilities.delete
    handle = Handle(ObjectType.DATA, "0a" * 32)
    backend.save(handle, b"pack")
    with pytest.raises(PermanentStorageError, match="access denied"):
        backend.remove(handle)
    assert backend.load(handle) == b"pack"
