"""The hashing helper process: keyed BLAKE3 of spans of shared buffers, for a backup.

Run as a script by :mod:`strongroom.repository.hashing` (``python -I hashworker.py``),
never imported by strongroom: it imports only the standard library and ``blake3``,
so it starts in a fraction of a second and holds ~10 MB. A backup's hashing of rows
and groups is its largest cost and runs one Python call per row; this process does
part of it on another core, in parallel with the backup's own thread.

Protocol (little-endian), on standard input and output:

- start: ``u32 length`` and that many bytes of JSON ``{"keys": [[algorithm, hex],
  ...], "buffers": [[fd, size], ...]}``: the keyed hashes (``blake2b`` or ``blake3``;
  keys never in the argument list) and the memory files holding the data buffers,
  which this process maps read-only;
- task: ``u32 buffer u32 key u32 count``, then ``count`` int64 starts and ``count``
  int64 ends; answer: ``count`` digests of 16 bytes, in order, of
  ``buffer[start:end]`` under key number ``key``;
- a task with ``count`` 0xFFFFFFFF, or the end of standard input: exit.
"""

from __future__ import annotations

import json
import mmap
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

_TASK = struct.Struct("<III")
_STOP = 0xFFFFFFFF


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        piece = stream.read(size - len(data))
        if not piece:
            return None
        data += piece
    return bytes(data)


def main() -> int:
    import blake3

    source = sys.stdin.buffer
    sink = sys.stdout.buffer
    header = _read_exactly(source, 4)
    if header is None:
        return 0
    (length,) = struct.unpack("<I", header)
    start = _read_exactly(source, length)
    if start is None:
        return 0
    settings = json.loads(start)
    import hashlib

    hashers: list[tuple[Callable[[], Any], bool]] = []
    for algorithm, key in settings["keys"]:
        if algorithm == "blake2b":
            hashers.append((hashlib.blake2b(key=bytes.fromhex(key), digest_size=16).copy, False))
        elif algorithm == "blake3":
            hashers.append((blake3.blake3(key=bytes.fromhex(key)).copy, True))
        else:
            return 2
    views = [memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ)) for fd, size in settings["buffers"]]
    while True:
        task = _read_exactly(source, _TASK.size)
        if task is None:
            return 0
        buffer, key, count = _TASK.unpack(task)
        if count == _STOP:
            return 0
        spans = _read_exactly(source, 16 * count)
        if spans is None:
            return 0
        numbers = memoryview(spans).cast("q")
        view = views[buffer]
        copy, sized = hashers[key]
        digests = bytearray()
        for start_at, end_at in zip(numbers[:count].tolist(), numbers[count:].tolist()):
            one = copy()
            one.update(view[start_at:end_at])
            digests += one.digest(16) if sized else one.digest()
        sink.write(digests)
        sink.flush()


if __name__ == "__main__":
    sys.exit(main())
