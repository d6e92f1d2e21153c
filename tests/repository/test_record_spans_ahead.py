"""record_spans_ahead: the same records as record_spans, read by a thread ahead of the caller."""

from __future__ import annotations

import io
import random
import threading

import pytest

from strongroom.repository.chunker import record_spans, record_spans_ahead


def _records(spans) -> list[bytes]:  # noqa: ANN001 - either generator
    return [bytes(item[0][start:end]) for item in spans for start, end in zip(item[1].tolist(), item[2].tolist())]


@pytest.mark.parametrize("shape", ["lines", "long lines", "no final newline", "empty", "one byte"])
def test_same_records_and_block_bytes_as_record_spans(shape: str) -> None:
    generator = random.Random(shape)
    if shape == "empty":
        content = b""
    elif shape == "one byte":
        content = b"x"
    else:
        lines = [bytes(generator.randrange(97, 123) for _ in range(generator.randrange(0, 300))) + b"\n" for _ in range(3000)]
        if shape == "long lines":
            lines[100] = b"y" * 5000 + b"\n"
            lines[2000] = b"z" * 12000 + b"\n"
        content = b"".join(lines)
        if shape == "no final newline":
            content += b"tail without newline"
    seen: list[bytes] = []
    expected = _records(record_spans(io.BytesIO(content), read_size=4096, max_record=1024))
    got = _records(record_spans_ahead(io.BytesIO(content), read_size=4096, max_record=1024, on_block=lambda view: seen.append(bytes(view))))
    assert got == expected
    assert b"".join(got) == content
    assert b"".join(seen) == content, "on_block sees every byte once, in order"


class _Failing(io.RawIOBase):
    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        self.calls += 1
        if self.calls > 3:
            raise OSError(5, "the dumper's pipe broke")
        buffer[:10] = b"row data\n\n"
        return 10


def test_a_read_error_reaches_the_caller() -> None:
    with pytest.raises(OSError, match="pipe broke"):
        for _ in record_spans_ahead(_Failing()):
            pass


def test_a_caller_that_stops_early_stops_the_reader() -> None:
    content = b"row\n" * 200000
    before = threading.active_count()
    spans = record_spans_ahead(io.BytesIO(content), read_size=4096)
    next(spans)
    spans.close()
    assert threading.active_count() == before
