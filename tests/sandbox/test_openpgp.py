"""The sandbox's OpenPGP keys and messages: parsed by pysequoia, read by GnuPG 2.2."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pysequoia
import pytest

from strongroom.sandbox import openpgp


def _gpg() -> str:
    found = shutil.which("gpg")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("gpg is not installed; CI=true forbids skipping", pytrace=False)
        pytest.skip("gpg is not installed (install gnupg)")
    return found


@pytest.mark.parametrize("shape", ["ecc", "rsa"])
def test_key_pair_parses_with_matching_fingerprint_and_no_expiry(shape: openpgp.KeyShape) -> None:
    key = openpgp.generate_key_pair("Ada Lovelace <ada@example.com>", "correct horse", shape=shape, rsa_bits=2048)
    cert = pysequoia.Cert.from_bytes(key.public_armored.encode())
    assert cert.fingerprint.upper() == key.fingerprint
    assert key.key_id == key.fingerprint[-16:]
    assert cert.expiration is None
    assert [str(uid) for uid in cert.user_ids] == ["Ada Lovelace <ada@example.com>"]
    assert "BEGIN PGP PRIVATE KEY BLOCK" in key.private_armored


def test_private_key_needs_its_passphrase() -> None:
    key = openpgp.generate_key_pair("Betty <betty@example.com>", "right one")
    message = openpgp.encrypt("s3cret", [key.certificate()])
    assert openpgp.decrypt(message, openpgp.unlock(key.private_armored, "right one")) == b"s3cret"
    with pytest.raises(openpgp.OpenPGPError):
        openpgp.unlock(key.private_armored, "wrong one")
    with pytest.raises(openpgp.OpenPGPError):
        openpgp.unlock(key.private_armored, "")


def test_messages_use_rfc4880_packets() -> None:
    key = openpgp.generate_key_pair("Carol <carol@example.com>", "pass")
    message = openpgp.encrypt("x", [key.certificate()])
    packets = [packet.tag for packet in pysequoia.packet.PacketPile.from_bytes(message.encode())]
    # PKESK then SEIPD version 1 (GnuPG 2.2 and OpenPGP.js read it; SEIPDv2 they would not).
    assert packets[0] == pysequoia.packet.Tag.PKESK
    assert pysequoia.packet.Tag.SEIP in packets


@pytest.mark.parametrize("shape", ["ecc", "rsa"])
def test_gnupg_imports_the_key_and_decrypts_our_message(tmp_path: Path, shape: openpgp.KeyShape) -> None:
    gpg = _gpg()
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n")
    (home / "gpg.conf").write_text("auto-key-locate local\nno-auto-key-retrieve\n")
    key = openpgp.generate_key_pair("Dame Shirley <dame@example.com>", "gpg pass phrase", shape=shape, rsa_bits=2048)
    (tmp_path / "key.asc").write_text(key.private_armored)
    message = openpgp.encrypt("ünïcode password", [key.certificate()])
    (tmp_path / "message.asc").write_text(message)
    environment = dict(os.environ, GNUPGHOME=str(home))
    common = [gpg, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    try:
        imported = subprocess.run(
            [*common, "--import", str(tmp_path / "key.asc")],
            input=key.passphrase.encode(), env=environment, capture_output=True, timeout=60,
        )
        assert imported.returncode == 0, imported.stderr.decode()
        decrypted = subprocess.run(
            [*common, "--decrypt", str(tmp_path / "message.asc")],
            input=key.passphrase.encode(), env=environment, capture_output=True, timeout=60,
        )
        assert decrypted.returncode == 0, decrypted.stderr.decode()
        assert decrypted.stdout == "ünïcode password".encode()
        # And the other way round: GnuPG encrypts, the sandbox's key decrypts.
        encrypted = subprocess.run(
            [gpg, "--batch", "--trust-model", "always", "--armor", "--encrypt", "-r", key.fingerprint],
            input=b"from gnupg", env=environment, capture_output=True, timeout=60,
        )
        assert encrypted.returncode == 0, encrypted.stderr.decode()
        assert openpgp.decrypt(encrypted.stdout.decode(), key.decryptor()) == b"from gnupg"
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=environment, capture_output=True)


def test_unprotected_key_for_metadata() -> None:
    key = openpgp.generate_key_pair("Metadata <metadata@example.com>", "")
    message = openpgp.encrypt("{}", [key.certificate()])
    assert openpgp.decrypt(message, openpgp.unlock(key.private_armored, "")) == b"{}"
