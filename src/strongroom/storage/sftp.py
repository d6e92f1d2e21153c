"""The SFTP backend (paramiko): objects as files on an SSH server.

Layout on the server is the local backend's (``ROOT/<type>/<name>``, data packs in
256 sub-folders). A save writes ``.tmp-<random>`` beside the object, then renames
it into place with OpenSSH's ``posix-rename`` extension (atomic, replaces an
existing object), so a reader never sees a partial object and a killed writer
leaves only a temporary file, which is never listed.

Security: the server's host key must be in a known_hosts file (``known_hosts=``
option, default ``~/.ssh/known_hosts``); an unknown or changed key is refused, never
learned. Authentication uses a private key file (``identity=`` option, default the
account's ``~/.ssh/id_ed25519``, ``id_ecdsa`` or ``id_rsa``; its passphrase from the
credentials) and/or a password from the credentials; key files readable by
others are refused. Neither a password nor a passphrase is ever logged.

Several SFTP channels share one SSH connection (one per concurrent call, up to
``connections``); a broken connection is dropped and re-opened on the next call.
Memory: a load holds the requested range, a save the object being saved, nothing else.
"""

from __future__ import annotations

import contextlib

import errno
import logging
import posixpath
import queue
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko

from strongroom.errors import ConfigError, ObjectNotFound, PermanentStorageError, StorageError
from strongroom.execute import mask
from strongroom.storage.backend import Capabilities, Handle, ObjectInfo, ObjectType
from strongroom.storage.location import Credentials, Location, check_private_file

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
_WRITE_BLOCK = 256 * 1024
_DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}


def _translate(error: BaseException, what: str) -> StorageError:
    """Map a paramiko or socket error to the storage error family."""
    if isinstance(error, StorageError):
        return error
    if isinstance(error, paramiko.AuthenticationException):
        return PermanentStorageError(f"{what}: the SFTP server refused the credentials",
                                     hint="check the user name, the key file or the password in the credentials")
    if isinstance(error, paramiko.BadHostKeyException):
        return PermanentStorageError(
            f"{what}: the SFTP server's host key does not match the known_hosts file",
            hint="if the server's key changed on purpose, update known_hosts; otherwise someone may be intercepting",
        )
    if isinstance(error, OSError) and error.errno is not None and not isinstance(error, socket.timeout):
        reason = error.strerror or str(error)
        if error.errno == errno.ENOENT:
            return ObjectNotFound(f"{what}: not found")
        if error.errno in _PERMANENT_ERRNOS:
            return PermanentStorageError(f"{what}: {mask(reason)}",
                                         hint="check the SFTP account's rights on the repository folder")
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            from strongroom.errors import NoSpaceError

            return NoSpaceError(f"{what}: the SFTP server's disk is full", hint="free space on the server")
    return StorageError(f"{what}: {mask(str(error) or type(error).__name__)}")


