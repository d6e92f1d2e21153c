"""Real OpenPGP key pairs and messages for the sandbox, readable by GnuPG 2.2 and OpenPGP.js.

Keys are built here, packet by packet (RFC 4880), with the ``cryptography`` package:
pysequoia generates valid keys too, but advertises SEIPDv2 (RFC 9580) in their
features, so every message encrypted to them is one GnuPG 2.2 cannot read. The
keys built here advertise only MDC (SEIPDv1), which is what passbolt's own keys
(made by OpenPGP.js or GnuPG) advertise; pysequoia then encrypts to them in the
RFC 4880 format. Parsing, encryption and decryption are pysequoia's.

Shapes:

- ``ecc``: an Ed25519 primary key (certify and sign) with a Curve25519 ECDH
  encryption subkey, the shape of ``gpg --quick-gen-key ... future-default``;
- ``rsa``: an RSA primary key (certify and sign) with an RSA encryption subkey.

No key expires. The private key is always protected with a passphrase (passbolt's
keys always are): iterated and salted S2K with SHA-256, AES-256 in CFB mode, a
SHA-1 check (S2K usage 254). The iteration count is a parameter: a sandbox has
hundreds of keys and tests unlock them often, so the default is modest.

Key material, salts and ciphertexts are random by nature: two runs with the same
seed give the same users with different keys.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from dataclasses import dataclass
from typing import Literal

import pysequoia
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to the "decrepit" module in cryptography 44; OpenPGP still needs it
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[assignment]

from strongroom.errors import StrongroomError

KeyShape = Literal["ecc", "rsa"]

# Packet tags (RFC 4880 §4.3).
TAG_SIGNATURE = 2
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_SECRET_SUBKEY = 7
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14

# Public-key algorithms (RFC 4880 §9.1, RFC 6637, draft-koch-eddsa).
ALGORITHM_RSA = 1
ALGORITHM_ECDH = 18
ALGORITHM_EDDSA = 22

HASH_SHA256 = 8
HASH_SHA512 = 10
CIPHER_AES128 = 7
CIPHER_AES256 = 9

OID_ED25519 = bytes.fromhex("2b06010401da470f01")
OID_CURVE25519 = bytes.fromhex("2b060104019755010501")
# ECDH KDF parameters: size 3, reserved 1, SHA-256, AES-128 (what GnuPG uses for Curve25519).
ECDH_KDF_PARAMETERS = bytes([3, 1, HASH_SHA256, CIPHER_AES128])

SIGNATURE_POSITIVE_CERTIFICATION = 0x13
SIGNATURE_SUBKEY_BINDING = 0x18

FLAG_CERTIFY = 0x01
FLAG_SIGN = 0x02
FLAG_ENCRYPT = 0x04 | 0x08
FEATURE_MDC = 0x01

# Coded S2K count 0x60 is 65,536 bytes hashed: fast to unlock, as in passbolt's test keys.
DEFAULT_S2K_CODED_COUNT = 0x60
# 0xFF, 65,011,712 bytes hashed, is GnuPG's default.
STRONG_S2K_CODED_COUNT = 0xFF


class OpenPGPError(StrongroomError):
    """An OpenPGP operation of the sandbox failed (a key did not parse, a message did not decrypt)."""


@dataclass(frozen=True)
class KeyPair:
    """An OpenPGP key pair: armored public key, armored protected private key, and facts about it.

    ``fingerprint`` is 40 uppercase hex digits, ``key_id`` its last 16.
    ``algorithm`` is passbolt's ``gpgkeys.type`` name (``RSA`` or ``EdDSA``).
    ``created`` is the key's creation time (seconds since the epoch, UTC).
    """

    public_armored: str
    private_armored: str
    passphrase: str
    fingerprint: str
    key_id: str
    uid: str
    algorithm: str
    bits: int
    created: int

    def certificate(self) -> pysequoia.Cert:
        """Return the public key as a pysequoia certificate."""
        return pysequoia.Cert.from_bytes(self.public_armored.encode("ascii"))

    def decryptor(self) -> pysequoia.PyDecryptor:
        """Return a pysequoia decryptor holding the unlocked private key. Raises OpenPGPError."""
        return unlock(self.private_armored, self.passphrase)


# --- packet encoding ----------------------------------------------------------------------


def _packet(tag: int, body: bytes) -> bytes:
    """Return a new-format packet with ``tag`` and ``body``."""
    length = len(body)
    if length < 192:
        header = bytes([length])
    elif length < 8384:
        length -= 192
        header = bytes([(length >> 8) + 192, length & 0xFF])
    else:
        header = b"\xff" + struct.pack(">I", length)
    return bytes([0xC0 | tag]) + header + body


def _mpi(value: int | bytes) -> bytes:
    """Return a multiprecision integer: a 2-byte bit count, then the big-endian value."""
    number = int.from_bytes(value, "big") if isinstance(value, bytes) else value
    if number == 0:
        return b"\x00\x00"
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return struct.pack(">H", number.bit_length()) + raw


def _subpacket(kind: int, data: bytes) -> bytes:
    """Return a signature subpacket (lengths below 192 only, which is all this module writes)."""
    length = len(data) + 1
    if length >= 192:
        raise ValueError("subpacket too long")
    return bytes([length, kind]) + data


def _fingerprint(public_body: bytes) -> bytes:
    """Return the v4 fingerprint (SHA-1 over the framed public key body)."""
    return hashlib.sha1(b"\x99" + struct.pack(">H", len(public_body)) + public_body).digest()


def _key_framing(public_body: bytes) -> bytes:
    return b"\x99" + struct.pack(">H", len(public_body)) + public_body


# --- key material -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """One key or subkey: its public packet body, its secret material, and how it signs."""

    public_body: bytes
    secret_material: bytes  # the cleartext secret MPIs
    signing_key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | None
    algorithm: int
    bits: int


def _public_header(created: int, algorithm: int) -> bytes:
    return bytes([4]) + struct.pack(">I", created) + bytes([algorithm])


def _ed25519_key(created: int) -> _Key:
    private = ed25519.Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes_raw()
    body = _public_header(created, ALGORITHM_EDDSA) + bytes([len(OID_ED25519)]) + OID_ED25519
    body += _mpi(b"\x40" + public_raw)
    return _Key(body, _mpi(private.private_bytes_raw()), private, ALGORITHM_EDDSA, 256)


def _curve25519_key(created: int) -> _Key:
    private = x25519.X25519PrivateKey.generate()
    scalar = bytearray(private.private_bytes_raw())
    # Clamp as RFC 7748 does at use time, then store big-endian as GnuPG and Sequoia expect.
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    public_raw = private.public_key().public_bytes_raw()
    body = _public_header(created, ALGORITHM_ECDH) + bytes([len(OID_CURVE25519)]) + OID_CURVE25519
    body += _mpi(b"\x40" + public_raw) + ECDH_KDF_PARAMETERS
    return _Key(body, _mpi(bytes(reversed(scalar))), None, ALGORITHM_ECDH, 255)


def _rsa_key(created: int, bits: int) -> _Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = private.private_numbers()
    p, q = sorted((numbers.p, numbers.q))  # OpenPGP wants p < q and u = p^-1 mod q
    u = pow(p, -1, q)
    public_numbers = numbers.public_numbers
    body = _public_header(created, ALGORITHM_RSA) + _mpi(public_numbers.n) + _mpi(public_numbers.e)
    secret = _mpi(numbers.d) + _mpi(p) + _mpi(q) + _mpi(u)
    return _Key(body, secret, private, ALGORITHM_RSA, bits)


def _s2k_key(passphrase: bytes, salt: bytes, coded_count: int) -> bytes:
    """Return the 32-byte key of an iterated and salted SHA-256 S2K (RFC 4880 §3.7.1.3)."""
    count = (16 + (coded_count & 15)) << ((coded_count >> 4) + 6)
    unit = salt + passphrase
    count = max(count, len(unit))
    repeated = unit * (count // len(unit)) + unit[: count % len(unit)]
    return hashlib.sha256(repeated).digest()


def _protected_secret_body(key: _Key, passphrase: str, coded_count: int) -> bytes:
    """Return a secret-key packet body whose secret material is encrypted with ``passphrase``.

    An empty passphrase gives an unprotected body (S2K usage 0 and a 16-bit checksum).
    """
    if not passphrase:
        checksum = sum(key.secret_material) & 0xFFFF
        return key.public_body + b"\x00" + key.secret_material + struct.pack(">H", checksum)
    salt = os.urandom(8)
    iv = os.urandom(16)
    session = _s2k_key(passphrase.encode("utf-8"), salt, coded_count)
    cleartext = key.secret_material + hashlib.sha1(key.secret_material).digest()
    encryptor = Cipher(algorithms.AES(session), CFB(iv)).encryptor()
    encrypted = encryptor.update(cleartext) + encryptor.finalize()
    s2k = bytes([254, CIPHER_AES256, 3, HASH_SHA256]) + salt + bytes([coded_count])
    return key.public_body + s2k + iv + encrypted


def _sign(primary: _Key, hashed_prefix_input: bytes, signature_type: int, hashed: bytes, issuer: bytes) -> bytes:
    """Return a v4 signature packet of ``signature_type`` by ``primary`` over ``hashed_prefix_input``."""
    head = bytes([4, signature_type, primary.algorithm, HASH_SHA256]) + struct.pack(">H", len(hashed)) + hashed
    trailer = b"\x04\xff" + struct.pack(">I", len(head))
    digest = hashlib.sha256(hashed_prefix_input + head + trailer).digest()
    unhashed = _subpacket(16, issuer[-8:])
    if isinstance(primary.signing_key, ed25519.Ed25519PrivateKey):
        raw = primary.signing_key.sign(digest)
        signature_mpis = _mpi(raw[:32]) + _mpi(raw[32:])
    elif isinstance(primary.signing_key, rsa.RSAPrivateKey):
        raw = primary.signing_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        signature_mpis = _mpi(raw)
    else:  # pragma: no cover - only signing keys are primaries
        raise OpenPGPError("an encryption-only key cannot sign")
    body = head + struct.pack(">H", len(unhashed)) + unhashed + digest[:2] + signature_mpis
    return _packet(TAG_SIGNATURE, body)


def generate_key_pair(
    uid: str,
    passphrase: str,
    *,
    shape: KeyShape = "ecc",
    rsa_bits: int = 3072,
    created: int | None = None,
    s2k_coded_count: int = DEFAULT_S2K_CODED_COUNT,
) -> KeyPair:
    """Generate a key pair for ``uid`` (``Name <email>``) that never expires.

    Returns the KeyPair, its private key protected with ``passphrase``; an empty
    passphrase leaves it unprotected, as passbolt's shared metadata keys are.
    Raises OpenPGPError when the result does not parse back (a bug).
    """
    created = int(time.time()) if created is None else created
    if shape == "ecc":
        primary, subkey = _ed25519_key(created), _curve25519_key(created)
        algorithm_name, bits = "EdDSA", 256
    else:
        primary, subkey = _rsa_key(created, rsa_bits), _rsa_key(created, rsa_bits)
        algorithm_name, bits = "RSA", rsa_bits
    fingerprint = _fingerprint(primary.public_body)
    created_subpacket = _subpacket(2, struct.pack(">I", created))
    issuer_subpacket = _subpacket(33, b"\x04" + fingerprint)
    uid_bytes = uid.encode("utf-8")
    certification_hashed = (
        created_subpacket
        + _subpacket(27, bytes([FLAG_CERTIFY | FLAG_SIGN]))
        + _subpacket(11, bytes([CIPHER_AES256, 8, CIPHER_AES128]))
        + _subpacket(21, bytes([HASH_SHA512, HASH_SHA256]))
        + _subpacket(22, bytes([2, 1, 0]))
        + _subpacket(30, bytes([FEATURE_MDC]))
        + _subpacket(23, bytes([0x80]))  # key server preferences: no-modify
        + _subpacket(25, b"\x01")  # primary user id
        + issuer_subpacket
    )
    certification = _sign(
        primary,
        _key_framing(primary.public_body) + b"\xb4" + struct.pack(">I", len(uid_bytes)) + uid_bytes,
        SIGNATURE_POSITIVE_CERTIFICATION,
        certification_hashed,
        fingerprint,
    )
    binding = _sign(
        primary,
        _key_framing(primary.public_body) + _key_framing(subkey.public_body),
        SIGNATURE_SUBKEY_BINDING,
        created_subpacket + _subpacket(27, bytes([FLAG_ENCRYPT])) + issuer_subpacket,
        fingerprint,
    )
    user_id_packet = _packet(TAG_USER_ID, uid_bytes)
    public = (
        _packet(TAG_PUBLIC_KEY, primary.public_body)
        + user_id_packet
        + certification
        + _packet(TAG_PUBLIC_SUBKEY, subkey.public_body)
        + binding
    )
    private = (
        _packet(TAG_SECRET_KEY, _protected_secret_body(primary, passphrase, s2k_coded_count))
        + user_id_packet
        + certification
        + _packet(TAG_SECRET_SUBKEY, _protected_secret_body(subkey, passphrase, s2k_coded_count))
        + binding
    )
    public_armored = pysequoia.armor(public, pysequoia.ArmorKind.PublicKey)
    private_armored = pysequoia.armor(private, pysequoia.ArmorKind.SecretKey)
    hex_fingerprint = fingerprint.hex().upper()
    try:
        parsed = pysequoia.Cert.from_bytes(public)
    except Exception as exc:  # pysequoia raises plain exceptions
        raise OpenPGPError(f"a generated key does not parse: {exc}") from None
    if parsed.fingerprint.upper() != hex_fingerprint:
        raise OpenPGPError("a generated key's fingerprint differs from the computed one")
    return KeyPair(
        public_armored=public_armored,
        private_armored=private_armored,
        passphrase=passphrase,
        fingerprint=hex_fingerprint,
        key_id=hex_fingerprint[-16:],
        uid=uid,
        algorithm=algorithm_name,
        bits=bits,
        created=created,
    )


# --- messages -----------------------------------------------------------------------------


def unlock(private_armored: str, passphrase: str) -> pysequoia.PyDecryptor:
    """Return a decryptor for an armored private key unlocked with ``passphrase``.

    Raises OpenPGPError when the key does not parse or the passphrase is wrong.
    """
    try:
        secret = pysequoia.Tsk.from_bytes(private_armored.encode("ascii"))
        return secret.decryptor(passphrase or None)
    except Exception:
        raise OpenPGPError("the private key does not parse or the passphrase does not unlock it") from None


def encrypt(plaintext: str | bytes, recipients: list[pysequoia.Cert]) -> str:
    """Return an armored OpenPGP message of ``plaintext`` encrypted to every one of ``recipients``."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    return pysequoia.encrypt(data, recipients).decode("ascii")


def decrypt(message: str, decryptor: pysequoia.PyDecryptor) -> bytes:
    """Return the plaintext of an armored OpenPGP message. Raises OpenPGPError when it does not decrypt."""
    try:
        result = pysequoia.decrypt(message.encode("ascii"), decryptor)
    except Exception:
        raise OpenPGPError("the message does not decrypt with this key") from None
    if result.bytes is None:
        raise OpenPGPError("the message decrypted to nothing")
    return result.bytes


def fingerprint_of(public_armored: str) -> str:
    """Return the fingerprint (40 uppercase hex digits) of an armored public key. Raises OpenPGPError."""
    try:
        return pysequoia.Cert.from_bytes(public_armored.encode("ascii")).fingerprint.upper()
    except Exception:
        raise OpenPGPError("the public key does not parse") from None
