"""Materialising an id list through its chain of deltas: the composed operations give exactly
what applying each object to its base gives, and every inconsistency is refused."""

from __future__ import annotations

import random

import numpy as np
import pytest

from strongroom.errors import IntegrityError
from strongroom.repository import idlist
from strongroom.repository.index import split_ids


def _random_delta(generator: random.Random, base_length: int, label: int) -> tuple[list[int], bytes]:
    """Operations (flat start, count pairs) and literal ids of a delta against a list of ``base_length`` ids."""
    operations: list[int] = []
    literals = bytearray()
    for _ in range(generator.randint(0, 25)):
        if base_length and generator.random() < 0.6:
            start = generator.randrange(base_length)
            operations += [start, generator.randint(0, base_length - start)]
        else:
            count = generator.randint(0, 6)
            operations += [idlist.LITERAL, count]
            literals += b"".join(bytes([label, len(literals) // 16 % 256]) * 8 for _ in range(count))
    return operations, bytes(literals)


def _chain(generator: random.Random, depth: int) -> tuple[dict[str, idlist.IdList], str]:
    """A chain of ``depth`` + 1 list objects (a full list, then deltas); returns them and the top's name."""
    objects: dict[str, idlist.IdList] = {}
    full = b"".join(bytes([0, k % 256, k // 256]) + bytes(13) for k in range(generator.randint(0, 60)))
    name = f"{0:064x}"
    objects[name] = idlist.decode(idlist.encode(None, 0, len(full) // 16, [idlist.LITERAL, len(full) // 16], full), name)
    length = len(full) // 16
    for level in range(1, depth + 1):
        operations, literals = _random_delta(generator, length, level)
        count = sum(operations[1::2])
        base, name = name, f"{level:064x}"
        objects[name] = idlist.decode(idlist.encode(base, level, count, operations, literals), name)
        length = count
    return objects, name


def _applied(objects: dict[str, idlist.IdList], name: str) -> bytes | bytearray:
    """The list made the plain way: each object applied to its base's whole list."""
    decoded = objects[name]
    base = _applied(objects, decoded.base) if decoded.base is not None else None
    return decoded.apply(base, name)


@pytest.mark.parametrize("seed", range(3))
def test_composed_chains_give_the_applied_list(seed: int) -> None:
    generator = random.Random(seed)
    for _ in range(150):
        objects, top = _chain(generator, generator.randint(0, 5))
        applied = bytes(_applied(objects, top))
        assert bytes(idlist.materialize(top, objects.__getitem__)) == applied
        # the halves a restore takes: the same ids, split as split_ids splits them
        high, low = idlist.materialize_halves(top, objects.__getitem__)
        expected_high, expected_low = split_ids(np.frombuffer(applied, "S16"))
        assert np.array_equal(high, expected_high) and np.array_equal(low, expected_low)


def _replace(objects: dict[str, idlist.IdList], name: str, operations: list[int], literals: bytes, count: int) -> None:
    decoded = objects[name]
    objects[name] = idlist.decode(idlist.encode(decoded.base, decoded.depth, count, operations, literals), name)


def test_inconsistent_chains_are_refused() -> None:
    generator = random.Random(9)
    objects, top = _chain(generator, 0)
    base_name = top
    objects[f"{1:064x}"] = idlist.decode(idlist.encode(base_name, 1, 1, [0, 1], b""), "top")
    top = f"{1:064x}"
    full_length = objects[base_name].count
    cases = [
        ([full_length, 1], b"", 1, "outside its base"),  # copies past the base's end
        ([-5, 1], b"", 1, "outside its base"),  # a negative start that is not a literal run
        ([idlist.LITERAL, 2], bytes(16), 2, "past its literal ids"),
        ([idlist.LITERAL, 1], bytes(16), 2, "yields 1 ids but says 2"),
        ([idlist.LITERAL, -1, idlist.LITERAL, 2], bytes(32), 1, "negative operation length"),
    ]
    for operations, literals, count, message in cases:
        _replace(objects, top, operations, literals, count)
        with pytest.raises(IntegrityError, match=message):
            idlist.materialize(top, objects.__getitem__)
        with pytest.raises(IntegrityError, match=message):
            idlist.materialize_halves(top, objects.__getitem__)
    # A full list (no base) that copies.
    _replace(objects, base_name, [0, 1], b"", 1)
    with pytest.raises(IntegrityError, match="outside its base"):
        idlist.materialize(base_name, objects.__getitem__)
