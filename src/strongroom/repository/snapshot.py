"""Snapshots: a signed header, a sealed body, and the chain they form.

Stored bytes: ``"SRSN" version:u8``, then the header (u32 length + canonical JSON),
then the body (u32 length + ChaCha20-Poly1305 under the metadata key of
zstd(JSON), associated data = every byte before the body), then a 64-byte Ed25519
signature by the writer over the signature domain and every byte before it.

The header is readable by anyone (the storage included): kind, format version,
repository id, sequence number, predecessor snapshot name, time, the writer's
fingerprint and public key, and the name of the repository-keys object. The body
(components, chunk lists, sizes, row counts, the caller's manifest) is readable by
the writer and by identity holders.

A reader trusts a snapshot only if the header's public key has the fingerprint
pinned in its local configuration AND the signature verifies: a key found in the
storage is never trusted by itself.

``kind`` is ``"snapshot"``; prune will add ``"removal"`` records (signed the same
way, listing the snapshot names it removed on purpose) so intended removals are
not reported as gaps in the chain.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from strongroom.errors import IntegrityError
from strongroom.repository.format import (
    FORMAT_VERSION,
    SNAPSHOT_MAGIC,
    SNAPSHOT_SIGNATURE_DOMAIN,
    canonical_json,
    check_version,
    compress,
    decompress,
    parse_json,
    unframe,
)
from strongroom.repository.keys import (
    SIGNATURE_SIZE,
    WriterKey,
    b64decode,
    fingerprint,
    seal,
    unseal,
    verify_signature,
)

KIND_SNAPSHOT = "snapshot"
KIND_REMOVAL = "removal"


@dataclass(frozen=True)
class SnapshotHeader:
    """The public, signed part of a snapshot."""

    name: str
    kind: str
    repository: str
    sequence: int
    predecessor: str | None
    time: str
    writer: str
    keys: str
    removed: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the snapshot's name, as shown to people."""
        return self.name[:8]


@dataclass(frozen=True)
class ParsedSnapshot:
    """A snapshot object split into its parts, signature verified."""

    header: SnapshotHeader
    signed_prefix: bytes
    sealed_body: bytes


def encode_snapshot(writer: WriterKey, header: dict[str, Any], body: dict[str, Any]) -> bytes:
    """The stored bytes of a snapshot with ``header`` (public) and ``body`` (sealed), signed."""
    header = dict(header, version=FORMAT_VERSION, writer=writer.fingerprint)
    from strongroom.repository.keys import b64encode

    header["writer_public_key"] = b64encode(writer.public_key)
    header_bytes = canonical_json(header)
    prefix = SNAPSHOT_MAGIC + bytes([FORMAT_VERSION]) + struct.pack("<I", len(header_bytes)) + header_bytes
    sealed = seal(writer.metadata_key, compress(canonical_json(body)), prefix)
    unsigned = prefix + struct.pack("<I", len(sealed)) + sealed
    return unsigned + writer.sign(SNAPSHOT_SIGNATURE_DOMAIN + unsigned)


def parse_snapshot(name: str, stored: bytes, pinned_fingerprint: str) -> ParsedSnapshot:
    """Parse and authenticate a snapshot against the pinned writer fingerprint.

    Raises IntegrityError when it is malformed, signed by another key, or its
    signature does not verify; RepositoryError for an unknown format version.
    """
    what = f"snapshot {name[:8]}"
    if len(stored) < 5 + 8 + SIGNATURE_SIZE or stored[:4] != SNAPSHOT_MAGIC:
        raise IntegrityError(f"{what} is not a snapshot object (damaged or truncated)")
    check_version(stored[4], what)
    view = memoryview(stored)[5 : len(stored) - SIGNATURE_SIZE]
    (header_bytes, sealed), consumed = unframe(view, 2, what)
    if consumed != len(view):
        raise IntegrityError(f"{what} has trailing bytes")
    header = parse_json(header_bytes, what)
    if not isinstance(header, dict):
        raise IntegrityError(f"{what} has a malformed header")
    try:
        public_key = b64decode(str(header["writer_public_key"]), f"{what} writer key")
        claimed = str(header["writer"])
    except KeyError:
        raise IntegrityError(f"{what} has no writer key in its header") from None
    if fingerprint(public_key) != pinned_fingerprint or claimed != pinned_fingerprint:
        raise IntegrityError(
            f"{what} is signed by a writer key that is not the pinned one ({claimed[:19]}...): refused",
            hint="a snapshot not signed by the pinned writer key may be forged; "
            "check writer_fingerprint in the configuration against the recovery sheet",
        )
    signature = stored[len(stored) - SIGNATURE_SIZE :]
    unsigned = stored[: len(stored) - SIGNATURE_SIZE]
    verify_signature(public_key, signature, SNAPSHOT_SIGNATURE_DOMAIN + unsigned, what)
    check_version(int(header.get("version", 0)), what)
    try:
        parsed_header = SnapshotHeader(
            name=name,
            kind=str(header["kind"]),
            repository=str(header["repository"]),
            sequence=int(header["sequence"]),
            predecessor=header.get("predecessor"),
            time=str(header["time"]),
            writer=claimed,
            keys=str(header["keys"]),
            removed=tuple(header.get("removed", ())),
        )
    except (KeyError, ValueError, TypeError):
        raise IntegrityError(f"{what} has a malformed header") from None
    prefix_length = 5 + 4 + len(header_bytes)
    return ParsedSnapshot(parsed_header, stored[:prefix_length], sealed)


def open_body(parsed: ParsedSnapshot, metadata_key: bytes) -> dict[str, Any]:
    """The decrypted body of an authenticated snapshot. Raises IntegrityError."""
    what = f"snapshot {parsed.header.short_id}"
    body = parse_json(decompress(unseal(metadata_key, parsed.sealed_body, parsed.signed_prefix, what), what), what)
    if not isinstance(body, dict):
        raise IntegrityError(f"{what} has a malformed body")
    return body
