"""Byte layouts of the repository's objects (``docs/format.md`` is the prose version).

Every object is named by the BLAKE3-256 hash of its stored bytes (locks excepted),
so anyone can check an object's integrity without a key. Layouts, all integers
little-endian:

- ``config/<hash>``: ``"SRCF" v:u8 len:u32 json signature:64``; signed by the writer.
- ``keys/<hash>``: a plain age file (the ``age`` tool opens it) whose plaintext is
  JSON: the repository keys (id key, metadata key) or one run's data key.
- ``data/<hash>`` (a pack): ``"SRPK" v:u8 key-object-name:32`` then batches, each
  ``nonce:12 ciphertext tag:16`` of zstd(concatenated chunks), under the run's data
  key, associated data ``"SRPK" v key-object-name batch-id``.
- ``index/<hash>``, ``lists/<hash>``: ``magic:4 v:u8 nonce:12 ciphertext tag:16``
  of zstd(payload) under the metadata key, associated data ``magic v``.
- ``snapshots/<hash>``: ``"SRSN" v:u8 len:u32 header-json len:u32 sealed-body signature:64``.
- ``locks/<random>``: JSON, unsigned (a lock is advice, not trust).
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import numpy as np
import zstandard

from strongroom.errors import IntegrityError, RepositoryError
from strongroom.repository.keys import NONCE_SIZE, TAG_SIZE, unseal, unseal_array

FORMAT_VERSION = 1

CONFIG_MAGIC = b"SRCF"
PACK_MAGIC = b"SRPK"
INDEX_MAGIC = b"SRIX"
LIST_MAGIC = b"SRLS"
SNAPSHOT_MAGIC = b"SRSN"

PACK_HEADER_SIZE = 4 + 1 + 32

# One index entry: a chunk's keyed id and where its bytes are inside a batch.
ENTRY_DTYPE = np.dtype([("id", "S16"), ("batch", "<u4"), ("offset", "<u4"), ("length", "<u4")])
# One batch: which pack (number in the index object's pack table), where, and its id.
BATCH_DTYPE = np.dtype([("pack", "<u4"), ("offset", "<u8"), ("length", "<u4"), ("batch_id", "V16")])

# Signature domains: a signature over one kind of object never verifies as another.
SNAPSHOT_SIGNATURE_DOMAIN = b"strongroom snapshot signature v1\0"
CONFIG_SIGNATURE_DOMAIN = b"strongroom config signature v1\0"

_COMPRESSION_LEVEL = 1  # on passbolt's rows (mostly armored OpenPGP) as small as level 3, 1.7x faster
# Index objects and id lists are mostly keyed hashes, which do not compress: zstd's fast negative
# level keeps what little there is to gain (an index object of the benchmark: 0.87 of its size
# instead of 0.78) in a third of the time (7 ms instead of 21 ms for 7 MB; 0.3 s of a 1 GB
# first backup) and decompresses in a third of the time too. Readers do not depend on it.
ID_TABLE_LEVEL = -5
_COMPRESS_SLICE = 4 << 20  # input bytes compressed at a time

BytesLike = bytes | bytearray | memoryview | np.ndarray


def canonical_json(value: Any) -> bytes:
    """Deterministic compact JSON bytes (sorted keys) of ``value``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON ``data``; raises IntegrityError naming ``what`` when it is not JSON."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise IntegrityError(f"{what} holds no valid JSON") from None


