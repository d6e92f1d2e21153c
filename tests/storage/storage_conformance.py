"""The storage conformance suite: every backend's test module plugs a factory into it.

Usage in a backend's test file::

    from storage_conformance import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend(self, tmp_path): return MyBackend(...)
"""

from __future__ import annotations

import threading

import pytest

from strongroom.errors import ObjectNotFound, PermanentStorageError
from strongroom.storage.backend import Backend, Handle, ObjectType


class BackendConformance:
    """The contract of :mod:`strongroom.storage.backend`, as tests."""

    def test_save_load_stat(self, backend: Backend) -> None:
        handle = Handle(ObjectType.DATA, "ab" * 32)
        backend.save(handle, b"hello world")
        assert backend.load(handle) == b"hello world"
        assert backend.stat(handle).size == 11

    def test_load_ranges(self, backend: Backend) -> None:
        handle = Handle(ObjectType.INDEX, "01" * 32)
        backend.save(handle, bytes(range(100)))
        assert backend.load(handle, 10, 5) == bytes(range(10, 15))
        assert backend.load(handle, 95) == bytes(range(95, 100))
        assert backend.load(handle, 98, 10) == bytes([98, 99])
        assert backend.load(handle, 200, 10) == b""

    def test_empty_object(self, backend: Backend) -> None:
        handle = Handle(ObjectType.LOCKS, "00")
        backend.save(handle, b"")
        assert backend.load(handle) == b""
        assert backend.stat(handle).size == 0

    def test_missing_objects_are_not_found(self, backend: Backend) -> None:
        handle = Handle(ObjectType.SNAPSHOTS, "ff" * 32)
        with pytest.raises(ObjectNotFound):
            backend.load(handle)
        with pytest.raises(ObjectNotFound):
            backend.stat(handle)
        with pytest.raises(ObjectNotFound):
            backend.remove(handle)
        assert not ObjectNotFound("x").transient

    def test_list_by_type(self, backend: Backend) -> None:
        names = {f"{i:02x}" * 32 for i in range(20)}
        for name in names:
            backend.save(Handle(ObjectType.DATA, name), name.encode())
        backend.save(Handle(ObjectType.KEYS, "aa"), b"k")
        listed = {info.handle.name: info.size for info in backend.list(ObjectType.DATA)}
        assert listed == {name: 64 for name in names}
        assert [i.handle.name for i in backend.list(ObjectType.KEYS)] == ["aa"]
        assert list(backend.list(ObjectType.LISTS)) == []

    def test_remove(self, backend: Backend) -> None:
        handle = Handle(ObjectType.LOCKS, "1234")
        backend.save(handle, b"x")
        backend.remove(handle)
        with pytest.raises(ObjectNotFound):
            backend.load(handle)
        assert list(backend.list(ObjectType.LOCKS)) == []

    def test_save_replaces(self, backend: Backend) -> None:
        handle = Handle(ObjectType.LOCKS, "abcd")
        backend.save(handle, b"first")
        backend.save(handle, b"second")
        assert backend.load(handle) == b"second"

    def test_invalid_names_are_refused(self) -> None:
        for name in ("", "../x", "ABC", "a/b", "x" * 10):
            with pytest.raises(PermanentStorageError):
                Handle(ObjectType.DATA, name)

    def test_concurrent_saves(self, backend: Backend) -> None:
        def save(number: int) -> None:
            for k in range(10):
                backend.save(Handle(ObjectType.DATA, f"{number:02x}{k:02x}"), bytes([number]) * 1000)

        threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(list(backend.list(ObjectType.DATA))) == 80
