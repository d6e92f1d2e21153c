"""Round trips: what goes in comes out byte-identical, for dumps and files of every size class."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from repository_helpers import Setup, synthetic_dump


def _restore(setup: Setup, name: str, tmp_path: Path, reference: str = "latest") -> bytes:
    reader = setup.reader()
    snapshot = reader.load_snapshot(reference)
    target = tmp_path / f"restored-{os.urandom(4).hex()}"
    reader.restore_component(snapshot, name, target)
    return target.read_bytes()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"no newline at all",
        b"\n",
        b"\n\n\n",
        b"line\nlast line without newline",
        bytes(range(256)) * 100 + b"\0\0\0",
        b"dup\n" * 1000 + b"dup",
    ],
    ids=["empty", "one-line-no-newline", "newline", "blank-lines", "no-trailing-newline", "binary-nuls", "duplicates"],
)
def test_record_stream_round_trip(setup: Setup, tmp_path: Path, content: bytes) -> None:
    with setup.writer().begin_snapshot() as writer:
        statistics = writer.add_record_stream("database.sql", io.BytesIO(content))
        writer.commit()
    assert statistics.size == len(content)
    assert _restore(setup, "database.sql", tmp_path) == content


def test_huge_single_line_is_cut_and_restored(setup: Setup, tmp_path: Path) -> None:
    blob = b"INSERT INTO `avatars` VALUES (0x" + os.urandom(25 * 1024 * 1024).hex().encode() + b");\n"
    content = b"-- head\n" + blob + b"-- tail\n"
    assert len(blob) > 50 * 1024 * 1024
    with setup.writer().begin_snapshot() as writer:
        statistics = writer.add_record_stream("database.sql", io.BytesIO(content))
        writer.commit()
    assert statistics.chunks == 2 + (len(blob) + (1 << 20) - 1) // (1 << 20)
    assert statistics.row_counts == {"avatars": 1}
    assert _restore(setup, "database.sql", tmp_path) == content


@pytest.mark.parametrize("size", [0, 1, 4096, 1 << 20, 20 << 20], ids=["0B", "1B", "4KiB", "1MiB", "20MiB"])
def test_file_round_trip(setup: Setup, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with setup.writer().begin_snapshot() as writer:
        writer.add_file("etc/file.bin", source, mode=0o640, uid=33, gid=33, mtime=1_700_000_000.0)
        writer.commit({"kind": "test"})
    assert _restore(setup, "etc/file.bin", tmp_path) == data
    shown = setup.writer().load_snapshot("latest").component("etc/file.bin")
    assert (shown["mode"], shown["uid"], shown["gid"], shown["size"]) == (0o640, 33, 33, size)


def test_every_snapshot_restores_on_its_own(setup: Setup, tmp_path: Path) -> None:
    lines = synthetic_dump(3000)
    days = []
    import random

    generator = random.Random(5)
    for day in range(4):
        if day:
            for position in generator.sample(range(2, len(lines) - 1), 30):
                lines[position] = lines[position].replace(b"2024", b"2025")
            del lines[100:110]
            lines.insert(500, b"INSERT INTO `secrets` VALUES ('new%d');\n" % day)
        content = b"".join(lines)
        days.append(content)
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", io.BytesIO(content))
            writer.add_file("config.php", b"<?php return []; // day %d" % day)
            writer.commit()
    listing = setup.writer().list_snapshots()
    assert [h.sequence for h in listing.snapshots] == [1, 2, 3, 4]
    assert listing.problems == ()
    for header, content in zip(listing.snapshots, days):
        assert _restore(setup, "database.sql", tmp_path, header.name) == content
