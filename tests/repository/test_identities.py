"""Every identity kind restores: age X25519, SSH ed25519, SSH RSA, a passphrase identity (scrypt)."""

from __future__ import annotations

import base64
import io
import subprocess
from pathlib import Path

import pytest

from repository_helpers import make_setup, need_program, ssh_keypair

from strongroom.errors import IdentityError, UsageError
from strongroom.repository.keys import create_passphrase_identity, expand_recipients, load_identities

CONTENT = b"INSERT INTO `t` VALUES (1);\nINSERT INTO `t` VALUES (2);\n"


def _round_trip(tmp_path: Path, recipient: str, identity: Path, passphrase_file: Path | None = None) -> None:
    setup = make_setup(tmp_path / "setup", [recipient])
    with setup.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(CONTENT))
        writer.commit()
    from strongroom.repository.repository import Repository
    from strongroom.storage.layers import open_backend

    reader = Repository.open(
        open_backend(setup.config.url), setup.config, identities=load_identities(identity, passphrase_file=passphrase_file)
    )
    target = tmp_path / "out.sql"
    reader.restore_component(reader.load_snapshot("latest"), "database.sql", target)
    assert target.read_bytes() == CONTENT


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ssh_identities(tmp_path: Path, kind: str) -> None:
    private, public = ssh_keypair(tmp_path, kind)
    _round_trip(tmp_path, public, private)


@pytest.mark.parametrize("kind, key_format", [("ed25519", "RFC4716"), ("rsa", "PEM")])
def test_passphrase_protected_ssh_keys(tmp_path: Path, kind: str, key_format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An administrator's own SSH key is usually passphrase-protected: it restores with its
    passphrase (from a file here), opened in memory; a wrong one and no passphrase fail clearly."""
    need_program("ssh-keygen")
    private = tmp_path / f"id_{kind}"
    extra = ["-b", "2048"] if kind == "rsa" else []
    # a throwaway test key: its passphrase on ssh-keygen's command line harms nothing
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-m", key_format, "-N", "short", "-f", str(private)], check=True)
    assert b"ENCRYPTED" in private.read_bytes() or b"aes256-ctr" in base64_body(private.read_bytes())
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text("short\n")
    _round_trip(tmp_path, private.with_suffix(".pub").read_text().strip(), private, passphrase_file)
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    with pytest.raises(IdentityError, match="passphrase does not open the SSH key"):
        load_identities(private, passphrase_file=wrong)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal to ask on
    with pytest.raises(UsageError, match="no terminal"):
        load_identities(private)


def base64_body(pem: bytes) -> bytes:
    """The decoded body of a PEM block (an OpenSSH key names its cipher inside)."""
    lines = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    return base64.b64decode(b"".join(lines))


def test_age_identity(tmp_path: Path) -> None:
    _round_trip_default = make_setup(tmp_path / "setup")
    with _round_trip_default.writer().begin_snapshot() as writer:
        writer.add_record_stream("database.sql", io.BytesIO(CONTENT))
        writer.commit()
    reader = _round_trip_default.reader()
    reader.restore_component(reader.load_snapshot("latest"), "database.sql", tmp_path / "out.sql")
    assert (tmp_path / "out.sql").read_bytes() == CONTENT


@pytest.mark.slow
def test_passphrase_identity(tmp_path: Path) -> None:
    identity = tmp_path / "offline" / "identity.age"
    recipient = create_passphrase_identity(identity, "correct horse battery")
    assert identity.stat().st_mode & 0o077 == 0
    assert b"AGE-SECRET-KEY" not in identity.read_bytes()
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text("correct horse battery\n")
    _round_trip(tmp_path, recipient, identity, passphrase_file)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    with pytest.raises(IdentityError, match="passphrase does not open"):
        load_identities(identity, passphrase_file=wrong)


def test_recipient_parsing(tmp_path: Path) -> None:
    _, public = ssh_keypair(tmp_path, "ed25519")
    listing = tmp_path / "recipients.txt"
    listing.write_text(f"# admins\n{public}\n")
    assert expand_recipients([str(listing)]) == [" ".join(public.split()[:2])]
    with pytest.raises(IdentityError):
        expand_recipients(["AGE-SECRET-KEY-1QQQQ"])
    with pytest.raises(UsageError):
        expand_recipients([])
    with pytest.raises(IdentityError, match="holds no identity"):
        load_identities(listing)
