"""Keys: the writer key file, recipients, identities, and the small crypto helpers.

Three secrets live in the writer key file (mode 0600, on the backup host):

- the Ed25519 *signing key* that signs snapshots and the repository config;
- the *id key* (32 bytes) that keys BLAKE3 for chunk ids and content hashes, so
  the storage cannot confirm guessed content;
- the *metadata key* (32 bytes) that encrypts writer-readable metadata (snapshot
  bodies, index objects, id lists).

The id key and metadata key are also stored in the repository, age-encrypted to
the recipients (the ``keys/`` object named in every snapshot header), so any
identity holder gets them. Each run's *data key* is drawn at random, saved
age-encrypted to the recipients and forgotten: only an identity opens data.

Raises only the strongroom error family: IdentityError for identities and
recipients that do not parse or do not open the data, ConfigError for a bad
writer key file.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pyrage
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from strongroom.errors import ConfigError, IdentityError, IntegrityError, UsageError
from strongroom.execute import register_secret

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
SIGNATURE_SIZE = 64
ID_SIZE = 16
WRITER_KEY_FORMAT = "strongroom-writer-key"

# age identities and recipients are any of these.
Recipient = pyrage.x25519.Recipient | pyrage.ssh.Recipient
Identity = pyrage.x25519.Identity | pyrage.ssh.Identity


def b64encode(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str) -> bytes:
    """Decode base64 ``text``; raises IntegrityError naming ``what`` when it is not base64."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise IntegrityError(f"{what} is not valid base64") from None


def fingerprint(public_key: bytes) -> str:
    """The printable fingerprint of a raw Ed25519 public key: SHA-256 in 16 groups of 4 hex digits."""
    digest = hashlib.sha256(b"strongroom writer key\0" + public_key).hexdigest()
    return "-".join(digest[i : i + 4] for i in range(0, 64, 4))


# --- symmetric helpers ------------------------------------------------------------


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """Encrypt with ChaCha20-Poly1305 under a random nonce; return nonce + ciphertext + tag."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated)


def unseal(key: bytes, sealed: bytes | memoryview, associated: bytes, what: str) -> bytes:
    """Decrypt what :func:`seal` made. Raises IntegrityError naming ``what`` when it does not authenticate."""
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise IntegrityError(f"{what} is truncated")
    try:
        # The ciphertext is passed as a view: no copy of a large object (an index, a list) is made.
        return ChaCha20Poly1305(key).decrypt(bytes(sealed[:NONCE_SIZE]), memoryview(sealed)[NONCE_SIZE:], associated)
    except InvalidTag:
        raise IntegrityError(f"{what} does not authenticate: it is damaged or forged") from None


def unseal_array(key: bytes, sealed: bytes | memoryview, associated: bytes, what: str) -> np.ndarray:
    """:func:`unseal` into a numpy array (uint8): large arrays get huge pages, bytes do not.
    Raises IntegrityError naming ``what`` when it does not authenticate."""
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise IntegrityError(f"{what} is truncated")
    output = np.empty(len(sealed) - NONCE_SIZE - TAG_SIZE, dtype=np.uint8)
    try:
        with memoryview(sealed) as view:
            ChaCha20Poly1305(key).decrypt_into(bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], associated, output)
    except InvalidTag:
        raise IntegrityError(f"{what} does not authenticate: it is damaged or forged") from None
    return output


def keyed_hasher(id_key: bytes, context: bytes) -> Any:
    """A BLAKE3 hasher keyed with a key derived from ``id_key`` for one purpose (``context``)."""
    derived = blake3.blake3(context, key=id_key).digest()
    return blake3.blake3(key=derived)


def object_name(stored: bytes | bytearray | memoryview) -> str:
    """The storage name of an object: unkeyed BLAKE3-256 of its stored bytes, in hex."""
    return blake3.blake3(stored, max_threads=blake3.blake3.AUTO if len(stored) > 1 << 22 else 1).hexdigest()


# --- the writer key ---------------------------------------------------------------


@dataclass(frozen=True)
class WriterKey:
    """The backup host's secrets: signing key, id key, metadata key, and the repository they belong to."""

    signing_key: bytes
    id_key: bytes
    metadata_key: bytes
    repository_id: str

    @classmethod
    def generate(cls, repository_id: str) -> WriterKey:
        """A fresh writer key for the repository ``repository_id``."""
        return cls(os.urandom(KEY_SIZE), os.urandom(KEY_SIZE), os.urandom(KEY_SIZE), repository_id)

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return Ed25519PrivateKey.from_private_bytes(self.signing_key).public_key().public_bytes_raw()

    @property
    def fingerprint(self) -> str:
        """The fingerprint pinned in the configuration and printed for the recovery sheet."""
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.signing_key).sign(message)

    def to_text(self) -> str:
        """The key file's content (JSON). Secret: write it only with mode 0600."""
        return json.dumps(
            {
                "format": WRITER_KEY_FORMAT,
                "version": 1,
                "repository": self.repository_id,
                "signing_key": b64encode(self.signing_key),
                "id_key": b64encode(self.id_key),
                "metadata_key": b64encode(self.metadata_key),
                "fingerprint": self.fingerprint,
            },
            indent=2,
        ) + "\n"

    def save(self, path: Path) -> None:
        """Write the key file at ``path`` (mode 0600, atomically, never overwriting). Raises UsageError if it exists."""
        if path.exists():
            raise UsageError(
                f"the writer key file {path} already exists",
                hint="name another file with --writer-key, or remove the old one if it is no longer needed",
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.to_text())
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # fails if ``path`` appeared meanwhile: never overwrite a key
        temporary.unlink()

    @classmethod
    def load(cls, path: Path) -> WriterKey:
        """Read the key file at ``path``. Raises ConfigError when it is missing, readable by others, or invalid."""
        try:
            info = path.stat()
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"the writer key file {path} does not exist",
                hint="check [repository] writer_key in the configuration",
            ) from None
        except OSError as error:
            raise ConfigError(f"cannot read the writer key file {path}: {error.strerror}") from None
        if info.st_mode & 0o077:
            raise ConfigError(
                f"the writer key file {path} is readable by other users (mode {info.st_mode & 0o777:o})",
                hint=f"run: chmod 600 {path}",
            )
        try:
            data = json.loads(text)
            if data.get("format") != WRITER_KEY_FORMAT or data.get("version") != 1:
                raise ValueError("not a strongroom writer key")
            key = cls(
                b64decode(data["signing_key"], "signing_key"),
                b64decode(data["id_key"], "id_key"),
                b64decode(data["metadata_key"], "metadata_key"),
                str(data["repository"]),
            )
            if not all(len(k) == KEY_SIZE for k in (key.signing_key, key.id_key, key.metadata_key)):
                raise ValueError("a key has the wrong length")
        except (ValueError, KeyError, TypeError, IntegrityError) as error:
            raise ConfigError(f"the writer key file {path} is not valid: {error}") from None
        register_secret(data["signing_key"])
        register_secret(data["id_key"])
        register_secret(data["metadata_key"])
        return key