class _HostKeyRefused(paramiko.MissingHostKeyPolicy):
    """Refuses any host key not already in the known_hosts file."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise PermanentStorageError(
            f"the SFTP server {hostname} is not in the known_hosts file (its {key.get_name()} key is "
            f"{key.fingerprint})",
            hint="add the server's host key to the known_hosts file named by the known_hosts= option, "
            "after checking its fingerprint with the server's administrator",
        )


class SFTPBackend:
    """Objects as files under a folder on an SFTP server. Raises only the storage error family."""

    def __init__(
        self,
        location: Location,
        credentials: Credentials,
        *,
        create: bool = False,
        connections: int = 4,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Connect to the server named by ``location`` and check the repository folder.

        Raises PermanentStorageError (unknown host key, refused credentials, missing
        folder without ``create``), ConfigError (a key file readable by others),
        StorageError (the server cannot be reached).
        """
        self._location = location
        self._credentials = credentials
        self._timeout = float(location.option("timeout") or timeout)
        self._known_hosts = Path(location.option("known_hosts") or "~/.ssh/known_hosts").expanduser()
        self._identity = self._identity_file(location)
        self._root = location.path.rstrip("/") or "/"
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._generation = 0
        self._idle: queue.LifoQueue[tuple[int, paramiko.SFTPClient]] = queue.LifoQueue()
        self._max_channels = max(1, connections)
        self._known_directories: set[str] = set()
        self._closed = False
        self._connect()
        if create:
            self._run("creating the repository folder", self._create_layout)
        else:
            try:
                self._run("opening the repository folder", lambda sftp: sftp.stat(self._root))
            except ObjectNotFound:
                raise PermanentStorageError(
                    f"the repository folder {self._root} does not exist on {self.location}",
                    hint="check the repository location, or run 'strongroom init' to create it",
                ) from None

    @staticmethod
    def _identity_file(location: Location) -> Path | None:
        named = location.option("identity")
        if named:
            path = Path(named).expanduser()
            check_private_file(path, "SSH key file")
            return path
        for name in _DEFAULT_IDENTITIES:
            path = Path("~/.ssh").expanduser() / name
            if path.exists():
                check_private_file(path, "SSH key file")
                return path
        return None

    @property
    def location(self) -> str:
        user = f"{self._location.user}@" if self._location.user else ""
        return f"sftp://{user}{self._location.host}:{self._location.port}{self._root if self._root.startswith('/') else '/~/' + self._root}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(delete=True, atomic_save=True, local_path=False)

    # Connections.

    def _load_key(self) -> paramiko.PKey | None:
        if self._identity is None:
            return None
        try:
            return paramiko.PKey.from_path(self._identity, self._credentials.key_passphrase)
        except paramiko.PasswordRequiredException:
            raise ConfigError(f"the SSH key file {self._identity} is encrypted and no passphrase was given",
                              hint="put key_passphrase in the credentials file or STRONGROOM_SFTP_KEY_PASSPHRASE") from None
        except (paramiko.SSHException, OSError, ValueError) as error:
            raise ConfigError(f"cannot read the SSH key file {self._identity}: {mask(str(error))}") from None

    def _connect(self) -> None:
        """Open the SSH connection (under ``self._lock`` or from ``__init__``)."""
        if not self._known_hosts.is_file():
            raise PermanentStorageError(
                f"the known_hosts file {self._known_hosts} does not exist",
                hint="create it with the SFTP server's host key, or name another with the known_hosts= option",
            )
        key = self._load_key()
        if key is None and self._credentials.password is None:
            raise ConfigError(
                f"no SSH key file and no password for {self.location}",
                hint="name a key file with the identity= option, or put password in a credentials file",
            )
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(self._known_hosts))
        except (OSError, paramiko.SSHException) as error:
            raise PermanentStorageError(f"cannot read the known_hosts file {self._known_hosts}: {error}") from None
        client.set_missing_host_key_policy(_HostKeyRefused())
        try:
            client.connect(
                self._location.host,
                port=self._location.port or 22,
                username=self._location.user or None,
                pkey=key,
                password=self._credentials.password,
                look_for_keys=False,
                allow_agent=False,
                timeout=self._timeout,
                banner_timeout=self._timeout,
                auth_timeout=self._timeout,
                channel_timeout=self._timeout,
            )
        except Exception as error:  # paramiko raises many kinds; all are translated
            client.close()
            raise _translate(error, f"connecting to {self.location}") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)
        self._client = client
        self._generation += 1

    def _channel(self) -> tuple[int, paramiko.SFTPClient]:
        """An idle SFTP channel of the live connection, or a new one."""
        while True:
            try:
                generation, sftp = self._idle.get_nowait()
            except queue.Empty:
                break
            if generation == self._generation:
                return generation, sftp
            sftp.close()
        with self._lock:
            if self._closed:
                raise PermanentStorageError(f"the SFTP backend for {self.location} is closed")
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                if self._client is not None:
                    self._client.close()
                self._connect()
            assert self._client is not None
            try:
                sftp = self._client.open_sftp()
            except Exception as error:
                with contextlib.suppress(Exception):
                    self._client.close()
                raise _translate(error, f"opening an SFTP channel to {self.location}") from None
            sftp.get_channel().settimeout(self._timeout)
            return self._generation, sftp

    def _run(self, what: str, call: Any) -> Any:
        """Run ``call(sftp)`` on a pooled channel; translate errors; drop broken connections."""
        generation, sftp = self._channel()
        try:
            result = call(sftp)
        except Exception as error:
            translated = _translate(error, what)
            if translated.transient:
                # The channel or the connection may be broken: never reuse it. Closing a
                # broken one may itself fail (paramiko raises EOFError): that changes nothing.
                with contextlib.suppress(Exception):
                    sftp.close()
                with self._lock:
                    if generation == self._generation and self._client is not None:
                        with contextlib.suppress(Exception):
                            self._client.close()
                        self._client = None
                        self._known_directories.clear()
            else:
                self._idle.put((generation, sftp))
            raise translated from None
        self._idle.put((generation, sftp))
        return result

    # Paths.

    def _folder(self, handle: Handle) -> str:
        if handle.type is ObjectType.DATA:
            return posixpath.join(self._root, handle.type.value, handle.name[:2])
        return posixpath.join(self._root, handle.type.value)

    def _path(self, handle: Handle) -> str:
        return posixpath.join(self._folder(handle), handle.name)

    def _make_directories(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        """Create ``folder`` and its missing parents (mode 0700)."""
        if folder in self._known_directories:
            return
        missing = []
        current = folder
        while current not in ("", "/", "."):
            try:
                sftp.stat(current)
                break
            except FileNotFoundError:
                missing.append(current)
                current = posixpath.dirname(current)
        for path in reversed(missing):
            try:
                sftp.mkdir(path, mode=0o700)
            except OSError:
                sftp.stat(path)  # made by a concurrent save: fine; otherwise this raises
        self._known_directories.add(folder)

    def _create_layout(self, sftp: paramiko.SFTPClient) -> None:
        self._make_directories(sftp, self._root)
        for object_type in ObjectType:
            self._make_directories(sftp, posixpath.join(self._root, object_type.value))

    # The contract.

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        folder = self._folder(handle)
        final = self._path(handle)
        temporary = posixpath.join(folder, f".tmp-{secrets.token_hex(8)}")

        def write(sftp: paramiko.SFTPClient) -> None:
            try:
                stream = sftp.open(temporary, "wb")
            except FileNotFoundError:
                self._known_directories.discard(folder)
                self._make_directories(sftp, folder)
                stream = sftp.open(temporary, "wb")
            try:
                with stream:
                    stream.set_pipelined(True)
                    view = memoryview(data)
                    for start in range(0, len(view), _WRITE_BLOCK):
                        stream.write(view[start:start + _WRITE_BLOCK])
                    stream.chmod(0o600)
                sftp.posix_rename(temporary, final)
            except BaseException:
                try:
                    sftp.remove(temporary)
                except Exception:
                    pass  # the connection is gone or removal is denied: the temporary is never listed
                raise

        self._run(f"saving {handle}", write)

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStorageError(f"loading {handle}: negative offset or length")

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(self._path(handle), "rb") as stream:
                size = stream.stat().st_size or 0
                end = size if length is None else min(size, offset + length)
                if end <= offset:
                    return b""
                stream.seek(offset)
                wanted = end - offset
                stream.prefetch(end)
                parts = []
                while wanted > 0:
                    block = stream.read(min(wanted, 1 << 20))
                    if not block:
                        break
                    parts.append(block)
                    wanted -= len(block)
                return b"".join(parts)

        result: bytes = self._run(f"loading {handle}", read)
        return result

    def stat(self, handle: Handle) -> ObjectInfo:
        attributes = self._run(f"stat {handle}", lambda sftp: sftp.stat(self._path(handle)))
        return ObjectInfo(handle, int(attributes.st_size or 0))

    def _listing(self, sftp: paramiko.SFTPClient, folder: str) -> list[paramiko.SFTPAttributes]:
        try:
            return list(sftp.listdir_attr(folder))
        except FileNotFoundError:
            return []

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        top = posixpath.join(self._root, object_type.value)

        def gather(sftp: paramiko.SFTPClient) -> list[ObjectInfo]:
            import stat as stat_module

            folders = [top]
            if object_type is ObjectType.DATA:
                folders = [
                    posixpath.join(top, entry.filename) for entry in self._listing(sftp, top)
                    if entry.st_mode is not None and stat_module.S_ISDIR(entry.st_mode)
                ]
            found = []
            for folder in folders:
                for entry in self._listing(sftp, folder):
                    if entry.filename.startswith(".") or entry.st_mode is None or not stat_module.S_ISREG(entry.st_mode):
                        continue
                    try:
                        handle = Handle(object_type, entry.filename)
                    except PermanentStorageError:
                        continue  # a foreign file: not an object
                    found.append(ObjectInfo(handle, int(entry.st_size or 0)))
            return found

        items: list[ObjectInfo] = self._run(f"listing {object_type.value}/", gather)
        return iter(items)

    def remove(self, handle: Handle) -> None:
        self._run(f"removing {handle}", lambda sftp: sftp.remove(self._path(handle)))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            while True:
                try:
                    _generation, sftp = self._idle.get_nowait()
                except queue.Empty:
                    break
                sftp.close()
            if self._client is not None:
                self._client.close()
                self._client = None
