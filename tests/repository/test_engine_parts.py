"""The vectorised parts of the record path, checked against simple per-record references."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import pytest

from strongroom.errors import IntegrityError
from strongroom.repository import idlist
from strongroom.repository.chunker import record_spans, record_spans_ahead
from strongroom.repository.index import KnownIds


def reference_records(data: bytes, max_record: int) -> list[bytes]:
    """Lines with their newline (the last one may lack it), each cut into pieces of ``max_record``."""
    lines = data.split(b"\n")
    whole = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    return [line[i : i + max_record] for line in whole for i in range(0, len(line), max_record)]


@pytest.mark.parametrize("spans", [record_spans, record_spans_ahead])
@pytest.mark.parametrize("seed", range(6))
def test_record_spans_cut_exactly_like_lines_cut_at_the_record_limit(seed: int, spans: Any) -> None:
    """Both readers (the plain one and the one reading ahead in a thread, which carries an
    unfinished line between its buffers by its own code) on adversarial data."""
    generator = random.Random(seed)
    for _ in range(150):
        data = bytes(generator.choice(b"ab\n") for _ in range(generator.randint(0, 300)))
        read_size, max_record = generator.randint(1, 40), generator.randint(1, 15)
        records = []
        for block, starts, ends, *_ in spans(io.BytesIO(data), read_size=read_size, max_record=max_record):
            assert starts[0] == 0 and np.array_equal(starts[1:], ends[:-1])
            records += [bytes(block[start:end]) for start, end in zip(starts.tolist(), ends.tolist())]
        assert records == reference_records(data, max_record), (data, read_size, max_record)


def build(positions: list[int], ids: list[bytes], generator: random.Random) -> idlist.ListBuilder:
    builder = idlist.ListBuilder()
    k = 0
    while k < len(positions):
        step = generator.randint(1, 12)
        builder.feed(np.array(positions[k : k + step], dtype=np.int64), b"".join(ids[k : k + step]))
        k += step
    return builder


@pytest.mark.parametrize("seed", range(4))
def test_list_builder_yields_the_list_with_the_fewest_runs(seed: int) -> None:
    generator = random.Random(seed)
    for _ in range(300):
        base_length = generator.randint(0, 40)
        base = [bytes([1, k]) * 8 for k in range(base_length)]
        positions: list[int] = []
        for _ in range(generator.randint(0, 90)):
            roll = generator.random()
            if roll < 0.3 or not base_length:
                positions.append(-1)
            elif roll < 0.8 and positions and 0 <= positions[-1] < base_length - 1:
                positions.append(positions[-1] + 1)
            else:
                positions.append(generator.randrange(base_length))
        ids = [base[p] if p >= 0 else bytes([2, k % 256]) * 8 for k, p in enumerate(positions)]
        builder = build(positions, ids, generator)
        operations = builder.operations()
        decoded = idlist.decode(
            idlist.encode("ab" * 32 if base_length else None, 1, builder.count, operations, builder.literals), "a list"
        )
        assert decoded.apply(b"".join(base) if base_length else None, "a list") == b"".join(ids)
        pairs = operations.tolist()
        for (start, count), (next_start, _) in zip(pairs, pairs[1:]):
            assert not (start == idlist.LITERAL and next_start == idlist.LITERAL)
            assert not (start >= 0 and next_start == start + count), "two copy runs that should be one"


def test_a_list_that_copies_outside_its_base_is_refused() -> None:
    builder = idlist.ListBuilder()
    builder.feed(np.array([5, 6], dtype=np.int64), bytes(32))
    decoded = idlist.decode(idlist.encode("ab" * 32, 1, 2, builder.operations(), builder.literals), "a list")
    with pytest.raises(IntegrityError, match="outside its base"):
        decoded.apply(bytes(16 * 3), "a list")


def test_known_ids_find_what_this_run_added_across_merged_levels() -> None:
    generator = random.Random(5)
    start = np.frombuffer(generator.randbytes(16 * 1000), "S16")
    known = KnownIds(start)
    added = []
    for size in [1, 7, 300, 2, 2, 2, 900, 5, 1]:
        ids = np.frombuffer(generator.randbytes(16 * size), "S16")
        known.add_many(ids)
        added.append(ids)
    everything = np.concatenate([start, *added])
    assert len(known) == len(everything)
    assert len(known.added) < 6, "levels are merged as they grow"
    probe = np.concatenate([everything, np.frombuffer(generator.randbytes(16 * 50), "S16")])
    found, base = known.lookup(probe, None)
    assert found[: len(everything)].all() and not found[len(everything) :].any()
    assert (base == -1).all()
    assert everything[17].tobytes() in known and generator.randbytes(16) not in known



def test_large_metadata_opens_into_arrays_and_bad_frames_are_refused() -> None:
    """Large list and index objects are decrypted and decompressed into numpy arrays; the
    result equals the plain path's, and a frame shorter or longer than it declares, or a
    damaged one, is an IntegrityError (never a short or padded payload)."""
    import os

    import zstandard

    from strongroom.repository.format import (
        LIST_MAGIC,
        decompress_array,
        open_metadata,
        open_metadata_array,
        seal_metadata,
    )

    key = os.urandom(32)
    payload = os.urandom(3 << 20) + bytes(1 << 20)
    stored = bytes(seal_metadata(LIST_MAGIC, key, payload))
    opened = open_metadata_array(LIST_MAGIC, key, stored, "a list")
    assert isinstance(opened, np.ndarray) and bytes(opened) == payload == open_metadata(LIST_MAGIC, key, stored, "a list")
    forged = bytearray(stored)
    forged[len(forged) // 2] ^= 1
    with pytest.raises(IntegrityError, match="does not authenticate"):
        open_metadata_array(LIST_MAGIC, key, bytes(forged), "a list")

    frame = zstandard.ZstdCompressor(level=1).compress(payload)
    assert bytes(decompress_array(frame, "x")) == payload
    with pytest.raises(IntegrityError, match="shorter than its frame|does not decompress"):
        decompress_array(frame[: len(frame) // 2], "x")
    with pytest.raises(IntegrityError, match="longer than its frame|does not decompress"):
        decompress_array(frame + zstandard.ZstdCompressor(level=1).compress(b"more"), "x")
    with pytest.raises(IntegrityError, match="does not decompress"):
        decompress_array(b"not a zstd frame at all", "x")
