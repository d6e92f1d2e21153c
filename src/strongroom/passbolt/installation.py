"""Owners and modes passbolt expects for its files, per installation layout (``passbolt.md`` §2).

One table, so that "passbolt's owners and modes" means one thing for the sandbox
that builds instances, discovery that checks them and restore that writes them.
``<web>`` is the web user, ``<wg>`` its group:

===================================  ==============  =====
what (package and Docker layout)     owner           mode
===================================  ==============  =====
``/etc/passbolt/``                   root:<wg>       0770
``passbolt.php``                     <web>:<web>     0440
``app.php``, ``subscription_key.txt`` root:<wg>      0640
``gpg/``                             root:<wg>       0770
``gpg/serverkey{,_private}.asc``     <web>:<web>     0440
``jwt/``                             root:<wg>       0750
``jwt/jwt.{key,pem}``                root:<wg>       0640
keyring (GNUPGHOME)                  <web>:<web>     0700
v1 ``app/Config/*.php``, ``gpg/*``   <web>:<web>     0440
v1 avatars                           <web>:<web>     0755 dirs, 0644 files
===================================  ==============  =====

The source layout uses the same names under ``config/``. Docker keeps the keys in
volumes owned by the image's numeric ``www-data`` (33:33), and its host-side files
(compose file, env files) are ``root:root`` (env files 0600: they hold passwords).
"""

from __future__ import annotations

import enum
import grp
import pwd
from dataclasses import dataclass
from pathlib import PurePosixPath

# The web user of each layout, most likely first (rpm: SUSE uses wwwrun).
WEB_USER: dict[str, str] = {"debian": "www-data", "rpm": "nginx", "docker": "www-data", "source": "www-data", "v1": "www-data"}
# Usual numeric ids of web users, used where the account does not exist on this machine.
FALLBACK_IDS: dict[str, tuple[int, int]] = {"www-data": (33, 33), "nginx": (998, 998), "wwwrun": (30, 8), "apache": (48, 48)}
# The passbolt Docker image's www-data.
DOCKER_WEB_IDS: tuple[int, int] = (33, 33)
# The keyring passbolt's packages use (package and Docker layouts).
PACKAGE_KEYRING = PurePosixPath("/var/lib/passbolt/.gnupg")
# Debian's www-data home, whose .gnupg a source install uses as its keyring.
SOURCE_KEYRING = PurePosixPath("/var/www/.gnupg")


class Owner(str, enum.Enum):
    """Who owns a path: root with the web group, the web user, or root alone."""

    ROOT_WEB_GROUP = "root:<wg>"
    WEB = "<web>:<web>"
    ROOT = "root:root"


@dataclass(frozen=True)
class Permission:
    """The owner and mode passbolt expects for one file or directory."""

    owner: Owner
    mode: int


# By backup-set role (strongroom.source.backupset), for every layout but v1 and Docker's host files.
FILE_PERMISSIONS: dict[str, Permission] = {
    "passbolt-config": Permission(Owner.WEB, 0o440),
    "app-config": Permission(Owner.ROOT_WEB_GROUP, 0o640),
    "subscription-key": Permission(Owner.ROOT_WEB_GROUP, 0o640),
    "server-key-public": Permission(Owner.WEB, 0o440),
    "server-key-private": Permission(Owner.WEB, 0o440),
    "jwt-private": Permission(Owner.ROOT_WEB_GROUP, 0o640),
    "jwt-public": Permission(Owner.ROOT_WEB_GROUP, 0o640),
    "avatars": Permission(Owner.WEB, 0o644),
}
# v1 (passbolt 1.x): every configuration file and key is the web user's, read-only.
V1_FILE_PERMISSION = Permission(Owner.WEB, 0o440)
# Docker: files on the host, next to the compose file.
DOCKER_HOST_PERMISSIONS: dict[str, Permission] = {
    "docker-compose": Permission(Owner.ROOT, 0o640),
    "docker-env": Permission(Owner.ROOT, 0o600),
    "subscription-key": Permission(Owner.ROOT, 0o640),
}

