"""Layers that wrap a backend, and the one function that stacks them.

Every backend the program uses comes from :func:`assemble`, which wraps the raw
backend in a fixed order (innermost first):

1. :class:`LoggingBackend`: one debug line per call (names and sizes, never contents);
2. :class:`LimitedBackend`: at most ``connections`` calls at once;
3. :class:`RetryingBackend`: transient errors are retried with exponential backoff.

Retry sits outside the limit so a call waiting out a backoff does not hold a
connection slot.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from strongroom.errors import PermanentStorageError, StorageError, UsageError
from strongroom.storage.backend import Backend, Capabilities, Handle, ObjectInfo, ObjectType
from strongroom.storage.factory import open_raw_backend
from strongroom.storage.location import parse_location, resolve_credentials

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Wrapper:
    """Forwards everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def close(self) -> None:
        self.inner.close()


class LoggingBackend(_Wrapper):
    """Logs each call at debug level: operation, handle, size and duration."""

    def _timed(self, what: str, call: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return call()
        finally:
            log.debug("%s (%.3f s)", what, time.monotonic() - started)

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._timed(f"save {handle} {len(data)} bytes", lambda: self.inner.save(handle, data))

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self._timed(f"load {handle} [{offset}:{length}]", lambda: self.inner.load(handle, offset, length))

    def stat(self, handle: Handle) -> ObjectInfo:
        return self._timed(f"stat {handle}", lambda: self.inner.stat(handle))

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        log.debug("list %s/", object_type.value)
        return self.inner.list(object_type)

    def remove(self, handle: Handle) -> None:
        self._timed(f"remove {handle}", lambda: self.inner.remove(handle))


class LimitedBackend(_Wrapper):
    """Lets at most ``connections`` calls reach the inner backend at once."""

    def __init__(self, inner: Backend, connections: int) -> None:
        super().__init__(inner)
        if connections < 1:
            raise UsageError("the storage connection limit must be at least 1")
        self._slots = threading.BoundedSemaphore(connections)

    def _limited(self, call: Callable[[], T]) -> T:
        with self._slots:
            return call()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._limited(lambda: self.inner.save(handle, data))

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self._limited(lambda: self.inner.load(handle, offset, length))

    def stat(self, handle: Handle) -> ObjectInfo:
        return self._limited(lambda: self.inner.stat(handle))

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        # A listing is consumed lazily; hold a slot only while it is materialised.
        with self._slots:
            items = list(self.inner.list(object_type))
        return iter(items)

    def remove(self, handle: Handle) -> None:
        self._limited(lambda: self.inner.remove(handle))


class RetryingBackend(_Wrapper):
    """Retries calls that fail with a transient StorageError, with jittered exponential backoff.

    ``attempts`` is the total number of tries; permanent errors (ObjectNotFound,
    PermanentStorageError) are raised at once. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._sleep = sleep

    def _retried(self, what: str, call: Callable[[], T]) -> T:
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except StorageError as error:
                if not error.transient or attempt == self.attempts:
                    raise
                wait = min(self.max_delay, delay) * random.uniform(0.5, 1.0)
                log.warning("%s failed (%s); retrying in %.1f s (attempt %d of %d)",
                            what, error.message, wait, attempt + 1, self.attempts)
                self._sleep(wait)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._retried(f"saving {handle}", lambda: self.inner.save(handle, data))

    def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self._retried(f"loading {handle}", lambda: self.inner.load(handle, offset, length))

    def stat(self, handle: Handle) -> ObjectInfo:
        return self._retried(f"stat {handle}", lambda: self.inner.stat(handle))

    def list(self, object_type: ObjectType) -> Iterator[ObjectInfo]:
        # Materialise inside the retry so a listing that fails halfway is retried whole.
        return iter(self._retried(f"listing {object_type.value}/", lambda: list(self.inner.list(object_type))))

    def remove(self, handle: Handle) -> None:
        self._retried(f"removing {handle}", lambda: self.inner.remove(handle))


def assemble(backend: Backend, *, connections: int = 4, attempts: int = 5) -> Backend:
    """Wrap ``backend`` in logging, a concurrency limit and retries (in that order, innermost first)."""
    layered: Backend = LoggingBackend(backend)
    layered = LimitedBackend(layered, connections)
    return RetryingBackend(layered, attempts=attempts)


def open_backend(
    url: str,
    *,
    create: bool = False,
    connections: int = 4,
    credentials: Mapping[str, str] | None = None,
    credentials_file: Path | None = None,
    environment: Mapping[str, str] | None = None,
) -> Backend:
    """Open the storage named by ``url``, layers included.

    ``url`` is any form :func:`strongroom.storage.location.parse_location` accepts
    (a folder, ``sftp://``, ``s3://``, ``rclone:``). ``credentials`` (from the
    configuration), ``credentials_file`` and ``environment`` (default: this
    process's) supply secrets; see :mod:`strongroom.storage.location`.
    Raises PermanentStorageError for an unknown scheme, a missing repository or
    refused access, ConfigError for an unsafe credentials or key file, StorageError.
    """
    location = parse_location(url)
    secrets = resolve_credentials(location, configured=credentials, credentials_file=credentials_file,
                                  environment=environment)
    raw = open_raw_backend(location, secrets, create=create, connections=connections)
    return assemble(raw, connections=connections)
