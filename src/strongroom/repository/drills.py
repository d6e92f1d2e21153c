"""Drill records: a drill machine's signed statement of what a drill of one snapshot proved.

A drill runs on a trusted machine holding an identity, never on the backup host.
That machine has its own Ed25519 *drill key* (a file of mode 0600, created on its
first drill). Its fingerprint is pinned in the configuration of every machine that
should believe its records (``[drill] trusted_keys``); a record signed by any other
key is ignored, so a storage attacker cannot plant a "passed" drill.

Layout of ``drills/<hash>`` (all integers little-endian)::

    "SRDR" version:u8 public-key:32 sealed-body signature:64

``sealed-body`` is a metadata object (:func:`~strongroom.repository.format.seal_metadata`,
magic ``SRDB``) holding the JSON record: the snapshot's name, the time, the checks
and their outcomes, restore time and snapshot age. The writer (the backup host) and
identity holders can read it; the storage cannot. The signature covers a domain
string and every byte before it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from strongroom.errors import ConfigError, IntegrityError
from strongroom.execute import register_secret
from strongroom.repository.format import FORMAT_VERSION, check_version, open_metadata, seal_metadata
from strongroom.repository.keys import b64decode, b64encode, object_name, verify_signature
from strongroom.storage.backend import Backend, Handle, ObjectType

DRILL_MAGIC = b"SRDR"
DRILL_BODY_MAGIC = b"SRDB"
SIGNATURE_DOMAIN = b"strongroom drill record signature v1\0"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def drill_fingerprint(public_key: bytes) -> str:
    """The printable fingerprint of a drill key's public half (another domain than writer keys)."""
    digest = hashlib.sha256(b"strongroom drill key\0" + public_key).hexdigest()
    return "-".join(digest[i : i + 4] for i in range(0, 64, 4))


@dataclass(frozen=True)
class DrillKey:
    """A drill machine's signing key."""

    signing_key: bytes

    @classmethod
    def generate(cls) -> DrillKey:
        """A new random drill key."""
        return cls(os.urandom(32))

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return Ed25519PrivateKey.from_private_bytes(self.signing_key).public_key().public_bytes_raw()

    @property
    def fingerprint(self) -> str:
        """What other machines pin in ``[drill] trusted_keys``."""
        return drill_fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.signing_key).sign(message)

    def save(self, path: Path) -> None:
        """Write the key to a new file of mode 0600 (never overwrites). Raises ConfigError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"type": "strongroom-drill-key", "version": 1, "signing_key": b64encode(self.signing_key)})
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"the drill key file {path} already exists") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")

    @classmethod
    def load(cls, path: Path) -> DrillKey:
        """Read a drill key file. Raises ConfigError when it is missing or not a drill key."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("type") != "strongroom-drill-key":
                raise ValueError("not a drill key")
            key = cls(b64decode(str(data["signing_key"]), "the drill key"))
            if len(key.signing_key) != 32:
                raise ValueError("the key has the wrong length")
        except FileNotFoundError:
            raise ConfigError(f"no drill key at {path}") from None
        except (OSError, ValueError, KeyError, TypeError, IntegrityError) as error:
            raise ConfigError(f"the drill key file {path} is not valid: {error}") from None
        register_secret(data["signing_key"])
        return key

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[DrillKey, bool]:
        """The key at ``path``, created when missing; the flag says whether it was created."""
        if path.exists():
            return cls.load(path), False
        key = cls.generate()
        key.save(path)
        return key, True


def encode_record(key: DrillKey, metadata_key: bytes, record: dict[str, Any]) -> bytes:
    """The stored bytes of a drill record."""
    body = seal_metadata(DRILL_BODY_MAGIC, metadata_key, json.dumps(record, sort_keys=True).encode("utf-8"))
    unsigned = DRILL_MAGIC + bytes([FORMAT_VERSION]) + key.public_key + body
    return unsigned + key.sign(SIGNATURE_DOMAIN + unsigned)


def save_record(backend: Backend, key: DrillKey, metadata_key: bytes, record: dict[str, Any]) -> str:
    """Store a signed drill record; return its object name. Raises StorageError."""
    stored = encode_record(key, metadata_key, record)
    name = object_name(stored)
    backend.save(Handle(ObjectType.DRILLS, name), stored)
    return name


def parse_record(name: str, stored: bytes, metadata_key: bytes, trusted: frozenset[str]) -> dict[str, Any]:
    """The record in ``stored`` when it is intact and signed by a trusted drill key.

    Returns the record with ``drill_key`` (the signer's fingerprint) and ``name`` added.
    Raises IntegrityError (damaged, forged, or signed by a key not in ``trusted``).
    """
    what = f"drill record {name[:12]}"
    if object_name(stored) != name:
        raise IntegrityError(f"{what} does not match its name: it is damaged")
    header = len(DRILL_MAGIC) + 1 + PUBLIC_KEY_SIZE
    if len(stored) < header + SIGNATURE_SIZE or stored[:4] != DRILL_MAGIC:
        raise IntegrityError(f"{what} is not a drill record")
    check_version(stored[4], what)
    public_key = stored[5:header]
    signer = drill_fingerprint(public_key)
    if signer not in trusted:
        raise IntegrityError(f"{what} is signed by drill key {signer}, which this configuration does not trust")
    unsigned, signature = stored[:-SIGNATURE_SIZE], stored[-SIGNATURE_SIZE:]
    verify_signature(public_key, signature, SIGNATURE_DOMAIN + unsigned, what)
    record = json.loads(open_metadata(DRILL_BODY_MAGIC, metadata_key, stored[header:-SIGNATURE_SIZE], what))
    record["drill_key"] = signer
    record["name"] = name
    return dict(record)


def list_records(backend: Backend, metadata_key: bytes, trusted: frozenset[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every trusted drill record (oldest first), and one sentence per record ignored.

    Raises StorageError.
    """
    records: list[dict[str, Any]] = []
    ignored: list[str] = []
    for info in backend.list(ObjectType.DRILLS):
        name = info.handle.name
        try:
            records.append(parse_record(name, backend.load(Handle(ObjectType.DRILLS, name)), metadata_key, trusted))
        except IntegrityError as error:
            ignored.append(error.message)
    records.sort(key=lambda record: str(record.get("finished", "")))
    return records, ignored
