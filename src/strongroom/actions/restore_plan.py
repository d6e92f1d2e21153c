"""The plan of a restore onto a server: every file with its owner and mode, every database action.

``restore SNAPSHOT --root DIR`` first computes this plan (reading the snapshot, the
target's ``version.php`` and the target database, changing nothing), then
executes it (:mod:`strongroom.actions.server_restore`); ``--dry-run`` prints it and
stops. Files go only to the fixed paths of the target layout by role, never to a
path read from the snapshot (TLS files excepted: their path is the one passbolt's
configuration names, and it must be absolute and stay under ``--root``).

Target paths by role (``<config>`` is ``/etc/passbolt`` for the package layouts,
``/var/www/passbolt/config`` for source; Docker keeps keys in the compose project's
volumes and its configuration in env files next to the compose file):

=====================  =======================================  ===========================================
role                   package / source                         docker (host side)
=====================  =======================================  ===========================================
passbolt-config        ``<config>/passbolt.php``                turned into ``env/passbolt.env`` values
app-config             ``<config>/app.php``                     its ``Security.salt`` → ``SECURITY_SALT``
server-key-*           ``<config>/gpg/serverkey{,_private}.asc`` ``<volumes>/<project>_gpg_volume/_data/``
jwt-*                  ``<config>/jwt/jwt.{key,pem}``           ``<volumes>/<project>_jwt_volume/_data/``
subscription-key       ``<config>/subscription_key.txt``        ``<compose dir>/subscription_key.txt``
avatars (before 3.2)   ``<install>/webroot/img/public/...``     (not in the image: refused)
docker-*               (not written)                            their own paths
=====================  =======================================  ===========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import SourceError, UsageError
from strongroom.passbolt import installation
from strongroom.passbolt.installation import Owner, Permission, WebAccount
from strongroom.source import backupset as roles
from strongroom.source.layouts import LAYOUT_NAMES, Layout, find_compose_file, layout_named, under_root
from strongroom.source.php import parse_php, read_dotted

PARTS = ("database", "keys", "config", "files")
KEY_ROLES = frozenset({roles.SERVER_KEY_PUBLIC, roles.SERVER_KEY_PRIVATE, roles.JWT_PRIVATE, roles.JWT_PUBLIC})
CONFIG_ROLES = frozenset({roles.PASSBOLT_CONFIG, roles.APP_CONFIG, roles.DATABASE_CONFIG, roles.EMAIL_CONFIG,
                          roles.SUBSCRIPTION_KEY})
# File names in the target's config directory, by role (v1 names where they differ).
CONFIG_NAMES = {
    roles.PASSBOLT_CONFIG: "passbolt.php",
    roles.APP_CONFIG: "app.php",
    roles.SUBSCRIPTION_KEY: "subscription_key.txt",
    roles.SERVER_KEY_PUBLIC: "gpg/serverkey.asc",
    roles.SERVER_KEY_PRIVATE: "gpg/serverkey_private.asc",
    roles.JWT_PRIVATE: "jwt/jwt.key",
    roles.JWT_PUBLIC: "jwt/jwt.pem",
}
V1_CONFIG_NAMES = {
    roles.PASSBOLT_CONFIG: "app.php",
    roles.APP_CONFIG: "core.php",
    roles.DATABASE_CONFIG: "database.php",
    roles.EMAIL_CONFIG: "email.php",
    roles.SERVER_KEY_PUBLIC: "gpg/serverkey.asc",
    roles.SERVER_KEY_PRIVATE: "gpg/serverkey_private.asc",
}
DOCKER_VOLUMES = PurePosixPath("/var/lib/docker/volumes")
DOCKER_COMPOSE_DIRECTORY = PurePosixPath("/opt/passbolt")
POSTGRES_DRIVER = "Cake\\Database\\Driver\\Postgres"


def part_of_role(role: str) -> str:
    """Which ``--only`` part a backup-set role belongs to: ``keys``, ``config`` or ``files``."""
    if role in KEY_ROLES:
        return "keys"
    if role in CONFIG_ROLES or role.startswith("docker-"):
        return "config"
    return "files"


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """``5.12.0`` as (5, 12, 0); None when there is no number in it."""
    if not version:
        return None
    numbers = re.findall(r"\d+", version)
    return tuple(int(n) for n in numbers[:3]) if numbers else None


@dataclass(frozen=True)
class PlannedPath:
    """One file or directory the restore writes, with the owner and mode it gets.

    ``path`` is where passbolt sees it (inside the container for Docker volumes),
    ``location`` where it is written on this machine. ``source`` is the snapshot
    component it comes from (or ``generated``/``directory``); ``change`` says what
    the restore changed in it, empty when written as backed up.
    """

    kind: str
    role: str
    path: str
    location: Path
    uid: int
    gid: int
    owner: str
    mode: int
    source: str
    change: str = ""
    content: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, without the content."""
        return {"kind": self.kind, "role": self.role, "path": self.path, "location": str(self.location),
                "owner": self.owner, "uid": self.uid, "gid": self.gid, "mode": f"{self.mode:04o}",
                "source": self.source, "change": self.change}


