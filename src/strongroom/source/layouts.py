"""Where passbolt's files are, per installation layout, and which layout a host has.

Five layouts (``passbolt.md`` §2):

========== ============================ ================================ ===========================
layout     code (``ROOT``)              config dir                       web user
========== ============================ ================================ ===========================
debian     /usr/share/php/passbolt      /etc/passbolt                    www-data
rpm        /usr/share/php/passbolt      /etc/passbolt                    nginx (SUSE: wwwrun)
docker     /usr/share/php/passbolt      /etc/passbolt (in the container) www-data
source     /var/www/passbolt            /var/www/passbolt/config         www-data
v1         /var/www/passbolt            /var/www/passbolt/app/Config     www-data
========== ============================ ================================ ===========================

Every path here is as passbolt sees it. A :class:`PathMap` turns it into the path
strongroom reads on this host: under ``--root`` for the package and source
layouts, through the container's mounts for Docker.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.errors import SourceError

PACKAGE_INSTALL_DIR = PurePosixPath("/usr/share/php/passbolt")
PACKAGE_CONFIG_DIR = PurePosixPath("/etc/passbolt")
SOURCE_INSTALL_DIR = PurePosixPath("/var/www/passbolt")

# Where a Docker compose setup is looked for, under the root (the first found wins).
COMPOSE_DIRECTORIES = ("opt/passbolt", "srv/passbolt", "root/passbolt", "home/passbolt", "opt/passbolt/docker")
COMPOSE_NAMES = ("docker-compose.yaml", "docker-compose.yml", "compose.yaml", "compose.yml")

LAYOUT_NAMES = ("debian", "rpm", "docker", "source", "v1")


@dataclass(frozen=True)
class Layout:
    """The paths of one installation layout, as passbolt sees them.

    ``main_config`` is ``passbolt.php`` (v1: ``app/Config/app.php``); ``web_users``
    the accounts the web server runs as, most likely first.
    """

    name: str
    install_dir: PurePosixPath
    config_dir: PurePosixPath
    web_users: tuple[str, ...]

    @property
    def is_v1(self) -> bool:
        """True for passbolt 1.x (CakePHP 2: ``app/Config``)."""
        return self.name == "v1"

    @property
    def main_config(self) -> PurePosixPath:
        """The main configuration file."""
        return self.config_dir / ("app.php" if self.is_v1 else "passbolt.php")

    @property
    def version_file(self) -> PurePosixPath:
        """The file holding passbolt's version."""
        if self.is_v1:
            return self.config_dir / "app.php"  # v1 keeps App.version.number there
        return self.install_dir / "config" / "version.php"

    @property
    def avatars_dir(self) -> PurePosixPath:
        """Avatar files of passbolt before 3.2 (v1: ``app/webroot/img/public``)."""
        if self.is_v1:
            return self.install_dir / "app" / "webroot" / "img" / "public"
        return self.install_dir / "webroot" / "img" / "public"

    def constants(self) -> dict[str, Any]:
        """Values of the path constants passbolt's PHP files use (``ROOT``, ``CONFIG``, ``DS``, ...)."""
        root = str(self.install_dir)
        if self.is_v1:
            app = f"{root}/app/"
            tmp = f"{app}tmp/"
            return {
                "DS": "/",
                "ROOT": root,
                "APP_DIR": "app",
                "APP": app,
                "CONFIG": f"{self.config_dir}/",
                "WWW_ROOT": f"{app}webroot/",
                "WEBROOT_DIR": "webroot",
                "TMP": tmp,
                "LOGS": f"{tmp}logs/",
                "CACHE": f"{tmp}cache/",
                "CAKE_CORE_INCLUDE_PATH": f"{root}/lib",
                "CORE_PATH": f"{root}/lib/",
                "CAKE": f"{root}/lib/Cake/",
                "IMAGES": f"{app}webroot/img/",
            }
        packaged = self.name in ("debian", "rpm", "docker")
        tmp = "/var/lib/passbolt/tmp/" if packaged else f"{root}/tmp/"
        core = f"{root}/vendor/cakephp/cakephp"
        return {
            "DS": "/",
            "ROOT": root,
            "APP_DIR": "src",
            "APP": f"{root}/src/",
            "CONFIG": f"{self.config_dir}/",
            "WWW_ROOT": f"{root}/webroot/",
            "WEBROOT_DIR": "webroot",
            "TMP": tmp,
            "LOGS": "/var/log/passbolt/" if packaged else f"{root}/logs/",
            "CACHE": f"{tmp}cache/",
            "RESOURCES": f"{root}/resources/",
            "TESTS": f"{root}/tests/",
            "CAKE_CORE_INCLUDE_PATH": core,
            "CORE_PATH": f"{core}/",
            "CAKE": f"{core}/src/",
            "PASSBOLT_PLUGINS": f"{root}/plugins/",
        }


