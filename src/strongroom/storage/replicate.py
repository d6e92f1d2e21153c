"""Copying a repository's objects from one backend to another, in write order.

Objects are immutable and named by their content (locks aside), so a copy is
complete when every object of the source exists in the destination with the same
size. :func:`replicate` copies only what is missing, type by type in the
repository's write order (data, index, lists, keys, config, snapshots last), so
at every moment the destination is a consistent repository: a snapshot appears
there only after everything it refers to. Locks are never copied.

Memory: at most ``parallel`` objects are held at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from strongroom.storage.backend import Backend, Handle, ObjectType

WRITE_ORDER = (
    ObjectType.DATA,
    ObjectType.INDEX,
    ObjectType.LISTS,
    ObjectType.KEYS,
    ObjectType.CONFIG,
    ObjectType.SNAPSHOTS,
)


@dataclass(frozen=True)
class ReplicationResult:
    """What one replication did: objects and bytes copied, objects already present."""

    copied: int
    copied_bytes: int
    present: int


def replicate(
    source: Backend,
    destination: Backend,
    *,
    parallel: int = 4,
    on_bytes: Callable[[int], None] | None = None,
) -> ReplicationResult:
    """Copy every object of ``source`` missing from ``destination`` (or of another size), in write order.

    Returns the ReplicationResult. Raises StorageError (from either side) and stops at
    the first failure: what was copied stays, snapshots are copied last, so the
    destination never names an object it lacks.
    """
    copied = 0
    copied_bytes = 0
    present = 0
    counter = threading.Lock()

    def copy(handle: Handle) -> None:
        nonlocal copied, copied_bytes
        data = source.load(handle)
        destination.save(handle, data)
        with counter:
            copied += 1
            copied_bytes += len(data)
        if on_bytes is not None:
            on_bytes(len(data))

    for object_type in WRITE_ORDER:
        existing = {info.handle.name: info.size for info in destination.list(object_type)}
        missing = []
        for info in source.list(object_type):
            if existing.get(info.handle.name) == info.size:
                present += 1
            else:
                missing.append(info.handle)
        if not missing:
            continue
        # Every object of this type must be there before the next type starts.
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="strongroom-replicate") as pool:
            futures = [pool.submit(copy, handle) for handle in missing[:parallel]]
            queue = iter(missing[parallel:])
            while futures:
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # raises the first failure
                futures = list(pending)
                for _ in done:
                    following = next(queue, None)
                    if following is not None:
                        futures.append(pool.submit(copy, following))
    return ReplicationResult(copied, copied_bytes, present)
