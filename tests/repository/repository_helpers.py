"""Shared helpers for the repository tests: keys, a configured repository, synthetic dumps."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import pyrage

from strongroom.config.schema import RepositoryConfig
from strongroom.repository.keys import WriterKey, load_identities
from strongroom.repository.repository import Repository
from strongroom.storage.layers import open_backend


def need_program(name: str) -> str:
    """The path of ``name``; skip without it, fail under CI=true."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed (CI must not skip)")
        pytest.skip(f"{name} is not installed")
    return found


@dataclass
class Setup:
    """A repository made by init, with its pinned config and an identity."""

    root: Path
    config: RepositoryConfig
    writer_key: WriterKey
    identity_file: Path

    def writer(self) -> Repository:
        """The repository as the backup host sees it (writer key, no identity)."""
        return Repository.open(open_backend(self.config.url), self.config, writer_key=WriterKey.load(self.config.writer_key))

    def reader(self, identity_file: Path | None = None) -> Repository:
        """The repository as a restoring machine sees it (identity, no writer key)."""
        identities = load_identities(identity_file or self.identity_file)
        return Repository.open(open_backend(self.config.url), self.config, identities=identities)


def make_setup(root: Path, extra_recipients: list[str] | None = None, lock_wait_seconds: float = 60.0) -> Setup:
    """A fresh repository under ``root`` with one age identity (and ``extra_recipients``)."""
    root.mkdir(parents=True, exist_ok=True)
    identity = pyrage.x25519.Identity.generate()
    identity_file = root / "identity.txt"
    identity_file.write_text(f"# test identity\n{identity}\n")
    recipients = [str(identity.to_public())] + list(extra_recipients or [])
    backend = open_backend(str(root / "repo"), create=True)
    _, writer_key = Repository.init(backend, recipients=recipients)
    writer_key.save(root / "writer.key")
    config = RepositoryConfig(
        url=str(root / "repo"), writer_key=root / "writer.key", writer_fingerprint=writer_key.fingerprint,
        recipients=tuple(recipients), lock_wait_seconds=lock_wait_seconds, cache_dir=root / "cache",
    )
    return Setup(root, config, writer_key, identity_file)


def ssh_keypair(directory: Path, kind: str) -> tuple[Path, str]:
    """A new unencrypted SSH key pair of ``kind`` (ed25519, rsa): (private key path, public key line)."""
    need_program("ssh-keygen")
    path = directory / f"id_{kind}"
    extra = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()


def synthetic_dump(rows: int, seed: int = 1) -> list[bytes]:
    """A passbolt-like dump, one row per line, with random UUID-like ids (so changes scatter)."""
    generator = random.Random(seed)
    lines = [b"-- MariaDB dump\n", b"DROP TABLE IF EXISTS `secrets`;\n"]
    for _ in range(rows):
        lines.append(secret_row(generator))
    lines.append(b"-- Dump completed\n")
    return lines


def secret_row(generator: random.Random) -> bytes:
    """One INSERT line of a secrets-like table."""
    uid = "%032x" % generator.getrandbits(128)
    body = "%0200x" % generator.getrandbits(800)
    return f"INSERT INTO `secrets` VALUES ('{uid}','-----BEGIN PGP MESSAGE-----\\n{body}','2024-01-01');\n".encode()