def layout_named(name: str, *, root: Path = Path("/"), install_dir: PurePosixPath | None = None,
                 config_dir: PurePosixPath | None = None) -> Layout:
    """The layout called ``name`` with its default paths (or the given ones).

    Raises SourceError for an unknown name.
    """
    if name in ("debian", "docker"):
        layout = Layout(name, PACKAGE_INSTALL_DIR, PACKAGE_CONFIG_DIR, ("www-data",))
    elif name == "rpm":
        users = ("wwwrun", "nginx") if _os_family(root) == "suse" else ("nginx", "wwwrun", "apache")
        layout = Layout(name, PACKAGE_INSTALL_DIR, PACKAGE_CONFIG_DIR, users)
    elif name == "source":
        layout = Layout(name, SOURCE_INSTALL_DIR, SOURCE_INSTALL_DIR / "config", ("www-data", "nginx"))
    elif name == "v1":
        layout = Layout(name, SOURCE_INSTALL_DIR, SOURCE_INSTALL_DIR / "app" / "Config", ("www-data", "nginx"))
    else:
        raise SourceError(f"unknown layout {name!r}", hint=f"use one of: auto, {', '.join(LAYOUT_NAMES)}")
    if install_dir is not None or config_dir is not None:
        chosen_install = install_dir or layout.install_dir
        if config_dir is None:
            if name in ("source",):
                config_dir = chosen_install / "config"
            elif name == "v1":
                config_dir = chosen_install / "app" / "Config"
        layout = Layout(name, chosen_install, config_dir or layout.config_dir, layout.web_users)
    return layout


@dataclass(frozen=True)
class PathMap:
    """Turns paths as passbolt sees them into paths on this host.

    Without mounts, a path is looked up under ``root``. With mounts (Docker), the
    longest mount that contains the path decides; when ``confined`` a path under no
    mount is not on this host (it lives only in the container) and maps to None.
    Mount sources are host paths already (under ``root``).
    """

    root: Path
    mounts: tuple[tuple[PurePosixPath, Path], ...] = ()
    confined: bool = False

    def locate(self, path: PurePosixPath | str) -> Path | None:
        """The host path of ``path``, or None when it is only inside a container."""
        posix = PurePosixPath(path)
        best: tuple[PurePosixPath, Path] | None = None
        for target, source in self.mounts:
            if posix == target or target in posix.parents:
                if best is None or len(target.parts) > len(best[0].parts):
                    best = (target, source)
        if best is not None:
            return best[1] / posix.relative_to(best[0]) if posix != best[0] else best[1]
        if self.confined:
            return None
        return under_root(self.root, posix)


def under_root(root: Path, path: PurePosixPath | str) -> Path:
    """``path`` (absolute, as seen on the instance) under ``root``."""
    posix = PurePosixPath(path)
    relative = posix.relative_to("/") if posix.is_absolute() else posix
    return root / relative


def find_compose_file(root: Path) -> Path | None:
    """The first passbolt compose file in the usual places under ``root``, or None."""
    for directory in COMPOSE_DIRECTORIES:
        for name in COMPOSE_NAMES:
            candidate = root / directory / name
            if candidate.is_file():
                return candidate
    return None


