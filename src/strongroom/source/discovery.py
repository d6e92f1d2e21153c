"""Finding the passbolt instance and its backup set: :func:`discover_instance`.

Discovery reads, never writes, and never stops at the first problem: what it
cannot read becomes a :class:`~strongroom.source.findings.Finding` on the
returned :class:`Instance`, so ``strongroom discover`` shows everything wrong at
once. Only "there is no passbolt here at all" raises.

Precedence, highest first: the ``[instance]`` section of strongroom's
configuration; the main config file (``passbolt.php``, v1 ``database.php`` and
``app.php``); passbolt's ``app.php`` defaults with the environment applied
(``env()``), which on Docker is the container's environment; the layout's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.config.schema import InstanceConfig
from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import ConfigError, SourceError
from strongroom.execute import register_secret
from strongroom.source import backupset as roles
from strongroom.source.backupset import BackupFile, BackupSet
from strongroom.source.docker import DockerSetup, docker_available, read_container_file, read_docker_setup
from strongroom.source.envconfig import (
    datasource_from_environment,
    read_host_file,
    register_environment_secrets,
    resolve_secret_files,
    server_key_from_environment,
    target_from_datasource,
)
from strongroom.source.findings import Finding, error, warning
from strongroom.source.layouts import Layout, PathMap, detect_layout, find_compose_file, layout_named, under_root
from strongroom.source.php import PhpFile, parse_php, read_dotted

AVATARS_IN_DATABASE_SINCE = (3, 2)


@dataclass(frozen=True)
class Instance:
    """A discovered passbolt instance.

    ``layout`` is the layout's name, ``paths`` its paths, ``backup_set`` what a
    backup holds, ``findings`` the problems discovery met (checks add more),
    ``docker`` the Docker deployment (None for other layouts), ``web_user`` the
    account passbolt's files belong to. ``config`` is the main configuration as
    read (it may hold secrets: never print it).
    """

    layout: str
    root: Path
    paths: Layout
    backup_set: BackupSet
    path_map: PathMap
    web_user: str | None = None
    docker: DockerSetup | None = None
    findings: tuple[Finding, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def database(self) -> DatabaseTarget | None:
        """The database target (None when its settings could not be found)."""
        return self.backup_set.database

    @property
    def version(self) -> str | None:
        """passbolt's version (``5.12.0``), or None when unknown."""
        return self.backup_set.version

    def read_text(self, item: BackupFile) -> str:
        """The text of a backup-set file, from this host or through ``docker exec``.

        Raises SourceError when it cannot be read.
        """
        if item.location is None and item.container is not None:
            return read_container_file(item.container, item.path)
        return read_host_file(item.location, item.path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (no secrets)."""
        return {
            "layout": self.layout,
            "root": str(self.root),
            "install_dir": str(self.paths.install_dir),
            "config_dir": str(self.paths.config_dir),
            "web_user": self.web_user,
            "docker": None
            if self.docker is None
            else {
                "project": self.docker.project,
                "compose_file": str(self.docker.compose_file) if self.docker.compose_file else None,
                "passbolt_container": self.docker.passbolt_container,
                "database_container": self.docker.database_container,
                "image": self.docker.image,
                "database_image": self.docker.database_image,
            },
            "backup_set": self.backup_set.to_dict(),
        }


def _reader(path_map: PathMap, container: str | None):  # type: ignore[no-untyped-def]
    def read(path: PurePosixPath) -> str:
        location = path_map.locate(path)
        if location is None and container is not None:
            return read_container_file(container, path)
        return read_host_file(location, path)

    return read


def _parse(
    path: PurePosixPath, path_map: PathMap, container: str | None, layout: Layout, environment: Mapping[str, str]
) -> PhpFile:
    text = _reader(path_map, container)(path)
    return parse_php(text, path=str(path), constants=layout.constants(), environment=environment)


def _exists(path_map: PathMap, path: PurePosixPath) -> bool:
    location = path_map.locate(path)
    return location is not None and location.exists()


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    if not version:
        return None
    numbers = re.findall(r"\d+", version)
    return tuple(int(n) for n in numbers[:3]) if numbers else None


def _choose_layout(root: Path, config: InstanceConfig) -> str:
    if config.layout != "auto":
        return config.layout
    if config.docker_compose_file is not None or config.docker_container is not None:
        return "docker"
    try:
        return detect_layout(root)
    except SourceError:
        # A running container is the last place to look (only on the host itself or when named).
        if docker_available():
            try:
                read_docker_setup(root, compose_file=None, container=None, database_container=None, environment={})
                return "docker"
            except SourceError:
                pass
        raise


def _web_user(root: Path, layout: Layout, config: InstanceConfig) -> str | None:
    if config.web_user:
        return config.web_user
    try:
        passwd = (root / "etc" / "passwd").read_text(encoding="utf-8", errors="replace")
        present = {line.split(":", 1)[0] for line in passwd.splitlines() if ":" in line}
    except OSError:
        present = set()
    for user in layout.web_users:
        if user in present:
            return user
    return layout.web_users[0] if layout.web_users else None


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _configured_database(config: InstanceConfig, found: DatabaseTarget | None) -> tuple[DatabaseTarget | None, str | None]:
    """Apply the [instance] database overrides to ``found``; returns the target and its origin (None: unchanged)."""
    password: str | None = None
    if config.database_password_file is not None:
        try:
            password = config.database_password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the database password file {config.database_password_file}: {exc.strerror}",
                hint="check database_password_file in the [instance] section and the file's permissions",
            ) from None
        register_secret(password)
    base = found
    if config.database_url is not None:
        base = DatabaseTarget.from_url(config.database_url)
        if base.password is None and found is not None and password is None:
            password = found.password
    overrides = {
        "engine": config.database_engine,
        "host": config.database_host,
        "port": config.database_port,
        "socket": str(config.database_socket) if config.database_socket else None,
        "database": config.database_name,
        "user": config.database_user,
        "password": password,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if not overrides and config.database_url is None:
        return found, None
    if base is None:
        engine = overrides.pop("engine", "mysql")
        return DatabaseTarget(engine=engine, **overrides), "[instance] configuration"  # type: ignore[arg-type]
    values = {**base.__dict__, **overrides}
    return DatabaseTarget(**values), "[instance] configuration"


def discover_instance(root: Path, instance_config: InstanceConfig, environment: Mapping[str, str]) -> Instance:
    """Find the passbolt instance under ``root`` and what a backup of it must hold.

    ``instance_config`` names what detection must not guess; ``environment`` is
    what passbolt's ``env()`` calls see (on Docker the container's environment
    comes first). Returns the Instance, with what could not be read as findings.
    Raises SourceError when no passbolt instance is found, ConfigError when the
    configuration's overrides are unusable.
    """
    root = Path(root)
    config = instance_config
    findings: list[Finding] = []
    notes: list[str] = []
    layout_name = _choose_layout(root, config)
    install_dir = PurePosixPath(config.install_dir) if config.install_dir else None
    config_dir = PurePosixPath(config.config_dir) if config.config_dir else None
    layout = layout_named(layout_name, root=root, install_dir=install_dir, config_dir=config_dir)

    docker: DockerSetup | None = None
    container: str | None = None
    passbolt_environment: dict[str, str] = dict(environment)
    if layout_name == "docker":
        compose_file = (
            under_root(root, config.docker_compose_file) if config.docker_compose_file else find_compose_file(root)
        )
        docker = read_docker_setup(
            root,
            compose_file=compose_file,
            container=config.docker_container,
            database_container=config.docker_database_container,
            environment=environment,
        )
        for problem in docker.problems:
            findings.append(warning("docker-setup", problem))
        path_map = PathMap(root, docker.mounts, confined=True)
        container = docker.passbolt_container
        passbolt_environment = dict(docker.environment)
    else:
        path_map = PathMap(root)
    passbolt_environment, secret_problems = resolve_secret_files(passbolt_environment, _reader(path_map, container))
    for problem in secret_problems:
        findings.append(error("config-readable", problem + "; fix the secret or the variable"))
    register_environment_secrets(passbolt_environment)
    if docker is not None:
        register_environment_secrets(docker.database_environment)

    files: list[BackupFile] = []

    def add(role: str, path: PurePosixPath | str, *, origin: str, required: bool = True, kind: str = "file") -> BackupFile:
        posix = PurePosixPath(path)
        item = BackupFile(
            role=role,
            path=posix,
            location=path_map.locate(posix),
            kind=kind,  # type: ignore[arg-type]
            required=required,
            origin=origin,
            container=container if path_map.locate(posix) is None else None,
        )
        files[:] = [f for f in files if f.role != role]
        files.append(item)
        return item

    # -- configuration files -------------------------------------------------------
    main_path = PurePosixPath(config.passbolt_config) if config.passbolt_config else layout.main_config
    main_origin = "[instance] configuration" if config.passbolt_config else "layout default"
    main_config: dict[str, Any] = {}
    main_exists = _exists(path_map, main_path) or (path_map.locate(main_path) is None and container is not None)
    if layout_name == "docker" and not _exists(path_map, main_path) and config.passbolt_config is None:
        main_exists = False
        notes.append(f"no {main_path} on a volume: passbolt is configured by its environment")
    if main_exists or layout_name != "docker":
        add(roles.PASSBOLT_CONFIG, main_path, origin=main_origin)
    app_defaults: dict[str, Any] = {}
    datasource: dict[str, Any] = {}
    datasource_origin = "environment (DATASOURCES_DEFAULT_*)"

    if layout.is_v1:
        add(roles.APP_CONFIG, layout.config_dir / "core.php", origin="layout default")
        add(roles.DATABASE_CONFIG, layout.config_dir / "database.php", origin="layout default")
        if _exists(path_map, layout.config_dir / "email.php"):
            add(roles.EMAIL_CONFIG, layout.config_dir / "email.php", origin="layout default")
        try:
            parsed = _parse(main_path, path_map, container, layout, passbolt_environment)
            main_config = _merge(parsed.configure, parsed.variables.get("config") or {})
            if isinstance(parsed.returned, dict):
                main_config = _merge(main_config, parsed.returned)
        except SourceError as exc:
            findings.append(error("config-readable", f"{exc.message}; {exc.hint or ''}".rstrip("; "), str(main_path)))
        try:
            database_php = _parse(layout.config_dir / "database.php", path_map, container, layout, passbolt_environment)
            datasource = dict((database_php.classes.get("DATABASE_CONFIG") or {}).get("default") or {})
            datasource_origin = str(layout.config_dir / "database.php")
        except SourceError as exc:
            findings.append(error("config-readable", exc.message, str(layout.config_dir / "database.php")))
    else:
        app_path = layout.config_dir / "app.php"
        if layout_name != "docker" or _exists(path_map, app_path):
            add(roles.APP_CONFIG, app_path, origin="layout default", required=layout_name != "docker")
        if _exists(path_map, app_path):
            try:
                app_defaults = _parse(app_path, path_map, None, layout, passbolt_environment).returned or {}
            except SourceError as exc:
                # passbolt's own app.php is backed up as it is; its defaults are also built in here.
                findings.append(warning("config-readable", f"{exc.message}; the built-in defaults of app.php are used", str(app_path)))
        if main_exists:
            try:
                parsed = _parse(main_path, path_map, container, layout, passbolt_environment)
                if not isinstance(parsed.returned, dict):
                    raise SourceError(f"{main_path} does not return an array", hint="passbolt.php must 'return [...];'")
                main_config = parsed.returned
            except SourceError as exc:
                findings.append(
                    error("config-readable", f"{exc.message} ({exc.hint})" if exc.hint else exc.message, str(main_path))
                )
        environment_datasource = datasource_from_environment(passbolt_environment)
        app_datasource = read_dotted(app_defaults, "Datasources.default", {}) or {}
        main_datasource = read_dotted(main_config, "Datasources.default", {}) or {}
        datasource = {**environment_datasource, **{k: v for k, v in app_datasource.items() if v not in (None, "")}}
        datasource = {**datasource, **main_datasource}
        if main_datasource:
            datasource_origin = f"{main_path} (Datasources.default)"
    merged_config = _merge(app_defaults, main_config)

    # -- database --------------------------------------------------------------------------
    database: DatabaseTarget | None = None
    try:
        database = target_from_datasource(datasource, origin=datasource_origin)
    except SourceError as exc:
        findings.append(error("database-settings", f"{exc.message} ({exc.hint})" if exc.hint else exc.message))
    if database is not None and docker is not None and docker.database_image:
        image = docker.database_image.lower()
        if "mariadb" in image and database.engine == "mysql":
            database = DatabaseTarget(**{**database.__dict__, "engine": "mariadb"})
    try:
        configured, origin = _configured_database(config, database)
    except ConfigError as exc:
        raise exc
    if origin is not None:
        database, datasource_origin = configured, origin
        findings[:] = [f for f in findings if f.check != "database-settings"]

    # -- server keys and fingerprint ---------------------------------------------------
    key_settings = read_dotted(merged_config, "GPG.serverKey" if layout.is_v1 else "passbolt.gpg.serverKey", {}) or {}
    from_environment = server_key_from_environment(passbolt_environment)
    gpg_dir = layout.config_dir / "gpg"
    defaults = (
        {"public": gpg_dir / "serverkey.asc", "private": gpg_dir / "serverkey_private.asc"}
        if not layout.is_v1
        else {"public": gpg_dir / "unsecure.key", "private": gpg_dir / "unsecure_private.key"}
    )
    for role, key in ((roles.SERVER_KEY_PUBLIC, "public"), (roles.SERVER_KEY_PRIVATE, "private")):
        override = config.server_key_public if key == "public" else config.server_key_private
        if override is not None:
            add(role, PurePosixPath(override), origin="[instance] configuration")
        elif isinstance(key_settings, dict) and key_settings.get(key):
            add(role, str(key_settings[key]), origin=f"{main_path} serverKey.{key}")
        elif key in from_environment:
            add(role, from_environment[key], origin=f"PASSBOLT_GPG_SERVER_KEY_{key.upper()}")
        else:
            add(role, defaults[key], origin="layout default")
    fingerprint = config.server_key_fingerprint
    if not fingerprint and isinstance(key_settings, dict) and key_settings.get("fingerprint"):
        fingerprint = str(key_settings["fingerprint"])
    if not fingerprint:
        fingerprint = from_environment.get("fingerprint")
    fingerprint = re.sub(r"\s+", "", fingerprint).upper() if fingerprint else None

    # -- JWT, subscription, TLS -----------------------------------------------------------
    if not layout.is_v1:
        jwt_dir = PurePosixPath(config.jwt_dir) if config.jwt_dir else layout.config_dir / "jwt"
        jwt_origin = "[instance] configuration" if config.jwt_dir else "layout default"
        add(roles.JWT_PRIVATE, jwt_dir / "jwt.key", origin=jwt_origin)
        add(roles.JWT_PUBLIC, jwt_dir / "jwt.pem", origin=jwt_origin)
        for name in ("subscription_key.txt", "license"):
            if _exists(path_map, layout.config_dir / name):
                add(roles.SUBSCRIPTION_KEY, layout.config_dir / name, origin="layout default")
                break
    for index, tls in enumerate(config.tls_files):
        role = "tls-key" if str(tls).endswith(".key") else "tls-certificate"
        if any(f.role == role for f in files):
            role = f"tls-{index}"
        add(role, PurePosixPath(tls), origin="[instance] configuration")

    # -- version ---------------------------------------------------------------------------
    version, edition = _read_version(layout, path_map, container, passbolt_environment)
    if version is None and docker is not None:
        version = docker.version_from_image
        if version:
            notes.append(f"version {version} taken from the image tag {docker.image}")
    if version is None:
        findings.append(
            warning(
                "passbolt-version",
                f"passbolt's version is unknown ({layout.version_file} cannot be read): a restore must then be "
                "checked against the version by hand; name install_dir in the [instance] section if it is elsewhere",
            )
        )

    # -- avatars (files only before 3.2) ---------------------------------------------------
    avatars = PurePosixPath(config.avatars_dir) if config.avatars_dir else layout.avatars_dir
    parsed_version = _version_tuple(version)
    if config.avatars_dir is not None or (
        (parsed_version is None or parsed_version < AVATARS_IN_DATABASE_SINCE) and _exists(path_map, avatars)
    ) or (parsed_version is not None and parsed_version < AVATARS_IN_DATABASE_SINCE):
        add(roles.AVATARS, avatars, origin="layout default", kind="directory", required=False)

    # -- Docker's own files --------------------------------------------------------------
    if docker is not None:
        for role, location in docker.files:
            relative = PurePosixPath("/" + str(location.relative_to(root))) if location.is_relative_to(root) else PurePosixPath(location)
            files.append(BackupFile(role=role, path=relative, location=location, origin="docker compose"))

    backup_set = BackupSet(
        files=tuple(files),
        database=database,
        fingerprint=fingerprint,
        version=version,
        edition=edition,
        database_origin=datasource_origin if database is not None else None,
        database_container=docker.database_container if docker is not None else None,
        notes=tuple(notes),
    )
    return Instance(
        layout=layout_name,
        root=root,
        paths=layout,
        backup_set=backup_set,
        path_map=path_map,
        web_user=_web_user(root, layout, config),
        docker=docker,
        findings=tuple(findings),
        config=merged_config,
    )


def _read_version(
    layout: Layout, path_map: PathMap, container: str | None, environment: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """passbolt's version and edition from ``version.php``; (None, None) when it cannot be read."""
    try:
        parsed = _parse(layout.version_file, path_map, container, layout, environment)
    except SourceError:
        return None, None
    candidates: list[Any] = []
    if isinstance(parsed.returned, dict):
        candidates.append(read_dotted(parsed.returned, "passbolt.version"))
        edition = read_dotted(parsed.returned, "passbolt.edition")
    else:
        edition = None
    config_variable = parsed.variables.get("config") or {}
    candidates.append(read_dotted(config_variable, "App.version.number"))
    candidates.append(read_dotted(parsed.configure, "App.version.number"))
    candidates.append(read_dotted(config_variable, "passbolt.version"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return candidate, str(edition) if edition else None
    return None, None
