"""The hashing helper process: same digests as in-process hashing, keys never in argv, a dead helper fails the backup cleanly."""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
from pathlib import Path

import blake3
import numpy as np
import pytest

from repository_helpers import Setup, make_setup, synthetic_dump

from strongroom.errors import RepositoryError
from strongroom.repository import hashing, repository as repository_module
from strongroom.repository.hashing import start_hash_worker


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path / "repository")


def test_digests_match_blake3_and_keys_stay_out_of_argv() -> None:
    keys = [("blake2b", os.urandom(32)), ("blake3", os.urandom(32))]
    worker = start_hash_worker(keys, 1 << 16, 2)
    assert worker is not None
    try:
        worker.start()
        assert worker.process is not None
        command_line = Path(f"/proc/{worker.process.pid}/cmdline").read_bytes()
        assert not any(key.hex().encode() in command_line for _, key in keys)
        generator = random.Random(5)
        data = bytes(generator.getrandbits(8) for _ in range(1 << 16))
        worker.buffers[1][: len(data)] = data
        starts = np.array(sorted(generator.sample(range(0, 60000), 300)), dtype=np.int64)
        ends = starts + np.array([generator.randrange(0, 5000) for _ in range(300)], dtype=np.int64)
        futures = [worker.submit(1, number, starts, ends) for number in (0, 1)]
        hashes = {"blake2b": lambda part, key: hashlib.blake2b(part, key=key, digest_size=16).digest(),
                  "blake3": lambda part, key: blake3.blake3(part, key=key).digest(16)}
        for (algorithm, key), future in zip(keys, futures):
            expected = b"".join(hashes[algorithm](data[s:e], key) for s, e in zip(starts.tolist(), ends.tolist()))
            assert future.result(timeout=30) == expected
        assert worker.submit(0, 0, starts[:0], ends[:0]).result() == b""
    finally:
        worker.close()
    assert worker.process is not None and worker.process.returncode == 0


def _list_ids(setup: Setup) -> bytes:
    reader = setup.writer()
    snapshot = reader.load_snapshot("latest")
    return bytes(reader.component_ids(snapshot.component("database.sql")))


def test_a_backup_with_the_helper_stores_what_one_without_it_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"".join(synthetic_dump(30000))
    results = []
    for helper in (True, False):
        setup = make_setup(tmp_path / f"helper-{helper}")
        if not helper:
            monkeypatch.setattr(repository_module, "start_hash_worker", lambda *arguments: None)
        with setup.writer().begin_snapshot() as writer:
            statistics = writer.add_record_stream("database.sql", io.BytesIO(content))
            assert (isinstance(writer._worker, hashing.HashWorker) and writer._worker.started) == helper
            writer.commit()
        reader = setup.reader()
        target = tmp_path / f"out-{helper}.sql"
        reader.restore_component(reader.load_snapshot("latest"), "database.sql", target)
        assert target.read_bytes() == content
        results.append((statistics.chunks, statistics.new_chunks, len(_list_ids(setup))))
    assert results[0] == results[1]


def test_a_dead_helper_fails_the_backup_and_leaves_no_snapshot(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    original = repository_module.start_hash_worker

    def start_and_remember(*arguments):  # noqa: ANN002, ANN202
        worker = original(*arguments)
        started.append(worker)
        return worker

    monkeypatch.setattr(repository_module, "start_hash_worker", start_and_remember)

    class KillsTheHelper(io.RawIOBase):
        def __init__(self) -> None:
            self.lines = iter(synthetic_dump(200000))
            self.reads = 0
            self.killed = False

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # noqa: ANN001
            self.reads += 1
            if not self.killed and started and started[0].process is not None:
                os.kill(started[0].process.pid, signal.SIGKILL)  # the helper runs from the second block on
                self.killed = True
            chunk = b"".join(line for _, line in zip(range(2000), self.lines))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    with pytest.raises(RepositoryError, match="hashing helper"):
        with setup.writer().begin_snapshot() as writer:
            writer.add_record_stream("database.sql", KillsTheHelper())
            writer.commit()
    assert setup.writer().list_snapshots().snapshots == ()
    assert started[0].process is not None and started[0].process.poll() is not None
    with setup.writer().begin_snapshot(lock_wait_seconds=0) as writer:
        writer.add_record_stream("database.sql", io.BytesIO(b"".join(synthetic_dump(100))))
        writer.commit()
    assert len(setup.writer().list_snapshots().snapshots) == 1


def test_no_helper_where_memory_files_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "memfd_create")
    assert hashing.start_hash_worker([("blake2b", os.urandom(32))], 4096, 2) is None
