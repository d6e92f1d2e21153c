"""The one place that turns a parsed location into a raw backend (no layers).

Each backend's library is imported only when a location needs it, so a local
repository never pays for boto3 or paramiko.
"""

from __future__ import annotations

from pathlib import Path

from strongroom.storage.backend import Backend
from strongroom.storage.location import Credentials, Location


def open_raw_backend(location: Location, credentials: Credentials, *, create: bool = False, connections: int = 4) -> Backend:
    """The backend for ``location``, without retry, limit or logging layers.

    Raises PermanentStorageError (bad location, refused access, missing repository
    without ``create``), ConfigError (unsafe key or credentials file), StorageError.
    """
    if location.scheme == "local":
        from strongroom.storage.local import LocalBackend

        return LocalBackend(Path(location.path), create=create)
    if location.scheme == "sftp":
        from strongroom.storage.sftp import SFTPBackend

        return SFTPBackend(location, credentials, create=create, connections=connections)
    if location.scheme == "s3":
        from strongroom.storage.s3 import S3Backend

        return S3Backend(location, credentials, create=create, connections=connections)
    if location.scheme == "rclone":
        from strongroom.storage.rclone import RcloneBackend

        return RcloneBackend(location, create=create)
    raise AssertionError(f"parse_location returned the unknown scheme {location.scheme}")  # pragma: no cover