_compressors = threading.local()


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """zstd (level 1) of ``data`` (one compressor kept per thread; zstd releases the GIL while it works)."""
    return _compressor(_COMPRESSION_LEVEL).compress(data)


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's compressor for ``level`` (made once)."""
    compressors: dict[int, zstandard.ZstdCompressor] | None = getattr(_compressors, "by_level", None)
    if compressors is None:
        compressors = _compressors.by_level = {}
    compressor = compressors.get(level)
    if compressor is None:
        compressor = compressors[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def decompress(data: bytes, what: str) -> bytes:
    """Undo :func:`compress`. Raises IntegrityError naming ``what`` when the frame is bad."""
    decompressor = getattr(_compressors, "decompressor", None)
    if decompressor is None:
        decompressor = _compressors.decompressor = zstandard.ZstdDecompressor()
    try:
        return decompressor.decompress(data)
    except zstandard.ZstdError:
        raise IntegrityError(f"{what} does not decompress: it is damaged") from None


def check_version(version: int, what: str) -> None:
    """Raise RepositoryError when ``version`` is newer than this program understands."""
    if version != FORMAT_VERSION:
        raise RepositoryError(
            f"{what} has format version {version}; this strongroom reads version {FORMAT_VERSION}",
            hint="upgrade strongroom",
        )


class SpooledBytes:
    """Bytes appended in pieces, kept in memory up to :data:`SPOOL_MEMORY` and in an unnamed
    temporary file (mode 0600, removed when closed) beyond: a part of a metadata payload too
    large to hold twice (a first backup's list of millions of ids). Raises OSError."""

    def __init__(self, directory: str | None = None) -> None:
        self._memory = bytearray()
        self._file: Any = None
        self._directory = directory
        self.nbytes = 0

    def __iadd__(self, data: BytesLike) -> SpooledBytes:
        with memoryview(data) as view, view.cast("B") as flat:  # type: ignore[arg-type]
            self.nbytes += flat.nbytes
            if self._file is None and len(self._memory) + flat.nbytes <= SPOOL_MEMORY:
                self._memory += flat
                return self
            if self._file is None:
                import tempfile

                self._file = tempfile.TemporaryFile(dir=self._directory)
                self._file.write(self._memory)
                self._memory = bytearray()
            self._file.write(flat)
        return self

    def __len__(self) -> int:
        return self.nbytes

    def pieces(self, size: int = 4 << 20) -> Iterator[bytes | bytearray]:
        """The bytes, in order, a piece at a time."""
        if self._file is None:
            yield self._memory
            return
        self._file.flush()
        self._file.seek(0)
        while piece := self._file.read(size):
            yield piece

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset`` (fewer at the end)."""
        if self._file is None:
            return bytes(self._memory[offset : offset + size])
        self._file.flush()
        return os.pread(self._file.fileno(), size, offset)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = bytearray()


SPOOL_MEMORY = 1 << 20

Part = BytesLike | SpooledBytes


def compress_parts(
    parts: Sequence[Part] | list[Part], output: bytearray | None = None, *, level: int = _COMPRESSION_LEVEL
) -> bytearray:
    """zstd (level 1 unless ``level`` says) of the concatenation of ``parts``, without concatenating
    them first, appended to ``output`` (a new bytearray by default), which is returned.

    The frame records its content size, so :func:`decompress` reads it like any other.
    The output grows a slice of input at a time (no list of pieces joined at the end);
    when ``parts`` is a list it is emptied as it is read, so that a caller that keeps no
    other reference has each part freed once compressed. A :class:`SpooledBytes` part is
    read a piece at a time and closed.
    """
    compressor = _compressor(level)
    size = 0
    for part in parts:
        if isinstance(part, SpooledBytes):
            size += part.nbytes
            continue
        with memoryview(part) as whole:  # type: ignore[arg-type]  # numpy arrays are buffers
            size += whole.nbytes
    stream = compressor.compressobj(size=size)
    if output is None:
        output = bytearray()
    queue = parts if isinstance(parts, list) else list(parts)
    queue.reverse()
    while queue:
        item = queue.pop()
        pieces = item.pieces() if isinstance(item, SpooledBytes) else (item,)
        for piece in pieces:
            with memoryview(piece) as part, part.cast("B") as view:  # type: ignore[arg-type]
                for start in range(0, len(view), _COMPRESS_SLICE):
                    output += stream.compress(view[start : start + _COMPRESS_SLICE])
        if isinstance(item, SpooledBytes):
            item.close()
        del item, pieces
    output += stream.flush()
    return output


_in_place: bool | None = None


def _encrypts_in_place() -> bool:
    """Whether this ``cryptography`` encrypts correctly when its output buffer is its input
    (OpenSSL allows exactly that overlap); probed once against a normal encryption."""
    global _in_place
    if _in_place is None:
        key, nonce, data = os.urandom(32), os.urandom(NONCE_SIZE), os.urandom(4099)
        expected = ChaCha20Poly1305(key).encrypt(nonce, data, b"probe")
        buffer = bytearray(data) + bytearray(TAG_SIZE)
        try:
            with memoryview(buffer) as view:
                ChaCha20Poly1305(key).encrypt_into(nonce, view[: len(data)], b"probe", view)
            _in_place = bytes(buffer) == expected
        except (ValueError, TypeError, BufferError):
            _in_place = False
    return _in_place


def seal_metadata(
    magic: bytes, metadata_key: bytes, payload: Part | Sequence[Part], *, level: int = _COMPRESSION_LEVEL
) -> bytearray:
    """The stored bytes of a metadata object (index or list) holding ``payload`` (or its parts,
    concatenated), compressed at zstd ``level`` (:data:`ID_TABLE_LEVEL` for tables of ids).

    A list of parts is emptied as it is compressed (see :func:`compress_parts`). The
    payload is compressed straight into the object's buffer and encrypted there, so a
    large object is held once (twice where in-place encryption is unavailable).
    """
    prefix = magic + bytes([FORMAT_VERSION])
    parts: list[Part]
    if isinstance(payload, list):
        parts = payload
    elif isinstance(payload, tuple):
        parts = list(payload)
    else:
        parts = [payload]  # type: ignore[list-item]  # a single bytes-like payload
    nonce = os.urandom(NONCE_SIZE)
    offset = len(prefix) + NONCE_SIZE
    stored = compress_parts(parts, bytearray(prefix + nonce), level=level)
    length = len(stored) - offset
    if _encrypts_in_place():
        stored += bytes(TAG_SIZE)
        with memoryview(stored) as view:
            ChaCha20Poly1305(metadata_key).encrypt_into(nonce, view[offset : offset + length], prefix, view[offset:])
        return stored
    sealed = bytearray(offset + length + TAG_SIZE)
    sealed[:offset] = stored[:offset]
    with memoryview(stored) as source, memoryview(sealed) as view:
        ChaCha20Poly1305(metadata_key).encrypt_into(nonce, source[offset:], prefix, view[offset:])
    return sealed


def open_metadata(magic: bytes, metadata_key: bytes, stored: bytes, what: str) -> bytes:
    """The payload of a metadata object. Raises IntegrityError (damaged, forged), RepositoryError (version)."""
    prefix = _metadata_prefix(magic, stored, what)
    plaintext = unseal(metadata_key, memoryview(stored)[5:], prefix, what)
    # A caller that passes ``stored`` without keeping it (``open_metadata(..., load(), ...)``)
    # has it freed here, before the payload is decompressed: two copies at a time, not three.
    del stored
    return decompress(plaintext, what)


# Objects at least this large are opened into numpy arrays (see open_metadata_array).
_ARRAY_OBJECT = 1 << 20


def open_metadata_array(magic: bytes, metadata_key: bytes, stored: bytes, what: str) -> bytes | np.ndarray:
    """The payload of a metadata object as :func:`open_metadata` gives it; a large one (an id list,
    an index object) decrypted and decompressed into numpy arrays (uint8) instead of bytes.

    numpy asks the kernel for huge pages for its large arrays; bytes get small ones. Opening
    a restore's id list chain (about 64 MB of payload) into bytes took about 16 000 page
    faults; into arrays, a few dozen (whether that saves system time depends on how the
    host backs the memory: on the benchmark machine restores took about 5 % less).
    Raises IntegrityError (damaged, forged), RepositoryError (version).
    """
    if len(stored) < _ARRAY_OBJECT:
        return open_metadata(magic, metadata_key, stored, what)
    prefix = _metadata_prefix(magic, stored, what)
    plaintext = unseal_array(metadata_key, memoryview(stored)[5:], prefix, what)
    del stored
    return decompress_array(plaintext, what)


def _metadata_prefix(magic: bytes, stored: bytes, what: str) -> bytes:
    """The magic and version of a stored metadata object (its associated data), checked."""
    if len(stored) < 5 or stored[:4] != magic:
        raise IntegrityError(f"{what} is not a {magic.decode()} object (damaged or misplaced)")
    check_version(stored[4], what)
    return bytes(stored[:5])


def decompress_array(data: bytes | memoryview | np.ndarray, what: str) -> np.ndarray:
    """:func:`decompress` into a numpy array (uint8) of the size the frame declares.
    Raises IntegrityError naming ``what`` when the frame is bad, or longer or shorter than it says."""
    if isinstance(data, np.ndarray):
        data = data.data  # a memoryview of the array
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        raise IntegrityError(f"{what} does not decompress: it is damaged") from None
    if size < 0:  # no declared size (our writers always declare it): the plain way
        return np.frombuffer(decompress(bytes(data), what), dtype=np.uint8)
    output = np.empty(size, dtype=np.uint8)
    decompressor = getattr(_compressors, "decompressor", None)
    if decompressor is None:
        decompressor = _compressors.decompressor = zstandard.ZstdDecompressor()
    try:
        with decompressor.stream_reader(data) as reader, output.data as view:
            filled = 0
            while filled < size:
                count = reader.readinto(view[filled:])
                if count == 0:
                    raise IntegrityError(f"{what} is shorter than its frame says: it is damaged")
                filled += count
            if reader.read(1):
                raise IntegrityError(f"{what} is longer than its frame says: it is damaged")
    except zstandard.ZstdError:
        raise IntegrityError(f"{what} does not decompress: it is damaged") from None
    return output


def pack_header(key_object_name: str) -> bytes:
    """The first bytes of a pack: magic, version, the data key object's name."""
    return PACK_MAGIC + bytes([FORMAT_VERSION]) + bytes.fromhex(key_object_name)


def parse_pack_header(header: bytes, what: str) -> str:
    """The data key object name from a pack's first bytes. Raises IntegrityError, RepositoryError."""
    if len(header) < PACK_HEADER_SIZE or header[:4] != PACK_MAGIC:
        raise IntegrityError(f"{what} is not a pack (damaged or misplaced)")
    check_version(header[4], what)
    return header[5:PACK_HEADER_SIZE].hex()


def batch_associated_data(key_object_name: str, batch_id: bytes) -> bytes:
    """Associated data binding a batch to its pack format, data key and batch id."""
    return PACK_MAGIC + bytes([FORMAT_VERSION]) + bytes.fromhex(key_object_name) + batch_id


def frame(*parts: bytes) -> bytes:
    """Length-prefixed (u32) concatenation of ``parts``."""
    return b"".join(struct.pack("<I", len(part)) + part for part in parts)


def unframe(data: bytes | memoryview, count: int, what: str) -> tuple[list[bytes], int]:
    """Split ``count`` length-prefixed parts off ``data``; return them and the bytes consumed.

    Raises IntegrityError when ``data`` is too short.
    """
    parts: list[bytes] = []
    position = 0
    for _ in range(count):
        if position + 4 > len(data):
            raise IntegrityError(f"{what} is truncated")
        (length,) = struct.unpack_from("<I", data, position)
        position += 4
        if position + length > len(data):
            raise IntegrityError(f"{what} is truncated")
        parts.append(bytes(data[position : position + length]))
        position += length
    return parts, position