@dataclass
class DatabasePlan:
    """What the restore does to the database, in order."""

    target: DatabaseTarget
    origin: str
    engine: str
    exists: bool
    create: bool
    existing_tables: tuple[str, ...]
    drop_tables: bool
    component: str
    dump_bytes: int
    server_version: str | None
    map_mysql8_collations: bool
    datasource_updates: tuple[str, ...] = ()

    def actions(self) -> list[str]:
        """The database actions, in words, in the order they run."""
        steps = []
        if self.create:
            steps.append(f"create the database and its user: {self.target.describe()}")
        if self.drop_tables:
            steps.append(f"drop the {len(self.existing_tables)} existing table(s): {', '.join(self.existing_tables)}")
        mapped = " (MySQL 8 collations mapped for MariaDB)" if self.map_mysql8_collations else ""
        steps.append(f"load {self.component} ({self.dump_bytes} bytes) into {self.target.describe()} through the dump guard{mapped}")
        return steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (never the password)."""
        return {"target": self.target.url(), "origin": self.origin, "engine": self.engine, "exists": self.exists,
                "create": self.create, "existing_tables": list(self.existing_tables), "drop_tables": self.drop_tables,
                "server_version": self.server_version, "datasource_updates": list(self.datasource_updates),
                "actions": self.actions()}


@dataclass(frozen=True)
class PassboltStep:
    """One post-restore command of passbolt's (``bin/cake ...``): run, or printed for the administrator."""

    name: str
    argv: tuple[str, ...]
    shown: str
    run: bool