def _os_release(root: Path) -> dict[str, str]:
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        try:
            text = (root / candidate).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        values: dict[str, str] = {}
        for line in text.splitlines():
            match = re.match(r"\s*([A-Z_]+)=(.*)", line)
            if match:
                values[match.group(1)] = match.group(2).strip().strip("\"'")
        return values
    return {}


def _os_family(root: Path) -> str | None:
    """``debian``, ``rhel`` or ``suse`` from os-release and package databases, else None."""
    release = _os_release(root)
    words = f"{release.get('ID', '')} {release.get('ID_LIKE', '')}".lower().split()
    if any(word in ("suse", "opensuse", "sles", "opensuse-leap", "opensuse-tumbleweed") for word in words):
        return "suse"
    if any(word in ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn") for word in words):
        return "rhel"
    if any(word in ("debian", "ubuntu") for word in words):
        return "debian"
    if (root / "var/lib/dpkg/status").exists():
        return "debian"
    if (root / "var/lib/rpm").is_dir() or (root / "etc/redhat-release").exists():
        return "rhel"
    return None


# Web users by distribution family, and their usual numeric ids where the name is unknown.
_WEB_USER_FAMILY = {"www-data": "debian", "nginx": "rhel", "apache": "rhel", "wwwrun": "suse"}
_WEB_UID_FAMILY = {33: "debian", 998: "rhel", 48: "rhel", 30: "suse"}


def _family_from_owner(root: Path, config_dir: Path) -> str | None:
    """The distribution family from the owner of passbolt's files (``www-data``: Debian, ``nginx``: RHEL)."""
    for candidate in (config_dir / "passbolt.php", config_dir / "gpg" / "serverkey.asc"):
        try:
            uid = candidate.stat().st_uid
        except OSError:
            continue
        name = _user_name(root, uid)
        if name in _WEB_USER_FAMILY:
            return _WEB_USER_FAMILY[name]
        if name is None and uid in _WEB_UID_FAMILY:
            return _WEB_UID_FAMILY[uid]
    return None


def _user_name(root: Path, uid: int) -> str | None:
    """The name of ``uid`` from ``<root>/etc/passwd``, or None."""
    try:
        lines = (root / "etc" / "passwd").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(uid):
            return fields[0]
    return None


def detect_layout(root: Path) -> str:
    """Which layout the passbolt instance under ``root`` has.

    Returns one of :data:`LAYOUT_NAMES`. Raises SourceError when no passbolt
    instance is found, saying where strongroom looked.
    """
    v1_config = under_root(root, SOURCE_INSTALL_DIR / "app" / "Config")
    if (v1_config / "database.php").is_file() or (v1_config / "core.php").is_file():
        return "v1"
    if find_compose_file(root) is not None:
        return "docker"
    package_config = under_root(root, PACKAGE_CONFIG_DIR)
    if (package_config / "passbolt.php").exists() or (package_config / "gpg").is_dir() or (
        under_root(root, PACKAGE_INSTALL_DIR) / "bin" / "cake"
    ).exists():
        family = _os_family(root) or _family_from_owner(root, package_config)
        return "rpm" if family in ("rhel", "suse") else "debian"
    source_config = under_root(root, SOURCE_INSTALL_DIR / "config")
    if (source_config / "passbolt.php").exists() or (source_config / "app.php").exists():
        return "source"
    shown = str(root) if str(root) != "/" else "this host"
    raise SourceError(
        f"no passbolt instance found on {shown}: looked for {PACKAGE_CONFIG_DIR}/passbolt.php, "
        f"{SOURCE_INSTALL_DIR}/config/passbolt.php, {SOURCE_INSTALL_DIR}/app/Config/database.php "
        f"and a compose file in /{', /'.join(COMPOSE_DIRECTORIES)}",
        hint="name the layout and paths in the [instance] section of the configuration "
        "(layout, config_dir, docker_compose_file or docker_container), or give --root",
    )


def is_root_path(root: Path) -> bool:
    """True when ``root`` is this host's own filesystem root."""
    return os.path.realpath(root) == "/"
