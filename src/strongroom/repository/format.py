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
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import numpy as np
import zstandard

from strongroom.errors import IntegrityError, RepositoryError
from strongroom.repository.keys import NONCE_SIZE, TAG_SIZE, unseal

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
    compressor = getattr(_compressors, "compressor", None)
    if compressor is None:
        compressor = _compressors.compressor = zstandard.ZstdCompressor(level=_COMPRESSION_LEVEL)
    return compressor.compress(data)


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


def compress_parts(parts: Sequence[BytesLike] | list[BytesLike]) -> bytearray:
    """zstd (level 1) of the concatenation of ``parts``, without concatenating them first.

    The frame records its content size, so :func:`decompress` reads it like any other.
    The output grows a slice of input at a time (no list of pieces joined at the end);
    when ``parts`` is a list it is emptied as it is read, so that a caller that keeps no
    other reference has each part freed once compressed.
    """
    compressor = getattr(_compressors, "compressor", None)
    if compressor is None:
        compressor = _compressors.compressor = zstandard.ZstdCompressor(level=_COMPRESSION_LEVEL)
    size = 0
    for part in parts:
        with memoryview(part) as whole:  # type: ignore[arg-type]  # numpy arrays are buffers
            size += whole.nbytes
    stream = compressor.compressobj(size=size)
    output = bytearray()
    queue = parts if isinstance(parts, list) else list(parts)
    queue.reverse()
    while queue:
        with memoryview(queue.pop()) as part, part.cast("B") as view:  # type: ignore[arg-type]
            for start in range(0, len(view), _COMPRESS_SLICE):
                output += stream.compress(view[start : start + _COMPRESS_SLICE])
    output += stream.flush()
    return output


def seal_metadata(magic: bytes, metadata_key: bytes, payload: BytesLike | Sequence[BytesLike]) -> bytes:
    """The stored bytes of a metadata object (index or list) holding ``payload`` (or its parts, concatenated).

    A list of parts is emptied as it is compressed (see :func:`compress_parts`); the
    result is encrypted straight into place: at most two copies of the payload are
    held together.
    """
    prefix = magic + bytes([FORMAT_VERSION])
    parts: list[BytesLike]
    if isinstance(payload, list):
        parts = payload
    elif isinstance(payload, tuple):
        parts = list(payload)
    else:
        parts = [payload]  # type: ignore[list-item]  # a single bytes-like payload
    compressed = compress_parts(parts)
    nonce = os.urandom(NONCE_SIZE)
    stored = bytearray(len(prefix) + NONCE_SIZE + len(compressed) + TAG_SIZE)
    stored[: len(prefix)] = prefix
    stored[len(prefix) : len(prefix) + NONCE_SIZE] = nonce
    with memoryview(stored) as view:
        ChaCha20Poly1305(metadata_key).encrypt_into(nonce, compressed, prefix, view[len(prefix) + NONCE_SIZE :])
    del compressed
    return bytes(stored)  # a copy made once the compressed payload is freed: the peak is unchanged


def open_metadata(magic: bytes, metadata_key: bytes, stored: bytes, what: str) -> bytes:
    """The payload of a metadata object. Raises IntegrityError (damaged, forged), RepositoryError (version)."""
    if len(stored) < 5 or stored[:4] != magic:
        raise IntegrityError(f"{what} is not a {magic.decode()} object (damaged or misplaced)")
    check_version(stored[4], what)
    plaintext = unseal(metadata_key, memoryview(stored)[5:], stored[:5], what)
    # A caller that passes ``stored`` without keeping it (``open_metadata(..., load(), ...)``)
    # has it freed here, before the payload is decompressed: two copies at a time, not three.
    del stored
    return decompress(plaintext, what)


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