@dataclass
class RestorePlan:
    """Everything a restore onto a server will do."""

    snapshot: str
    snapshot_version: str | None
    target_version: str | None
    source_layout: str
    target_layout: Layout
    root: Path
    web: WebAccount
    parts: tuple[str, ...]
    paths: list[PlannedPath] = field(default_factory=list)
    database: DatabasePlan | None = None
    keyring: PlannedPath | None = None
    keyring_import: bool = False
    passbolt_steps: list[PassboltStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the plan."""
        return {
            "snapshot": self.snapshot,
            "snapshot_version": self.snapshot_version,
            "target_version": self.target_version,
            "source_layout": self.source_layout,
            "target_layout": self.target_layout.name,
            "root": str(self.root),
            "web_user": {"name": self.web.name, "uid": self.web.uid, "gid": self.web.gid, "exists": self.web.exists},
            "parts": list(self.parts),
            "paths": [p.to_dict() for p in self.paths],
            "database": self.database.to_dict() if self.database else None,
            "keyring": {"path": self.keyring.path, "import_server_key": self.keyring_import} if self.keyring else None,
            "passbolt_steps": [{"name": s.name, "command": s.shown, "run": s.run} for s in self.passbolt_steps],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- target paths


@dataclass(frozen=True)
class TargetLayout:
    """Where the target layout keeps each thing, as passbolt sees it and on this machine."""

    layout: Layout
    root: Path
    compose_directory: PurePosixPath
    project: str

    @property
    def is_docker(self) -> bool:
        """True for the Docker layout."""
        return self.layout.name == "docker"

    def locate(self, path: PurePosixPath) -> Path:
        """The host location of ``path`` (Docker: container key paths through the volumes)."""
        if self.is_docker:
            config = self.layout.config_dir
            for sub, volume in (("gpg", "gpg_volume"), ("jwt", "jwt_volume")):
                inside = config / sub
                if path == inside or inside in path.parents:
                    data = DOCKER_VOLUMES / f"{self.project}_{volume}" / "_data"
                    return under_root(self.root, data / path.relative_to(inside))
            if path == config / "subscription_key.txt":
                return under_root(self.root, self.compose_directory / "subscription_key.txt")
        return under_root(self.root, path)

    def config_path(self, role: str) -> PurePosixPath | None:
        """Where the file with ``role`` goes, as passbolt sees it; None when this layout has no such file."""
        names = V1_CONFIG_NAMES if self.layout.is_v1 else CONFIG_NAMES
        if self.is_docker and role in (roles.PASSBOLT_CONFIG, roles.APP_CONFIG):
            return None
        name = names.get(role)
        return self.layout.config_dir / name if name else None

    @property
    def keyring(self) -> PurePosixPath:
        """The keyring (GNUPGHOME) passbolt uses in this layout."""
        if self.layout.name == "source" or self.layout.is_v1:
            return installation.SOURCE_KEYRING
        return installation.PACKAGE_KEYRING

    @property
    def env_file(self) -> PurePosixPath:
        """Docker: the passbolt container's env file."""
        return self.compose_directory / "env" / "passbolt.env"


def target_layout(root: Path, name: str, project: str | None) -> TargetLayout:
    """The target layout under ``root``; Docker's compose directory and project from a compose file there.

    Raises UsageError for an unknown layout name.
    """
    if name not in LAYOUT_NAMES:
        raise UsageError(f"unknown layout {name!r}", hint=f"use one of: {', '.join(LAYOUT_NAMES)}")
    try:
        layout = layout_named(name, root=root)
    except SourceError as error:
        raise UsageError(error.message, hint=error.hint) from None
    compose_directory = DOCKER_COMPOSE_DIRECTORY
    if name == "docker":
        compose = find_compose_file(root)
        if compose is not None:
            compose_directory = PurePosixPath("/") / compose.parent.relative_to(root).as_posix()
    chosen_project = project or compose_directory.name or "passbolt"
    return TargetLayout(layout, root, compose_directory, chosen_project)


def permission_ids(web: WebAccount, permission: Permission, docker: bool) -> tuple[int, int, str]:
    """(uid, gid, owner in words) of ``permission`` for ``web`` (Docker: the image's numeric ids)."""
    uid, gid = web.ids(permission.owner)
    if docker and permission.owner is not Owner.ROOT:
        label = f"{uid}:{gid}" if permission.owner is Owner.WEB else f"0:{gid}"
    else:
        label = web.label(permission.owner)
    return uid, gid, label


def read_target_version(target: TargetLayout) -> str | None:
    """The passbolt version installed on the target (``version.php``, Docker: the compose file's image tag)."""
    if target.is_docker:
        compose = find_compose_file(target.root)
        if compose is None:
            return None
        match = re.search(r"passbolt/passbolt:(\d+\.\d+\.\d+)", compose.read_text(encoding="utf-8", errors="replace"))
        return match.group(1) if match else None
    location = under_root(target.root, target.layout.version_file)
    try:
        text = location.read_text(encoding="utf-8", errors="replace")
        parsed = parse_php(text, path=str(target.layout.version_file), constants=target.layout.constants(), environment={})
    except (OSError, SourceError):
        return None
    for candidate in (read_dotted(parsed.returned, "passbolt.version") if isinstance(parsed.returned, dict) else None,
                      read_dotted(parsed.configure, "App.version.number"),
                      read_dotted(parsed.variables.get("config") or {}, "App.version.number")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def check_versions(snapshot_version: str | None, target_version: str | None, warnings: list[str]) -> None:
    """Refuse a snapshot of a newer passbolt than the target's.

    Raises UsageError saying which version to install. An unknown version on either
    side is a warning.
    """
    made, installed = version_tuple(snapshot_version), version_tuple(target_version)
    if made is None:
        warnings.append("the snapshot does not record passbolt's version: check by hand that the target runs the same or a newer one")
        return
    if installed is None:
        warnings.append(
            f"passbolt's version on the target is unknown (no version.php found): install passbolt {snapshot_version} "
            "or newer before starting it on the restored data"
        )
        return
    if made > installed:
        raise UsageError(
            f"the snapshot was made by passbolt {snapshot_version}, newer than the {target_version} installed on the target: "
            "a newer passbolt's database cannot run on an older one",
            hint=f"install passbolt {snapshot_version} or newer on the target, then run restore again",
        )


def datasource_from_php(text: str, engine: str, file_name: str = "passbolt.php") -> DatabaseTarget | None:
    """The datasource ``Datasources.default`` of a passbolt.php (env() defaults only); None when it names none."""
    parsed = parse_php(text, path=file_name, environment={})
    data = parsed.returned if parsed.returned is not None else parsed.configure
    source = read_dotted(data, "Datasources.default")
    if not isinstance(source, dict):
        return None
    return _target_from_values(
        engine, source.get("driver"), source.get("host"), source.get("port"), source.get("username"),
        source.get("password"), source.get("database"), source.get("unix_socket"), source.get("schema"),
    )


def datasource_from_env(values: dict[str, str], engine: str) -> DatabaseTarget | None:
    """The datasource named by ``DATASOURCES_DEFAULT_*`` values; None when they name no database."""
    url = values.get("DATASOURCES_DEFAULT_URL")
    if url:
        return DatabaseTarget.from_url(url)
    if not values.get("DATASOURCES_DEFAULT_DATABASE"):
        return None
    return _target_from_values(
        engine, values.get("DATASOURCES_DEFAULT_DRIVER"), values.get("DATASOURCES_DEFAULT_HOST"),
        values.get("DATASOURCES_DEFAULT_PORT"), values.get("DATASOURCES_DEFAULT_USERNAME"),
        values.get("DATASOURCES_DEFAULT_PASSWORD"), values.get("DATASOURCES_DEFAULT_DATABASE"), None,
        values.get("DATASOURCES_DEFAULT_SCHEMA"),
    )


def _target_from_values(engine: str, driver: Any, host: Any, port: Any, user: Any, password: Any, database: Any,
                        socket: Any, schema: Any) -> DatabaseTarget | None:
    if not database:
        return None
    if driver and "postgres" in str(driver).lower():
        engine = "postgresql"
    try:
        port_number = int(port) if port not in (None, "") else None
    except (TypeError, ValueError):
        port_number = None
    return DatabaseTarget(
        engine=engine,  # type: ignore[arg-type]
        host=str(host or "localhost"),
        port=port_number,
        socket=str(socket) if socket else None,
        user=str(user) if user is not None else None,
        password=str(password) if password is not None else None,
        database=str(database),
        schema=str(schema) if schema and engine == "postgresql" else None,
    )
