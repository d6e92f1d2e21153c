"""Repository locks: objects under ``locks/`` saying who works on the repository.

A lock is JSON: host, pid, run id, kind (``exclusive`` for writers), and the time
it was last refreshed. A holder refreshes it every :data:`REFRESH_SECONDS`. A lock
is *stale*, and ignored (and removed when the storage allows), when it was not
refreshed for :data:`STALE_SECONDS`, or when it was made on this host by a process
that no longer exists. So a killed run never wedges unattended backups. On storage
that refuses deletes (append-only host credentials) a holder releases its lock by
overwriting it with ``{"released": true}``, which readers treat as no lock.

Taking a lock: save our lock, then list the others. If a live exclusive lock exists
that is older than ours (ties broken by name), ours is removed and we wait and
retry until ``wait_seconds`` have passed, then raise LockedError. Two runs that
race both see each other, and exactly one (the older) proceeds.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from strongroom.errors import LockedError, ObjectNotFound, StorageError
from strongroom.storage.backend import Backend, Handle, ObjectType

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0
STALE_SECONDS = 1800.0
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class LockInfo:
    """One lock object as read from the storage."""

    name: str
    host: str
    pid: int
    run_id: str
    kind: str
    created: float
    refreshed: float

    def is_stale(self, now: float, stale_seconds: float) -> bool:
        """True when the holder stopped refreshing it or (same host) its process is gone."""
        if now - self.refreshed > stale_seconds:
            return True
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def describe(self) -> str:
        """One line for error messages."""
        age = max(0.0, time.time() - self.created)
        return f"{self.kind} lock of pid {self.pid} on {self.host} (run {self.run_id[:8]}, {age:.0f} s old)"


def _read(backend: Backend, name: str) -> LockInfo | None:
    try:
        data: dict[str, Any] = json.loads(backend.load(Handle(ObjectType.LOCKS, name)))
        if data.get("released"):
            return None  # released on storage that refuses deletes
        return LockInfo(
            name, str(data["host"]), int(data["pid"]), str(data["run_id"]), str(data["kind"]),
            float(data["created"]), float(data["refreshed"]),
        )
    except ObjectNotFound:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring the unreadable lock object locks/%s", name)
        return None


def list_locks(backend: Backend) -> list[LockInfo]:
    """Every readable lock in the repository."""
    found = []
    for info in backend.list(ObjectType.LOCKS):
        lock = _read(backend, info.handle.name)
        if lock is not None:
            found.append(lock)
    return found


class RepositoryLock:
    """An exclusive lock held while writing; refreshed by a background thread. Use as a context manager."""

    def __init__(
        self,
        backend: Backend,
        *,
        kind: str = "exclusive",
        wait_seconds: float = 60.0,
        stale_seconds: float = STALE_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.backend = backend
        self.kind = kind
        self.wait_seconds = wait_seconds
        self.stale_seconds = stale_seconds
        self.refresh_seconds = refresh_seconds
        self.run_id = secrets.token_hex(16)
        self.name = secrets.token_hex(16)
        self.created = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def _save(self) -> None:
        body = {
            "host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id, "kind": self.kind,
            "created": self.created, "refreshed": time.time(),
        }
        self.backend.save(Handle(ObjectType.LOCKS, self.name), json.dumps(body).encode())

    def _remove_own(self) -> None:
        """Remove our lock; on storage that refuses deletes (append-only host credentials),
        overwrite it with a released marker, which every reader treats as no lock."""
        handle = Handle(ObjectType.LOCKS, self.name)
        if not self.backend.capabilities.delete:
            self.backend.save(handle, json.dumps({"released": True, "run_id": self.run_id}).encode())
            return
        try:
            self.backend.remove(handle)
        except ObjectNotFound:
            pass

    def _blocker(self) -> LockInfo | None:
        now = time.time()
        for other in list_locks(self.backend):
            if other.name == self.name:
                continue
            if other.is_stale(now, self.stale_seconds):
                log.info("removing the stale %s", other.describe())
                if self.backend.capabilities.delete:
                    try:
                        self.backend.remove(Handle(ObjectType.LOCKS, other.name))
                    except StorageError:
                        pass
                continue
            if self.kind != "exclusive" and other.kind != "exclusive":
                continue
            # The older lock wins; equal times are broken by name.
            if (other.created, other.name) < (self.created, self.name):
                return other
        return None

    def acquire(self) -> None:
        """Take the lock, waiting up to ``wait_seconds``. Raises LockedError, StorageError."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            self.created = time.time()
            self._save()
            blocker = self._blocker()
            if blocker is None:
                break
            self._remove_own()
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"the repository is locked by another run: {blocker.describe()}",
                    hint="wait for it to finish; a lock whose process died is ignored after "
                    f"{self.stale_seconds / 60:.0f} minutes (at once on the same host)",
                )
            time.sleep(POLL_SECONDS)
        self.held = True
        self._thread = threading.Thread(target=self._refresh_loop, name="strongroom-lock", daemon=True)
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self._save()
            except StorageError as error:
                log.warning("could not refresh the repository lock: %s", error.message)

    def release(self) -> None:
        """Stop refreshing and remove the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            self.held = False
            try:
                self._remove_own()
            except StorageError as error:
                log.warning("could not remove the repository lock: %s", error.message)

    def __enter__(self) -> RepositoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
