"""The local filesystem backend: one file per object under a root folder.

Layout: ``ROOT/<type>/<name>``, except data packs, which are spread over 256
sub-folders (``ROOT/data/<first two hex digits>/<name>``) so no folder grows
huge. Saves write a temporary file (``.tmp-*``, never listed), fsync it, rename
it into place and fsync the folder, so a killed writer leaves either the whole
object or nothing visible. Files are created with mode 0600 and folders 0700.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from strongroom.errors import NoSpaceError, ObjectNotFound, PermanentStorageError, StorageError
from strongroom.storage.backend import Capabilities, Handle, ObjectInfo, ObjectType

_WRITE_PIECE = 128 << 10

_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def _translate(error: OSError, what: str) -> StorageError:
    """Map an OSError to the storage error family (the message names ``what``)."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOENT:
        return ObjectNotFound(f"{what}: not found")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpaceError(f"{what}: the storage is full ({reason})", hint="free space or grow the filesystem")
    if error.errno in _PERMANENT_ERRNOS:
        return PermanentStorageError(f"{what}: {reason}", hint="check the folder's permissions and mount")
    return StorageError(f"{what}: {reason}")


class LocalBackend:
    """Objects as files under ``root``. Raises only the storage error family."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        """Use the repository folder ``root``; with ``create``, make it (and the type folders).

        Raises PermanentStorageError when ``root`` does not exist and ``create`` is false.
        """
        self.root = Path(root)
        if create:
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                for object_type in ObjectType:
                    (self.root / object_type.value).mkdir(mode=0o700, exist_ok=True)
            except OSError as error:
                raise _translate(error, f"creating the repository folder {self.root}") from None
        elif not self.root.is_dir():
            raise PermanentStorageError(
                f"the repository folder {self.root} does not exist",
                hint="check the repository location, or run 'strongroom init' to create it",
            )

    @property
    def location(self) -> str:
        return str(self.root)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(delete=True, atomic_save=True, local_path=True)

    def _path(self, handle: Handle) -> Path:
        if handle.type is ObjectType.DATA:
            return self.root / handle.type.value / handle.name[:2] / handle.name
        return self.root / handle.type.value / handle.name

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        path = self._path(handle)
        temporary = path.with_name(f".tmp-{secrets.token_hex(8)}")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data).cast("B")
                # in pieces: one large write makes the kernel take large page-cache folios,
                # which on some virtual machines are fresh memory and cost far more system time
                position = 0
                while position < len(view):
                    position += os.write(fd, view[position : position + _WRITE_PIECE])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, path)
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            try:
                temporary.unlink()
            except OSError:
                pass
            raise _translate(error, f"saving {handle}") from None

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStorageError(f"loading {handle}: negative offset or length")
        try:
            with open(self._path(handle), "rb") as stream:
                if offset:
                    stream.seek(offset)
                return stream.read() if length is None else stream.read(length)
        except OSError as error:
            raise _translate(error, f"loading {handle}") from None

    def stat(self, handle: Handle) -> ObjectInfo:
        try:
            return ObjectInfo(handle, self._path(handle).stat().st_size)
        except OSError as error:
            raise _translate(error, f"stat {handle}") from None

    def _entries(self, folder: Path) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as entries:
                yield from entries
        except FileNotFoundError:
            return
        except OSError as error:
            raise _translate(error, f"listing {folder}") from None

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        folder = self.root / object_type.value
        folders = [folder]
        if object_type is ObjectType.DATA:
            folders = [Path(entry.path) for entry in self._entries(folder) if entry.is_dir()]
        for current in folders:
            for entry in self._entries(current):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    handle = Handle(object_type, entry.name)
                    size = entry.stat().st_size
                except PermanentStorageError:
                    continue  # a foreign file: not an object
                except FileNotFoundError:
                    continue  # removed while listing
                except OSError as error:
                    raise _translate(error, f"listing {current}") from None
                yield ObjectInfo(handle, size)

    def remove(self, handle: Handle) -> None:
        try:
            self._path(handle).unlink()
        except OSError as error:
            raise _translate(error, f"removing {handle}") from None

    def close(self) -> None:
        pass
