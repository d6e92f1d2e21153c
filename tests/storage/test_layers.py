"""The retry and limit layers, on a real local backend with injected failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from strongroom.errors import ObjectNotFound, StorageError
from strongroom.storage.backend import Handle, ObjectType
from strongroom.storage.layers import LimitedBackend, RetryingBackend
from strongroom.storage.local import LocalBackend


class Flaky(LocalBackend):
    """A local backend whose first ``failures`` loads fail transiently."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root, create=True)
        self.failures = failures
        self.calls = 0

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise StorageError("connection reset")
        return super().load(handle, offset, length)


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    inner = Flaky(tmp_path / "repo", failures=2)
    handle = Handle(ObjectType.KEYS, "aa")
    inner.save(handle, b"data")
    sleeps: list[float] = []
    backend = RetryingBackend(inner, attempts=3, first_delay=0.1, sleep=sleeps.append)
    assert backend.load(handle) == b"data"
    assert inner.calls == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.9


def test_retries_give_up(tmp_path: Path) -> None:
    inner = Flaky(tmp_path / "repo", failures=10)
    backend = RetryingBackend(inner, attempts=3, sleep=lambda _: None)
    with pytest.raises(StorageError, match="connection reset"):
        backend.load(Handle(ObjectType.KEYS, "aa"))
    assert inner.calls == 3


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    inner = LocalBackend(tmp_path / "repo", create=True)
    sleeps: list[float] = []
    backend = RetryingBackend(inner, attempts=5, sleep=sleeps.append)
    with pytest.raises(ObjectNotFound):
        backend.load(Handle(ObjectType.KEYS, "aa"))
    assert sleeps == []


class Slow(LocalBackend):
    def __init__(self, root: Path) -> None:
        super().__init__(root, create=True)
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def save(self, handle: Handle, data: bytes) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.02)
        super().save(handle, data)
        with self.lock:
            self.active -= 1


def test_concurrency_limit(tmp_path: Path) -> None:
    inner = Slow(tmp_path / "repo")
    backend = LimitedBackend(inner, 2)
    threads = [
        threading.Thread(target=backend.save, args=(Handle(ObjectType.DATA, f"{n:04x}"), b"x")) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert inner.peak == 2