# Directories, by what they are.
CONFIG_DIRECTORY = "config-directory"
GPG_DIRECTORY = "gpg-directory"
JWT_DIRECTORY = "jwt-directory"
KEYRING_DIRECTORY = "keyring"
AVATARS_DIRECTORY = "avatars-directory"
DIRECTORY_PERMISSIONS: dict[str, Permission] = {
    CONFIG_DIRECTORY: Permission(Owner.ROOT_WEB_GROUP, 0o770),
    GPG_DIRECTORY: Permission(Owner.ROOT_WEB_GROUP, 0o770),
    JWT_DIRECTORY: Permission(Owner.ROOT_WEB_GROUP, 0o750),
    KEYRING_DIRECTORY: Permission(Owner.WEB, 0o700),
    AVATARS_DIRECTORY: Permission(Owner.WEB, 0o755),
}
V1_DIRECTORY_PERMISSION = Permission(Owner.WEB, 0o750)


def file_permission(layout: str, role: str) -> Permission | None:
    """The owner and mode of the file with backup-set ``role`` in ``layout``; None when the table has none."""
    if role == "avatars":
        return FILE_PERMISSIONS["avatars"]
    if layout == "v1":
        return V1_FILE_PERMISSION
    if layout == "docker" and role in DOCKER_HOST_PERMISSIONS and role != "subscription-key":
        return DOCKER_HOST_PERMISSIONS[role]
    if layout == "docker" and role.startswith("docker-env"):
        return DOCKER_HOST_PERMISSIONS["docker-env"]
    if layout == "docker" and role == "subscription-key":
        return DOCKER_HOST_PERMISSIONS["subscription-key"]
    return FILE_PERMISSIONS.get(role)


def directory_permission(layout: str, what: str) -> Permission:
    """The owner and mode of directory ``what`` (:data:`CONFIG_DIRECTORY`, ...) in ``layout``."""
    if layout == "v1" and what in (CONFIG_DIRECTORY, GPG_DIRECTORY):
        return V1_DIRECTORY_PERMISSION
    return DIRECTORY_PERMISSIONS[what]


@dataclass(frozen=True)
class WebAccount:
    """The web user as numeric ids: ``exists`` is False when the ids are the usual ones of a missing account."""

    name: str
    uid: int
    gid: int
    exists: bool

    def ids(self, owner: Owner) -> tuple[int, int]:
        """The (uid, gid) that ``owner`` means for this web user."""
        if owner is Owner.WEB:
            return self.uid, self.gid
        if owner is Owner.ROOT_WEB_GROUP:
            return 0, self.gid
        return 0, 0

    def label(self, owner: Owner) -> str:
        """``owner`` in words (``root:www-data``), with numbers where the account does not exist."""
        user = self.name if self.exists else str(self.uid)
        group = self.name if self.exists else str(self.gid)
        if owner is Owner.WEB:
            return f"{user}:{group}"
        if owner is Owner.ROOT_WEB_GROUP:
            return f"root:{group}"
        return "root:root"


def web_account(layout: str, name: str | None = None) -> WebAccount:
    """The web user of ``layout`` (or the one ``name``d) on this machine.

    Docker always means the image's www-data (33:33), whatever this host has.
    When the account does not exist here, its usual ids (:data:`FALLBACK_IDS`) are
    returned with ``exists`` False; the caller warns.
    """
    chosen = name or WEB_USER.get(layout, "www-data")
    if layout == "docker" and name is None:
        return WebAccount(chosen, *DOCKER_WEB_IDS, exists=False)
    try:
        entry = pwd.getpwnam(chosen)
    except KeyError:
        uid, gid = FALLBACK_IDS.get(chosen, (33, 33))
        return WebAccount(chosen, uid, gid, exists=False)
    try:
        gid = grp.getgrnam(chosen).gr_gid
    except KeyError:
        gid = entry.pw_gid
    return WebAccount(chosen, entry.pw_uid, gid, exists=True)
