"""A backup's hashing helper: a second process that hashes rows and groups of shared buffers.

Hashing is a Python call per row (or group), which holds the GIL: threads cannot
share it, a process can. :class:`HashWorker` starts ``hashworker.py`` (standard
library and ``blake3`` only), shares the backup's read buffers with it as memory
files (``memfd``: nothing on disk, gone with the last process holding them), sends
it the keys on its standard input (never in an argument list), and hashes spans of
those buffers there while the backup's thread does the rest. Results come back in
submission order through a reader thread, as futures.

Where a helper cannot start (no ``memfd``, a failed start), :func:`start_hash_worker`
returns None and the backup hashes in its own thread. Raises RepositoryError from a
future when the helper died (the backup then fails; no snapshot is written).
"""

from __future__ import annotations

import collections
import fcntl
import json
import logging
import mmap
import os
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import IO

import numpy as np

from strongroom.errors import RepositoryError

log = logging.getLogger(__name__)

_TASK = struct.Struct("<III")
_STOP = 0xFFFFFFFF
_SCRIPT = Path(__file__).with_name("hashworker.py")
_PIPE_SIZE = 1 << 20


class HashWorker:
    """The helper process, its shared buffers (``buffers``, writable here, read-only there)
    and the tasks in flight."""

    def __init__(self, keys: list[tuple[str, bytes]], buffer_size: int, buffers: int) -> None:
        self.buffers: list[mmap.mmap] = []
        self._descriptors: list[int] = []
        self._keys = keys
        self._buffer_size = buffer_size
        try:
            for number in range(buffers):
                descriptor = os.memfd_create(f"strongroom-block-{number}", os.MFD_CLOEXEC)
                self._descriptors.append(descriptor)
                os.ftruncate(descriptor, buffer_size)
                self.buffers.append(mmap.mmap(descriptor, buffer_size))
        except OSError:
            self._close_descriptors()
            raise
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[int, Future[bytes]]] = collections.deque()
        self._arrived = threading.Condition(self._lock)
        self._failed: str | None = None

    @property
    def started(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        """Start the helper process (the buffers exist from the start; the process only when
        a stream proves long enough to be worth it). Raises RepositoryError."""
        if self.process is not None:
            return
        try:
            self.process = subprocess.Popen(  # our own interpreter and script; no secret in the arguments
                [sys.executable, "-I", str(_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=self._descriptors,
            )
        except OSError as error:
            raise RepositoryError(f"the hashing helper did not start: {error.strerror}") from None
        numbers = list(self._descriptors)
        self._close_descriptors()  # the maps (and the helper) keep the memory
        assert self.process.stdin is not None and self.process.stdout is not None
        self._input: IO[bytes] = self.process.stdin
        self._output: IO[bytes] = self.process.stdout
        for pipe in (self._input, self._output):
            # room for a few blocks' tasks and answers, so that submitting never waits for
            # the helper to finish what it is doing (a 64 KiB pipe holds less than one task)
            try:
                fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
            except OSError:
                pass
        settings = json.dumps(
            {"keys": [[algorithm, key.hex()] for algorithm, key in self._keys], "buffers": [[fd, self._buffer_size] for fd in numbers]}
        ).encode()
        self._write(struct.pack("<I", len(settings)) + settings)
        self._reader = threading.Thread(target=self._read_results, name="strongroom-hash-results", daemon=True)
        self._reader.start()

    def _close_descriptors(self) -> None:
        for descriptor in self._descriptors:
            os.close(descriptor)
        self._descriptors = []

    def _write(self, data: bytes) -> None:
        try:
            self._input.write(data)
            self._input.flush()
        except (BrokenPipeError, OSError):
            raise RepositoryError(
                "the hashing helper process ended unexpectedly", hint="see the log; the backup stored no snapshot"
            ) from None

    def submit(self, buffer: int, key: int, starts: np.ndarray, ends: np.ndarray) -> Future[bytes]:
        """Hash ``buffers[buffer][starts[k]:ends[k]]`` with key number ``key`` (and its algorithm:
        ``blake2b`` or ``blake3``, 16-byte digests); the future's result is the digests, in
        order. Raises RepositoryError."""
        future: Future[bytes] = Future()
        count = len(starts)
        if count == 0:
            future.set_result(b"")
            return future
        self.start()
        message = (
            _TASK.pack(buffer, key, count)
            + np.ascontiguousarray(starts, dtype="<i8").tobytes()
            + np.ascontiguousarray(ends, dtype="<i8").tobytes()
        )
        with self._lock:
            if self._failed is not None:
                raise RepositoryError(self._failed)
            self._pending.append((count, future))
            self._arrived.notify()
        self._write(message)
        return future

    def _read_results(self) -> None:
        while True:
            with self._lock:
                while not self._pending and self._failed is None:
                    self._arrived.wait()
                if self._failed is not None:
                    return
                count, future = self._pending[0]
            data = self._read_exactly(16 * count)
            with self._lock:
                self._pending.popleft()
                if data is None:
                    self._failed = "the hashing helper process ended unexpectedly"
                    failures = [future, *(waiting for _, waiting in self._pending)]
                    self._pending.clear()
                else:
                    failures = []
            if data is not None:
                future.set_result(data)
                continue
            for failed in failures:
                failed.set_exception(RepositoryError(self._failed or "", hint="the backup stored no snapshot"))
            return

    def _read_exactly(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            piece = self._output.read(size - len(data))
            if not piece:
                return None
            data += piece
        return bytes(data)

    def close(self) -> None:
        """Stop the helper (it also stops by itself when this process dies) and unmap the buffers."""
        with self._lock:
            if self._failed is None:
                self._failed = "the hashing helper was stopped"
            self._arrived.notify_all()
        if self.process is not None:
            try:
                self._input.write(_TASK.pack(0, 0, _STOP))
                self._input.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._output.close()
        self._close_descriptors()
        for buffer in self.buffers:
            try:
                buffer.close()
            except BufferError:
                pass  # a view is still held: the map goes with it
        self.buffers = []


def start_hash_worker(keys: list[tuple[str, bytes]], buffer_size: int, buffers: int) -> HashWorker | None:
    """A helper with its shared buffers (its process starts with the first task), or None
    where memory files are unavailable here (logged)."""
    if not hasattr(os, "memfd_create") or not _SCRIPT.exists():
        return None
    try:
        return HashWorker(keys, buffer_size, buffers)
    except (OSError, RepositoryError) as error:
        log.warning("hashing in one process: the hashing helper did not start (%s)", error)
        return None
