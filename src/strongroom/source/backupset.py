"""The backup set: everything of a passbolt instance that a backup must hold.

Files are named by role, so the backup, the manifest and a restore agree on what
each file is, whatever the layout calls it:

=====================  ==========================================================
role                   what it is
=====================  ==========================================================
``server-key-public``  the server's OpenPGP public key (``gpg/serverkey.asc``)
``server-key-private`` the server's OpenPGP private key (``gpg/serverkey_private.asc``)
``passbolt-config``    ``passbolt.php`` (v1: ``app/Config/app.php``)
``app-config``         ``app.php`` (its ``Security.salt``); v1: ``core.php``
``database-config``    v1 only: ``app/Config/database.php``
``email-config``       v1 only: ``app/Config/email.php``
``jwt-private``        ``jwt/jwt.key``
``jwt-public``         ``jwt/jwt.pem``
``subscription-key``   Pro licence (``subscription_key.txt``, legacy ``license``)
``avatars``            avatar files, a directory (passbolt before 3.2 only)
``tls-certificate``,
``tls-key``, ``tls-*`` TLS files named in the configuration
``docker-compose``     Docker: the compose file
``docker-env``,
``docker-env-N``       Docker: env files the compose file loads
``docker-secret-NAME`` Docker: a secret file the compose file mounts
=====================  ==========================================================

Paths come in two views: ``path`` is where passbolt sees the file (inside the
container for Docker), ``location`` is where strongroom reads it on this host
(under ``--root``, or in a Docker volume); ``location`` is None when the file is
only inside a container.
"""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from strongroom.dbserver.connection import DatabaseTarget

SERVER_KEY_PUBLIC = "server-key-public"
SERVER_KEY_PRIVATE = "server-key-private"
PASSBOLT_CONFIG = "passbolt-config"
APP_CONFIG = "app-config"
DATABASE_CONFIG = "database-config"
EMAIL_CONFIG = "email-config"
JWT_PRIVATE = "jwt-private"
JWT_PUBLIC = "jwt-public"
SUBSCRIPTION_KEY = "subscription-key"
AVATARS = "avatars"
DOCKER_COMPOSE = "docker-compose"
DOCKER_ENV = "docker-env"

# Files whose contents are secret: their modes are checked, never shown.
PRIVATE_ROLES = frozenset({SERVER_KEY_PRIVATE, JWT_PRIVATE, PASSBOLT_CONFIG, APP_CONFIG, DATABASE_CONFIG, SUBSCRIPTION_KEY})


@dataclass(frozen=True)
class FileState:
    """What ``stat`` says about a file on this host (None fields when it does not exist)."""

    exists: bool
    kind: Literal["file", "directory", "other", "missing"]
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    readable: bool = False
    error: str | None = None


@dataclass(frozen=True)
class BackupFile:
    """One file (or directory) of the backup set.

    ``origin`` says where strongroom learned about it ("passbolt.php
    passbolt.gpg.serverKey.public", "layout default", "[instance] config").
    ``container`` names the container to read it from when ``location`` is None.
    """

    role: str
    path: PurePosixPath
    location: Path | None
    kind: Literal["file", "directory"] = "file"
    required: bool = True
    origin: str = "layout default"
    container: str | None = None

    def state(self) -> FileState:
        """Stat ``location`` now (follows symlinks); never raises."""
        if self.location is None:
            return FileState(exists=False, kind="missing", error="only inside the container")
        try:
            info = os.stat(self.location)
        except FileNotFoundError:
            return FileState(exists=False, kind="missing")
        except OSError as exc:
            return FileState(exists=False, kind="missing", error=exc.strerror)
        if stat_module.S_ISREG(info.st_mode):
            kind: Literal["file", "directory", "other", "missing"] = "file"
        elif stat_module.S_ISDIR(info.st_mode):
            kind = "directory"
        else:
            kind = "other"
        readable = os.access(self.location, os.R_OK | (os.X_OK if kind == "directory" else 0))
        return FileState(
            exists=True,
            kind=kind,
            mode=stat_module.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
            size=info.st_size,
            readable=readable,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, with the file's current mode and owner."""
        state = self.state()
        return {
            "role": self.role,
            "path": str(self.path),
            "location": str(self.location) if self.location is not None else None,
            "kind": self.kind,
            "required": self.required,
            "origin": self.origin,
            "container": self.container,
            "exists": state.exists,
            "mode": f"{state.mode:04o}" if state.mode is not None else None,
            "uid": state.uid,
            "gid": state.gid,
            "size": state.size,
        }


def describe_database(target: DatabaseTarget | None) -> dict[str, Any] | None:
    """The database target as JSON-ready data, without its password."""
    if target is None:
        return None
    return {
        "engine": target.engine,
        "host": None if target.socket else target.host,
        "port": None if target.socket else target.port,
        "socket": target.socket,
        "database": target.database,
        "user": target.user,
        "password": "set" if target.password else "not set",
        "schema": target.schema,
        "ssl_mode": target.ssl_mode,
    }


@dataclass(frozen=True)
class BackupSet:
    """What a backup of this instance holds: database, files by role, key fingerprint, version.

    ``fingerprint`` is the configured server key fingerprint (upper-case hex, or
    None when the configuration names none). ``database_origin`` says where the
    database settings came from.
    """

    files: tuple[BackupFile, ...]
    database: DatabaseTarget | None
    fingerprint: str | None = None
    version: str | None = None
    edition: str | None = None
    database_origin: str | None = None
    database_container: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def file(self, role: str) -> BackupFile | None:
        """The file with ``role``, or None when the set has none."""
        for item in self.files:
            if item.role == role:
                return item
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; the database password is never included."""
        return {
            "version": self.version,
            "edition": self.edition,
            "fingerprint": self.fingerprint,
            "database": describe_database(self.database),
            "database_origin": self.database_origin,
            "database_container": self.database_container,
            "files": [item.to_dict() for item in self.files],
            "notes": list(self.notes),
        }
