"""Locks on storage that refuses deletes (append-only host credentials): released by overwriting."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import LockedError, PermanentStorageError
from strongroom.repository.lock import RepositoryLock, list_locks
from strongroom.storage.backend import Capabilities, Handle, ObjectInfo, ObjectType
from strongroom.storage.layers import open_backend


class NoDelete:
    """The local backend behind credentials that may write but never delete."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(self.inner.capabilities, delete=False)

    def remove(self, handle: Handle) -> None:
        raise PermanentStorageError(f"access denied: deleting {handle}")

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        return self.inner.list(object_type)


def test_a_released_lock_does_not_block_the_next_run(tmp_path: Path) -> None:
    backend = NoDelete(open_backend(str(tmp_path / "repository"), create=True))
    first = RepositoryLock(backend, wait_seconds=0)  # type: ignore[arg-type]
    with first:
        assert [lock.run_id for lock in list_locks(backend)] == [first.run_id]  # type: ignore[arg-type]
        with pytest.raises(LockedError):
            RepositoryLock(backend, wait_seconds=0).acquire()  # type: ignore[arg-type]
    assert list_locks(backend) == []  # type: ignore[arg-type]
    # The same process (same pid, so not stale) takes the lock again at once.
    with RepositoryLock(backend, wait_seconds=0) as second:  # type: ignore[arg-type]
        assert second.held