def verify_signature(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    """Check an Ed25519 signature. Raises IntegrityError naming ``what`` when it does not verify."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise IntegrityError(
            f"{what} is not signed by the pinned writer key: it is forged or damaged",
            hint="do not trust it; check the writer fingerprint in the configuration and the recovery sheet",
        ) from None


# --- recipients -------------------------------------------------------------------


def parse_recipient(text: str) -> Recipient:
    """Parse one recipient: ``age1...`` or an SSH public key line (ed25519, RSA). Raises IdentityError."""
    text = text.strip()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as error:
        raise IdentityError(f"the recipient {text[:40]!r} is not valid: {error}") from None
    raise IdentityError(
        f"the recipient {text[:40]!r} is not an age (age1...) or SSH (ssh-ed25519, ssh-rsa) public key",
        hint="give a public key, never an identity (private key)",
    )


def expand_recipients(values: list[str]) -> list[str]:
    """Recipient strings from the command line: each a key, or a file of keys (one a line, # comments).

    Returns the normalised key strings (validated). Raises IdentityError, UsageError.
    """
    keys: list[str] = []
    for value in values:
        candidate = Path(value).expanduser()
        if not value.startswith(("age1", "ssh-")) and candidate.is_file():
            lines = candidate.read_text(encoding="utf-8").splitlines()
            found = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
            if not found:
                raise UsageError(f"the recipients file {candidate} holds no key")
            keys.extend(found)
        else:
            keys.append(value.strip())
    normalised = []
    for key in keys:
        parse_recipient(key)
        # An SSH key's comment is not part of the key: keep type and body only.
        normalised.append(" ".join(key.split()[:2]) if key.startswith("ssh-") else key)
    if not normalised:
        raise UsageError("at least one recipient is needed", hint="give --recipient KEY (age1... or an SSH public key)")
    return list(dict.fromkeys(normalised))


def encrypt_to_recipients(plaintext: bytes, recipients: list[str]) -> bytes:
    """An age file (binary) of ``plaintext`` for every recipient. Raises IdentityError."""
    parsed = [parse_recipient(r) for r in recipients]
    try:
        return pyrage.encrypt(plaintext, parsed)
    except pyrage.EncryptError as error:
        raise IdentityError(f"cannot encrypt to the recipients: {error}") from None


# --- identities -------------------------------------------------------------------


PASSPHRASE_IDENTITY_MARK = b"age-encryption.org/v1\n-> scrypt "


def read_passphrase(*, prompt: str, passphrase_file: Path | None = None, confirm: bool = False, minimum: int = 8) -> str:
    """The passphrase from ``passphrase_file`` (a path or /dev/fd/N), else a terminal prompt.

    ``minimum`` is the shortest passphrase accepted (a new one; an existing key's may be shorter).
    Raises UsageError when neither is available (no terminal), the two entries differ, or the
    passphrase is too short.
    """
    if passphrase_file is not None:
        try:
            with open(passphrase_file, encoding="utf-8") as handle:
                passphrase = handle.readline().rstrip("\r\n")
        except OSError as error:
            raise UsageError(f"cannot read the passphrase from {passphrase_file}: {error.strerror}") from None
    else:
        if not sys.stdin.isatty():
            raise UsageError(
                "a passphrase is needed but there is no terminal to ask on",
                hint="give --passphrase-file FILE (or /dev/fd/N)",
            )
        passphrase = getpass.getpass(prompt)
        if confirm and getpass.getpass("repeat the passphrase: ") != passphrase:
            raise UsageError("the two passphrases differ")
    if len(passphrase) < max(minimum, 1):
        raise UsageError(f"the passphrase is shorter than {max(minimum, 1)} characters" if minimum > 1 else "the passphrase is empty")
    register_secret(passphrase)
    return passphrase


def create_passphrase_identity(path: Path, passphrase: str) -> str:
    """Generate an X25519 identity, write it to ``path`` encrypted with ``passphrase`` (age scrypt).

    Returns the identity's public recipient (``age1...``). Raises UsageError when ``path`` exists.
    """
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    body = f"# strongroom passphrase-protected identity\n# public key: {recipient}\n{identity}\n".encode()
    sealed = pyrage.passphrase.encrypt(body, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists", hint="name a new file for the passphrase identity") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(sealed)
    return recipient


def _identities_from_age_text(text: str) -> list[Identity]:
    found: list[Identity] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-1"):
            try:
                found.append(pyrage.x25519.Identity.from_str(line))
            except pyrage.IdentityError as error:
                raise IdentityError(f"an age identity line does not parse: {error}") from None
    return found


def load_identities(path: Path, *, passphrase_file: Path | None = None) -> list[Identity]:
    """Read the identities in ``path``: an age identity file, an SSH private key (ed25519, RSA; a
    passphrase-protected one asks for its passphrase), or a passphrase-protected identity made by
    ``init`` (asks for the passphrase).

    Returns at least one identity. Raises IdentityError when the file is missing or holds none.
    """
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as error:
        raise IdentityError(f"cannot read the identity file {path}: {error.strerror}") from None
    if data.startswith(PASSPHRASE_IDENTITY_MARK):
        passphrase = read_passphrase(prompt=f"passphrase for {path}: ", passphrase_file=passphrase_file)
        try:
            data = pyrage.passphrase.decrypt(data, passphrase)
        except pyrage.DecryptError:
            raise IdentityError(f"the passphrase does not open {path}", hint="check the passphrase") from None
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data or b"-----BEGIN RSA PRIVATE KEY-----" in data:
        return [_ssh_identity(data, path, passphrase_file)]
    identities = _identities_from_age_text(data.decode("utf-8", "replace"))
    if not identities:
        raise IdentityError(
            f"{path} holds no identity (expected AGE-SECRET-KEY-1..., an OpenSSH private key, "
            "or a passphrase identity made by strongroom init)"
        )
    return identities


def _ssh_identity(data: bytes, path: Path, passphrase_file: Path | None) -> Identity:
    """An SSH private key (ed25519 or RSA) as an identity; a passphrase-protected one is opened
    with its passphrase (asked on the terminal or read from ``passphrase_file``) in memory only.

    Raises IdentityError (not an ed25519/RSA key, wrong passphrase), UsageError (no passphrase).
    """
    try:
        return pyrage.ssh.Identity.from_buffer(data)
    except pyrage.IdentityError as error:
        problem = str(error)
    openssh = b"-----BEGIN OPENSSH PRIVATE KEY-----" in data

    def load(password: bytes | None) -> Any:
        if openssh:
            return serialization.load_ssh_private_key(data, password)
        return serialization.load_pem_private_key(data, password)

    try:
        load(None)
        encrypted = False
    except TypeError:  # cryptography: "password was not given but private key is encrypted"
        encrypted = True
    except (ValueError, UnsupportedAlgorithm):
        encrypted = False
    if not encrypted:
        raise IdentityError(f"the SSH private key {path} cannot be used: {problem}",
                            hint="strongroom reads ed25519 and RSA keys (OpenSSH or PEM format)")
    passphrase = read_passphrase(prompt=f"passphrase of the SSH key {path}: ", passphrase_file=passphrase_file, minimum=1)
    try:
        key = load(passphrase.encode("utf-8"))
    except (ValueError, TypeError):
        raise IdentityError(f"the passphrase does not open the SSH key {path}", hint="check the passphrase") from None
    opened = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    try:
        return pyrage.ssh.Identity.from_buffer(opened)
    except pyrage.IdentityError as error:
        raise IdentityError(f"the SSH private key {path} cannot be used: {error}",
                            hint="strongroom reads ed25519 and RSA keys") from None
    finally:
        del opened, key


def decrypt_with_identities(sealed: bytes, identities: list[Identity], what: str) -> bytes:
    """Open an age file with ``identities``. Raises IdentityError when none of them is a recipient."""
    try:
        return pyrage.decrypt(sealed, identities)
    except pyrage.DecryptError as error:
        if "No matching keys" in str(error):
            raise IdentityError(
                f"the identity given is not a recipient of {what}",
                hint="use an identity whose public key was given to 'strongroom init' as --recipient",
            ) from None
        raise IntegrityError(f"{what} cannot be decrypted: it is damaged ({error})") from None
