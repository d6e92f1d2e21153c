"""``restore SNAPSHOT --root DIR``: put a snapshot back onto a (new) passbolt server.

Order of work, so that nothing is changed before every refusal had its chance, and a
run killed halfway completes when run again with ``--replace-database``:

1. plan (:mod:`strongroom.actions.restore_plan`): read the snapshot, the target's
   passbolt version (a newer snapshot is refused), the target database (a non-empty
   one is refused without ``--replace-database``), compute every file, owner, mode;
   ``--dry-run`` stops here;
2. database: create it and its user (``--create-database``), drop the existing
   tables (``--replace-database``), load the dump through the drill's dump guard;
3. files: directories, then each file written beside its target and renamed over it,
   with passbolt's owner and mode for the target layout;
4. the server private key imported into the web user's keyring (GNUPGHOME);
5. passbolt's post-restore steps (``bin/cake passbolt migrate``, cache clear,
   ``healthcheck --posix``), run with ``--run-passbolt-steps`` when ``bin/cake``
   exists, otherwise returned for the administrator to run;
6. the drill's checks against the restored database and files, and the keyring.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom import execute
from strongroom.actions import target_database
from strongroom.actions.database_restore import LoadReport, database_component, load_snapshot_dump
from strongroom.actions.restore_plan import (
    PARTS,
    DatabasePlan,
    PassboltStep,
    PlannedPath,
    RestorePlan,
    TargetLayout,
    check_versions,
    datasource_from_env,
    datasource_from_php,
    part_of_role,
    permission_ids,
    read_target_version,
    target_layout,
)
from strongroom.dbserver.connection import DEFAULT_PORT, DatabaseTarget, connect
from strongroom.drill import checks as drill_checks
from strongroom.errors import CommandError, ConfigError, DatabaseError, IdentityError, SourceError, StrongroomError, UsageError
from strongroom.passbolt import installation
from strongroom.passbolt.config_edit import read_env_values, set_env_values, set_php_values
from strongroom.passbolt.from_docker import passbolt_php_from_environment
from strongroom.progress import LogReporter, Reporter
from strongroom.repository.repository import ONLY_WRITER_KEY, Repository, Snapshot
from strongroom.source import backupset as roles
from strongroom.source.docker import read_compose
from strongroom.source.envconfig import (
    datasource_from_environment,
    register_environment_secrets,
    resolve_secret_files,
    target_from_datasource,
)
from strongroom.source.layouts import under_root
from strongroom.source.php import parse_php, read_dotted

KEYRING_CHECK = "keyring"


@dataclass(frozen=True)
class ServerRestoreOptions:
    """What ``restore --root`` was told.

    ``database`` is the target database (None: the restored configuration's);
    ``admin`` the account that may create it (``create_database``); ``only`` the
    parts to restore (empty: all of them); ``layout`` the target layout (None: the
    snapshot's); ``web_user`` overrides the layout's web user.
    """

    root: Path
    layout: str | None = None
    database: DatabaseTarget | None = None
    admin: DatabaseTarget | None = None
    create_database: bool = False
    replace_database: bool = False
    only: tuple[str, ...] = ()
    dry_run: bool = False
    run_passbolt_steps: bool = False
    web_user: str | None = None
    docker_project: str | None = None


@dataclass
class StepResult:
    """A passbolt step that ran: its exit status and what it printed."""

    name: str
    command: str
    returncode: int
    output: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class ServerRestoreResult:
    """What a restore onto a server did (or, for ``--dry-run``, would do)."""

    plan: RestorePlan
    dry_run: bool
    database_actions: list[str] = field(default_factory=list)
    load: LoadReport | None = None
    written: list[str] = field(default_factory=list)
    keyring_fingerprints: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    checks: list[drill_checks.CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed_checks(self) -> list[str]:
        """Names of failed checks (and of a failed healthcheck step)."""
        names = drill_checks.failed(self.checks)
        names += [f"passbolt {step.name}" for step in self.steps if step.returncode != 0]
        return names

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dry_run": self.dry_run,
            "plan": self.plan.to_dict(),
            "database_actions": self.database_actions,
            "load": self.load.to_dict() if self.load else None,
            "written": self.written,
            "keyring_fingerprints": self.keyring_fingerprints,
            "passbolt_steps_run": [s.to_dict() for s in self.steps],
            "checks": [c.to_dict() for c in self.checks],
            "failed_checks": self.failed_checks,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- planning


class _Planner:
    """Builds the RestorePlan from the snapshot, the options and the target."""

    def __init__(self, repository: Repository, snapshot: Snapshot, options: ServerRestoreOptions, work_dir: Path) -> None:
        self.repository = repository
        self.snapshot = snapshot
        self.options = options
        self.work_dir = work_dir
        self.manifest: dict[str, Any] = dict(snapshot.body.get("manifest", {}))
        passbolt = self.manifest.get("passbolt", {})
        self.source_layout = str(passbolt.get("layout") or "debian")
        layout_name = options.layout or self.source_layout
        if (self.source_layout == "v1") != (layout_name == "v1"):
            raise UsageError(
                f"restoring a {self.source_layout} snapshot into the {layout_name} layout would be an upgrade between "
                "passbolt 1.x and 2+, not a restore",
                hint="restore into the same major layout, then follow passbolt's upgrade guide",
            )
        self.target = target_layout(options.root, layout_name, options.docker_project)
        self.web = installation.web_account(layout_name, options.web_user)
        parts = tuple(options.only) if options.only else PARTS
        if "files" in parts:
            parts = tuple(dict.fromkeys(parts + ("keys", "config")))
        self.parts = parts
        self.files = [f for f in self.manifest.get("files", []) if isinstance(f, dict)]
        self.index = repository.file_index(self.snapshot)
        self.contents: dict[str, bytes] = {}

    def content(self, record: dict[str, Any]) -> bytes:
        """The bytes of a file component (fetched once into the private work folder)."""
        name = str(record["component"])
        if name not in self.contents:
            destination = self.work_dir / f"component-{len(self.contents)}"
            self.repository.restore_component(self.snapshot, name, destination, index=self.index)
            self.contents[name] = destination.read_bytes()
            destination.unlink()
        return self.contents[name]

    def record(self, role: str) -> dict[str, Any] | None:
        for item in self.files:
            if item.get("role") == role:
                return item
        return None

    def plan(self) -> RestorePlan:
        passbolt = self.manifest.get("passbolt", {})
        plan = RestorePlan(
            snapshot=self.snapshot.name,
            snapshot_version=passbolt.get("version"),
            target_version=read_target_version(self.target),
            source_layout=self.source_layout,
            target_layout=self.target.layout,
            root=self.options.root,
            web=self.web,
            parts=self.parts,
        )
        check_versions(plan.snapshot_version, plan.target_version, plan.warnings)
        if not self.web.exists and not self.target.is_docker:
            plan.warnings.append(
                f"the web user {self.web.name!r} does not exist here: numeric ids {self.web.uid}:{self.web.gid} are used"
            )
        if os.geteuid() != 0:
            plan.warnings.append("not running as root: owners cannot be set (modes are); passbolt may not read its files")
        if "database" in self.parts:
            plan.database = self.plan_database(plan)
        if any(part in self.parts for part in ("keys", "config", "files")):
            self.plan_files(plan)
        self.plan_passbolt_steps(plan)
        return plan

    # -- database ------------------------------------------------------------------------

    def configured_datasource(self) -> tuple[DatabaseTarget | None, str]:
        engine = str(self.manifest.get("database", {}).get("engine") or "mariadb")
        config = self.record(roles.PASSBOLT_CONFIG)
        if config is not None and self.source_layout != "v1":
            return datasource_from_php(self.content(config).decode("utf-8", "replace"), engine), "the restored passbolt.php"
        env = self.record(roles.DOCKER_ENV)
        if env is not None:
            return datasource_from_env(read_env_values(self.content(env).decode("utf-8", "replace")), engine), "the restored passbolt.env"
        return None, "nothing"

    def plan_database(self, plan: RestorePlan) -> DatabasePlan:
        component = database_component(self.snapshot)
        dump_engine = str(self.manifest.get("database", {}).get("engine") or
                          ("postgresql" if component["kind"] == "postgresql-dump" else "mariadb"))
        if self.options.database is not None:
            target, origin = self.options.database, "--database"
        else:
            target, origin = self.configured_datasource()
            if target is None:
                raise UsageError("the snapshot's configuration names no database to restore into",
                                 hint="give --database URL (and --database-password-file)")
        if (target.engine == "postgresql") != (dump_engine == "postgresql"):
            raise UsageError(
                f"the snapshot holds a {dump_engine} dump, the target database is {target.engine}: a dump loads only into its own engine family",
                hint="give --database URL of a matching server",
            )
        if not target.database:
            raise UsageError("the target database has no name", hint="name it in --database URL (scheme://user@host/NAME)")
        state = target_database.inspect_target(target) if not self.options.create_database else self._inspect_or_missing(target)
        if not state.exists and not self.options.create_database:
            raise DatabaseError(f"the database {target.database!r} does not exist on {target.describe()}",
                                hint="create it, or give --create-database with --admin-database URL")
        if self.options.create_database and self.options.admin is None:
            raise UsageError("--create-database needs an account that may create databases and users",
                             hint="give --admin-database URL (and --admin-password-file)")
        if state.tables and not self.options.replace_database:
            raise UsageError(
                f"the target database {target.database!r} is not empty ({len(state.tables)} tables, e.g. "
                f"{', '.join(state.tables[:5])}): restore never writes over a database; nothing was changed",
                hint="name an empty database, or give --replace-database to drop its tables first (after a backup of it)",
            )
        version = state.server_version
        if version is None and self.options.admin is not None:
            version = target_database.server_version_of(self.options.admin)
        map_collations = dump_engine == "mysql" and version is not None and "mariadb" in version.lower()
        if map_collations:
            plan.notes.append("the dump comes from MySQL 8 and the target is MariaDB: its utf8mb4_0900 collations are mapped")
        return DatabasePlan(
            target=target, origin=origin, engine=dump_engine, exists=state.exists,
            create=self.options.create_database and not state.exists, existing_tables=state.tables,
            drop_tables=bool(state.tables), component=str(component["name"]), dump_bytes=int(component["size"]),
            server_version=version, map_mysql8_collations=map_collations,
        )

    def _inspect_or_missing(self, target: DatabaseTarget) -> target_database.DatabaseState:
        try:
            return target_database.inspect_target(target)
        except DatabaseError as error:
            if "wrong user or password" in error.message or "does not exist" in error.message:
                return target_database.DatabaseState(False, (), None)
            raise

    # -- files ---------------------------------------------------------------------------

    def add_directory(self, plan: RestorePlan, path: PurePosixPath, what: str, role: str) -> None:
        location = self.target.locate(path)
        if any(p.location == location for p in plan.paths):
            return
        permission = installation.directory_permission(self.target.layout.name, what)
        uid, gid, label = permission_ids(self.web, permission, self.target.is_docker)
        plan.paths.append(PlannedPath("directory", role, str(path), location, uid, gid, label, permission.mode, "directory"))

    def add_file(self, plan: RestorePlan, role: str, path: PurePosixPath, content: bytes, source: str,
                 change: str = "", location: Path | None = None, permission: installation.Permission | None = None) -> None:
        chosen = permission or installation.file_permission(self.target.layout.name, role)
        assert chosen is not None
        uid, gid, label = permission_ids(self.web, chosen, self.target.is_docker)
        plan.paths.append(PlannedPath("file", role, str(path), location or self.target.locate(path), uid, gid, label,
                                      chosen.mode, source, change, content))

    def plan_files(self, plan: RestorePlan) -> None:
        layout = self.target.layout
        config_dir = layout.config_dir
        wanted = [f for f in self.files if part_of_role(str(f.get("role"))) in self.parts]
        if not self.target.is_docker:
            self.add_directory(plan, config_dir, installation.CONFIG_DIRECTORY, "config-directory")
        if any(str(f.get("role")).startswith(("server-key", "jwt")) for f in wanted) or self.target.is_docker:
            self.add_directory(plan, config_dir / "gpg", installation.GPG_DIRECTORY, "gpg-directory")
            if not layout.is_v1:
                self.add_directory(plan, config_dir / "jwt", installation.JWT_DIRECTORY, "jwt-directory")
        docker_values: dict[str, str] = {}
        for record in wanted:
            role = str(record.get("role"))
            if role == roles.AVATARS:
                self.plan_avatar(plan, record)
            elif role.startswith("tls-"):
                self.plan_as_recorded(plan, record)
            elif role.startswith("docker-"):
                if self.target.is_docker:
                    self.plan_docker_file(plan, record)
            elif self.target.is_docker and role in (roles.PASSBOLT_CONFIG, roles.APP_CONFIG):
                docker_values.update(self.docker_values_from(role, record))
            else:
                path = self.target.config_path(role)
                if path is None:
                    plan.warnings.append(f"the {role} file has no place in the {layout.name} layout: not restored")
                    continue
                content, change = self.content(record), ""
                if role == roles.PASSBOLT_CONFIG:
                    content, change = self.rewrite_passbolt_php(plan, content)
                elif role == roles.DATABASE_CONFIG:
                    content, change = self.rewrite_v1_database_php(plan, content)
                self.add_file(plan, role, path, content, str(record["component"]), change)
        if (self.source_layout == "docker" and not self.target.is_docker and "config" in self.parts
                and not any(str(f.get("role")) == roles.PASSBOLT_CONFIG for f in wanted)):
            self.plan_passbolt_php_from_docker(plan)
        if self.target.is_docker and "config" in self.parts and self.source_layout != "docker":
            self.plan_generated_env(plan, docker_values)
        if any(str(f.get("role")) == roles.SERVER_KEY_PRIVATE for f in wanted):
            self.plan_keyring(plan)

    def plan_as_recorded(self, plan: RestorePlan, record: dict[str, Any]) -> None:
        path = PurePosixPath(str(record["path"]))
        if not path.is_absolute() or ".." in path.parts:
            plan.warnings.append(f"{path} is not an absolute path: not restored")
            return
        mode = int(record.get("mode") or 0o600)
        uid, gid = int(record.get("uid") or 0), int(record.get("gid") or 0)
        plan.paths.append(PlannedPath("file", str(record["role"]), str(path), under_root(self.options.root, path), uid, gid,
                                      f"{uid}:{gid}", mode, str(record["component"]), "owner and mode as backed up",
                                      self.content(record)))

    def plan_avatar(self, plan: RestorePlan, record: dict[str, Any]) -> None:
        if self.target.is_docker:
            plan.warnings.append("avatar files have no place in the Docker image (passbolt 3.2+ keeps them in the database): not restored")
            return
        source_dir = installation_avatars(self.source_layout)
        path = PurePosixPath(str(record["path"]))
        try:
            relative = path.relative_to(source_dir)
        except ValueError:
            plan.warnings.append(f"the avatar {path} is outside {source_dir}: not restored")
            return
        if ".." in relative.parts:
            return
        target_dir = self.target.layout.avatars_dir
        self.add_directory(plan, target_dir, installation.AVATARS_DIRECTORY, "avatars-directory")
        for depth in range(1, len(relative.parts)):
            self.add_directory(plan, target_dir / PurePosixPath(*relative.parts[:depth]), installation.AVATARS_DIRECTORY,
                               "avatars-directory")
        self.add_file(plan, roles.AVATARS, target_dir / relative, self.content(record), str(record["component"]))

    def plan_docker_file(self, plan: RestorePlan, record: dict[str, Any]) -> None:
        role = str(record["role"])
        path = PurePosixPath(str(record["path"]))
        content, change = self.content(record), ""
        if role == roles.DOCKER_ENV:
            content, change = self.rewrite_env(plan, content)
        self.add_file(plan, role, path, content, str(record["component"]), change, location=under_root(self.options.root, path))

    def docker_values_from(self, role: str, record: dict[str, Any]) -> dict[str, str]:
        """The env values a package config file gives the Docker image."""
        text = self.content(record).decode("utf-8", "replace")
        parsed = parse_php(text, path=CONFIG_FILE_NAMES.get(role, role), constants=self.target.layout.constants(), environment={})
        data = parsed.returned if isinstance(parsed.returned, dict) else {}
        values: dict[str, str] = {}
        if role == roles.APP_CONFIG:
            salt = read_dotted(data, "Security.salt")
            if salt:
                values["SECURITY_SALT"] = str(salt)
            return values
        for variable, dotted in ENV_OF_PHP.items():
            value = read_dotted(data, dotted)
            if value not in (None, ""):
                values[variable] = "true" if value is True else "false" if value is False else str(value)
        return values

    def docker_environment(self, plan: RestorePlan) -> tuple[dict[str, str], str | None] | None:
        """The passbolt container's environment as the snapshot's compose, env and secret files give
        it, and the compose file's database service; None when the snapshot holds none of them.

        The files are written into the private work folder at their recorded paths and read
        there as discovery reads them on a Docker host (env files, ``.env`` interpolation,
        ``*_FILE`` secrets through the compose file's mounts)."""
        records = [f for f in self.files if str(f.get("role", "")).startswith("docker-")]
        files_root = self.work_dir / "docker-files"
        compose_file: Path | None = None
        env_file: Path | None = None
        for record in records:
            path = PurePosixPath(str(record.get("path")))
            if not path.is_absolute() or ".." in path.parts:
                continue
            location = under_root(files_root, path)
            location.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(location, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(self.content(record))
            if record.get("role") == roles.DOCKER_COMPOSE:
                compose_file = location
            elif record.get("role") == roles.DOCKER_ENV:
                env_file = location
        if compose_file is not None:
            try:
                compose = read_compose(compose_file, files_root, {})
            except SourceError as error:
                plan.warnings.append(f"{error.message}: the snapshot's env file alone is read")
            else:
                environment, problems = resolve_secret_files(compose.environment, _mounted_reader(compose.mounts))
                plan.warnings.extend(problems)
                return environment, compose.database_service
        if env_file is not None:
            return read_env_values(env_file.read_text(encoding="utf-8", errors="replace")), None
        return None

    def plan_passbolt_php_from_docker(self, plan: RestorePlan) -> None:
        """Docker -> package or source: write passbolt.php (and app.php's salt) from the Docker environment."""
        found = self.docker_environment(plan)
        if found is None:
            plan.warnings.append("the snapshot holds no Docker compose or env file: no passbolt.php is written; "
                                 "write one from passbolt.default.php by hand")
            return
        environment, database_service = found
        register_environment_secrets(environment)
        if plan.database is not None:
            database = plan.database.target
        else:
            try:
                database = target_from_datasource(datasource_from_environment(environment),
                                                  origin="the snapshot's Docker environment")
            except (ConfigError, SourceError) as error:
                plan.warnings.append(f"{error.message}: no passbolt.php is written; give --database URL")
                return
            if database.host in (database_service, "db"):
                plan.warnings.append(
                    f"the written passbolt.php names the database host {database.host!r}, the compose service: "
                    "give --database URL (or set Datasources.default.host by hand)")
        try:
            generated = passbolt_php_from_environment(environment, database, self.target.layout.config_dir / "gpg")
        except SourceError as error:
            plan.warnings.append(f"{error.message} ({error.hint})")
            return
        path = self.target.config_path(roles.PASSBOLT_CONFIG)
        assert path is not None
        self.add_file(plan, roles.PASSBOLT_CONFIG, path, generated.text.encode("utf-8"), "generated",
                      f"written from the Docker environment ({', '.join(generated.carried)})")
        if generated.left:
            plan.warnings.append("the Docker environment sets what the written passbolt.php does not carry: "
                                 f"{', '.join(generated.left)}; add what matters to {path} by hand")
        if generated.salt is not None:
            self.plan_salt(plan, generated.salt)

    def plan_salt(self, plan: RestorePlan, salt: str) -> None:
        """Set ``Security.salt`` in the target's own app.php (the package installed it) to the snapshot's."""
        path = self.target.config_path(roles.APP_CONFIG)
        assert path is not None
        location = self.target.locate(path)
        try:
            text = location.read_text(encoding="utf-8")
        except OSError:
            plan.warnings.append(f"{path} is not on the target (is passbolt installed?): set its Security.salt to "
                                 "the SECURITY_SALT of the snapshot's Docker environment by hand")
            return
        try:
            rewritten = set_php_values(text, {"Security.salt": salt}, file_name="app.php",
                                       constants=self.target.layout.constants())
        except SourceError as error:
            plan.warnings.append(f"{error.message}: set Security.salt in {path} to the snapshot's SECURITY_SALT by hand")
            return
        if rewritten != text:
            self.add_file(plan, roles.APP_CONFIG, path, rewritten.encode("utf-8"), "the target's app.php",
                          "Security.salt from the Docker environment's SECURITY_SALT")

    def plan_generated_env(self, plan: RestorePlan, values: dict[str, str]) -> None:
        existing_location = self.target.locate(self.target.env_file)
        existing = existing_location.read_text(encoding="utf-8") if existing_location.is_file() else ""
        database = plan.database.target if plan.database else None
        values = dict(values)
        if database is not None:
            values.update(self.env_datasource(database))
        values.setdefault("DATASOURCES_DEFAULT_HOST", "db")
        if database is not None and not existing:
            # Inside the compose network the database listens on its engine's usual port.
            values.setdefault("DATASOURCES_DEFAULT_PORT", str(DEFAULT_PORT[database.engine]))
        text = set_env_values(existing, values)
        change = f"generated from the {self.source_layout} configuration" + (" (merged into the existing file)" if existing else "")
        self.add_file(plan, roles.DOCKER_ENV, self.target.env_file, text.encode("utf-8"), "generated", change,
                      location=existing_location, permission=installation.DOCKER_HOST_PERMISSIONS["docker-env"])

    def env_datasource(self, target: DatabaseTarget) -> dict[str, str]:
        """The env values naming ``target``'s account and database (the host stays the compose service)."""
        values = {"DATASOURCES_DEFAULT_USERNAME": target.user or "", "DATASOURCES_DEFAULT_PASSWORD": target.password or "",
                  "DATASOURCES_DEFAULT_DATABASE": target.database or ""}
        if target.engine == "postgresql":
            values["DATASOURCES_DEFAULT_DRIVER"] = "Cake\\Database\\Driver\\Postgres"
        return values

    def rewrite_env(self, plan: RestorePlan, content: bytes) -> tuple[bytes, str]:
        if plan.database is None or plan.database.origin != "--database":
            return content, ""
        current = read_env_values(content.decode("utf-8", "replace"))
        wanted = self.env_datasource(plan.database.target)
        changed = {name: value for name, value in wanted.items() if current.get(name, "") != value}
        if not changed:
            return content, ""
        plan.database.datasource_updates = tuple(sorted(changed))
        plan.notes.append("passbolt.env keeps DATASOURCES_DEFAULT_HOST: inside the compose network the database is its service name")
        return set_env_values(content.decode("utf-8"), changed).encode("utf-8"), "datasource updated: " + ", ".join(sorted(changed))

    def rewrite_passbolt_php(self, plan: RestorePlan, content: bytes) -> tuple[bytes, str]:
        text = content.decode("utf-8")
        constants = self.target.layout.constants()
        parsed = parse_php(text, path="passbolt.php", environment={}, constants=constants)
        data = parsed.returned if isinstance(parsed.returned, dict) else {}
        updates: dict[str, str | int] = {}
        layout = self.target.layout
        for dotted, name in (("passbolt.gpg.serverKey.public", "serverkey.asc"), ("passbolt.gpg.serverKey.private", "serverkey_private.asc")):
            configured = read_dotted(data, dotted)
            wanted = str(layout.config_dir / "gpg" / name)
            if configured is not None and str(configured) != wanted:
                updates[dotted] = wanted
        if plan.database is not None and plan.database.origin == "--database":
            target = plan.database.target
            source = read_dotted(data, "Datasources.default") or {}
            desired: dict[str, str | int] = {
                "host": target.host, "port": str(target.effective_port), "username": target.user or "",
                "password": target.password or "", "database": target.database or "",
            }
            _socket_update(desired, target, source)
            for key, value in desired.items():
                if str(source.get(key, "")) != str(value):
                    updates[f"Datasources.default.{key}"] = value
            plan.database.datasource_updates = tuple(sorted(k.rsplit(".", 1)[1] for k in updates if k.startswith("Datasources")))
        rewritten = _edited(plan, text, updates, "passbolt.php", constants)
        if rewritten is None:
            return content, ""
        return rewritten.encode("utf-8"), "updated: " + ", ".join(sorted(updates))

    def rewrite_v1_database_php(self, plan: RestorePlan, content: bytes) -> tuple[bytes, str]:
        """v1: point ``DATABASE_CONFIG::$default`` at ``--database`` (CakePHP 2 calls the account ``login``)."""
        if plan.database is None or plan.database.origin != "--database":
            return content, ""
        text = content.decode("utf-8")
        constants = self.target.layout.constants()
        parsed = parse_php(text, path="database.php", environment={}, constants=constants)
        source = (parsed.classes.get("DATABASE_CONFIG") or {}).get("default") or {}
        target = plan.database.target
        desired: dict[str, str] = {"host": target.host, "login": target.user or "", "password": target.password or "",
                                   "database": target.database or ""}
        if "port" in source or target.effective_port != DEFAULT_PORT[target.engine]:
            desired["port"] = str(target.effective_port)
        _socket_update(desired, target, source)
        updates: dict[str, str | int] = {f"$default.{key}": value for key, value in desired.items()
                                         if str(source.get(key, "")) != value}
        rewritten = _edited(plan, text, updates, "database.php", constants)
        if rewritten is None:
            return content, ""
        plan.database.datasource_updates = tuple(sorted(key.split(".", 1)[1] for key in updates))
        return rewritten.encode("utf-8"), "updated: " + ", ".join(sorted(key.split(".", 1)[1] for key in updates))

    def plan_keyring(self, plan: RestorePlan) -> None:
        if self.target.is_docker:
            plan.notes.append("Docker: the passbolt container imports the server key into its keyring at every start")
            return
        keyring = self.target.keyring
        self.add_directory(plan, keyring, installation.KEYRING_DIRECTORY, "keyring")
        plan.keyring = next(p for p in plan.paths if p.location == self.target.locate(keyring))
        plan.keyring_import = True

    # -- passbolt steps ------------------------------------------------------------------

    def plan_passbolt_steps(self, plan: RestorePlan) -> None:
        layout = self.target.layout
        cake_path = layout.install_dir / "bin" / "cake"
        commands = (("migrate", ("passbolt", "migrate")), ("cache clear", ("cache", "clear_all")),
                    ("healthcheck", ("passbolt", "healthcheck", "--posix")))
        if self.target.is_docker:
            compose = self.target.compose_directory / "docker-compose.yaml"
            for name, arguments in commands:
                shown = (f"docker compose -f {compose} exec passbolt su -m -c "
                         f"\"{cake_path} {' '.join(arguments)}\" -s /bin/sh www-data")
                plan.passbolt_steps.append(PassboltStep(name, (), shown, False))
            return
        cake = under_root(self.options.root, cake_path)
        runnable = cake.is_file() and os.access(cake, os.X_OK) and self.options.run_passbolt_steps
        if self.options.run_passbolt_steps and not runnable:
            plan.warnings.append(f"--run-passbolt-steps: {cake_path} is not there (or not executable): the steps are only listed")
        for name, arguments in commands:
            shown = f"sudo -H -u {self.web.name} {cake_path} {' '.join(arguments)}"
            plan.passbolt_steps.append(PassboltStep(name, (str(cake), *arguments), shown, runnable))


CONFIG_FILE_NAMES = {roles.PASSBOLT_CONFIG: "passbolt.php", roles.APP_CONFIG: "app.php"}
# passbolt.php keys and the Docker image's variables for them.
ENV_OF_PHP = {
    "APP_FULL_BASE_URL": "App.fullBaseUrl",
    "PASSBOLT_GPG_SERVER_KEY_FINGERPRINT": "passbolt.gpg.serverKey.fingerprint",
    "DATASOURCES_DEFAULT_USERNAME": "Datasources.default.username",
    "DATASOURCES_DEFAULT_PASSWORD": "Datasources.default.password",
    "DATASOURCES_DEFAULT_DATABASE": "Datasources.default.database",
    "EMAIL_TRANSPORT_DEFAULT_HOST": "EmailTransport.default.host",
    "EMAIL_TRANSPORT_DEFAULT_PORT": "EmailTransport.default.port",
    "EMAIL_TRANSPORT_DEFAULT_USERNAME": "EmailTransport.default.username",
    "EMAIL_TRANSPORT_DEFAULT_PASSWORD": "EmailTransport.default.password",
    "EMAIL_TRANSPORT_DEFAULT_TLS": "EmailTransport.default.tls",
}


def _socket_update(desired: dict[str, Any], target: DatabaseTarget, source: dict[str, Any]) -> None:
    """The datasource's socket: the target's, or none where the restored file named one."""
    if target.socket:
        desired["unix_socket"] = target.socket
    elif source.get("unix_socket"):
        desired["unix_socket"] = ""


def _edited(plan: RestorePlan, text: str, updates: dict[str, str | int], file_name: str, constants: Any) -> str | None:
    """``text`` with ``updates`` set; None when there are none, or when they cannot be made safely
    (then the file is restored as backed up, and the plan warns)."""
    if not updates:
        return None
    try:
        return set_php_values(text, updates, file_name=file_name, constants=constants)
    except SourceError as error:
        plan.warnings.append(f"{error.message}: {file_name} was restored as backed up ({error.hint})")
        return None


def _mounted_reader(mounts: list[tuple[PurePosixPath, Path]]) -> Callable[[PurePosixPath], str]:
    """Read a file by its path in the container, through the compose file's mounts."""

    def read(path: PurePosixPath) -> str:
        for inside, host in mounts:
            if path == inside or inside in path.parents:
                location = host if path == inside else host / path.relative_to(inside)
                try:
                    return location.read_text(encoding="utf-8")
                except OSError:
                    raise SourceError(f"the snapshot does not hold {path}") from None
        raise SourceError(f"no mount of the compose file holds {path}")

    return read


def installation_avatars(layout_name: str) -> PurePosixPath:
    """The avatars directory of the snapshot's layout, as passbolt saw it."""
    from strongroom.source.layouts import layout_named

    return layout_named(layout_name).avatars_dir


# --------------------------------------------------------------------------- execution


def _write_file(entry: PlannedPath, chown: bool) -> None:
    """Write one planned file beside its target, give it its owner and mode, rename it over the target."""
    assert entry.content is not None
    location = entry.location
    location.parent.mkdir(parents=True, exist_ok=True)
    temporary = location.with_name(f".{location.name}.strongroom-{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(entry.content)
            stream.flush()
            os.fsync(stream.fileno())
            if chown:
                os.fchown(stream.fileno(), entry.uid, entry.gid)
            os.fchmod(stream.fileno(), entry.mode)
        os.replace(temporary, location)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _apply_directory(entry: PlannedPath, chown: bool) -> None:
    entry.location.mkdir(parents=True, exist_ok=True)
    if chown:
        os.chown(entry.location, entry.uid, entry.gid, follow_symlinks=False)
    os.chmod(entry.location, entry.mode)


def _gpg_environment(keyring: Path) -> dict[str, str]:
    return {"GNUPGHOME": str(keyring), "LC_ALL": "C"}


# gpg-agent's socket lives in the keyring when /run/user/<uid> does not exist; a unix socket path is
# limited to 108 bytes, so a keyring deeper than this is filled through a short private copy.
SOCKET_PATH_LIMIT = 80


def _import_server_key(plan: RestorePlan, private_key: bytes, chown: bool, report: Reporter) -> list[str]:
    """Import the server private key into the keyring as the web user (root, then chown, when it cannot be).

    Returns the fingerprints of the secret keys now in the keyring. Raises CommandError when gpg fails.
    """
    assert plan.keyring is not None
    keyring = plan.keyring.location
    web = plan.web
    short = len(str(keyring)) <= SOCKET_PATH_LIMIT
    as_web = short and web.exists and os.geteuid() == 0 and _reachable_by(keyring, web.uid, web.gid)
    if web.exists and os.geteuid() == 0 and not as_web:
        report.note(f"gpg runs as root for {keyring} (the web user cannot reach it, or its path is too long for "
                    "gpg-agent's socket); the keyring is then given to the web user")
    if short:
        fingerprints = _gpg_import(keyring, private_key, web.name if as_web else None)
    else:
        with execute.private_directory("strongroom-gpg-") as staging:
            if keyring.is_dir():
                shutil.copytree(keyring, staging, dirs_exist_ok=True, symlinks=True)
            fingerprints = _gpg_import(staging, private_key, None)
            for leftover in staging.glob("S.*"):
                leftover.unlink()
            shutil.copytree(staging, keyring, dirs_exist_ok=True, symlinks=True)
    if chown and not as_web:
        for directory, subdirectories, files in os.walk(keyring):
            for name in subdirectories + files:
                os.chown(os.path.join(directory, name), web.uid, web.gid, follow_symlinks=False)
        os.chown(keyring, web.uid, web.gid)
    os.chmod(keyring, 0o700)
    return fingerprints


def _gpg_import(keyring: Path, private_key: bytes, user: str | None) -> list[str]:
    """Import ``private_key`` into the keyring ``keyring`` (as ``user``); return the secret keys' fingerprints."""
    arguments = ["gpg", "--homedir", str(keyring), "--batch", "--no-tty"]
    environment = _gpg_environment(keyring)
    try:
        execute.run([*arguments, "--import"], input=private_key, env=environment, user=user,
                    what="importing the server key into the keyring", timeout=120)
        listing = execute.run([*arguments, "--with-colons", "--list-secret-keys"], env=environment,
                              user=user, what="listing the keyring", timeout=60)
    finally:
        with contextlib.suppress(StrongroomError):
            execute.run(["gpgconf", "--homedir", str(keyring), "--kill", "all"], env=environment,
                        user=user, check=False, timeout=30)
    fingerprints = []
    lines = listing.stdout.decode("utf-8", "replace").splitlines()
    for number, line in enumerate(lines):
        if line.startswith("sec:") and number + 1 < len(lines) and lines[number + 1].startswith("fpr:"):
            fingerprints.append(lines[number + 1].split(":")[9].upper())
    return fingerprints


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    """True when account uid:gid may traverse every parent of ``path`` (execute bit for owner, group or others)."""
    for parent in [path, *path.parents]:
        try:
            info = os.stat(parent)
        except OSError:
            return False
        if info.st_uid == uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid == gid:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            return False
    return True


def _run_step(plan: RestorePlan, step: PassboltStep) -> StepResult:
    web = plan.web
    as_user: str | int | None = None
    group: int | None = None
    if os.geteuid() == 0:
        as_user, group = (web.name, None) if web.exists else (web.uid, web.gid)
    home = str(under_root(plan.root, installation.PACKAGE_KEYRING.parent)) if plan.target_layout.name != "source" else "/var/www"
    environment = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}
    if plan.keyring is not None:
        environment["GNUPGHOME"] = str(plan.keyring.location)
    install_dir = under_root(plan.root, plan.target_layout.install_dir)
    completed = execute.run(list(step.argv), env=environment, inherit_env=False, user=as_user, group=group,
                            cwd=install_dir if install_dir.is_dir() else None, check=False, timeout=900,
                            what=f"passbolt {step.name}")
    output = (completed.stdout.decode("utf-8", "replace") + completed.stderr)[-4000:]
    return StepResult(step.name, step.shown, completed.returncode, execute.mask(output))


def _restored_files(plan: RestorePlan) -> drill_checks.RestoredFiles:
    found: dict[str, Path | None] = {}
    original: dict[str, str] = {}
    names = {roles.SERVER_KEY_PUBLIC: "server_public_key", roles.SERVER_KEY_PRIVATE: "server_private_key",
             roles.PASSBOLT_CONFIG: "passbolt_config", roles.DOCKER_ENV: "docker_env", roles.JWT_PRIVATE: "jwt_private_key",
             roles.JWT_PUBLIC: "jwt_public_key"}
    for entry in plan.paths:
        field_name = names.get(entry.role)
        if field_name and entry.kind == "file":
            found[field_name] = entry.location
            original[field_name] = entry.path
    return drill_checks.RestoredFiles(**found, original_paths=original)


def _run_checks(plan: RestorePlan, manifest: dict[str, Any], fingerprints: list[str]) -> list[drill_checks.CheckResult]:
    database = manifest.get("database", {})
    facts = drill_checks.SnapshotFacts(
        dump_row_counts=dict(database.get("row_counts") or {}),
        live_row_counts=database.get("live_row_counts"),
        server_fingerprint=manifest.get("configured_fingerprint"),
        passbolt_version=manifest.get("passbolt", {}).get("version"),
    )
    files = _restored_files(plan)
    wanted: list[str] = []
    if plan.database is not None:
        wanted += [drill_checks.TABLES, drill_checks.ROW_COUNTS, drill_checks.REFERENTIAL_INTEGRITY, drill_checks.USER_KEYS]
    if "keys" in plan.parts:
        wanted += [drill_checks.SERVER_KEY]
        if files.jwt_private_key is not None or files.jwt_public_key is not None:
            wanted.append(drill_checks.JWT_KEYS)
        if plan.database is not None:
            wanted.append(drill_checks.SERVER_KEY_DECRYPTS)
    if "config" in plan.parts and (files.passbolt_config is not None or files.docker_env is not None):
        wanted.append(drill_checks.CONFIGURATION)
    results: list[drill_checks.CheckResult] = []
    if wanted and plan.database is None:
        # Files only: the file checks run alone (run_checks needs a database).
        file_checks = {drill_checks.SERVER_KEY: lambda: drill_checks.check_server_key(files, facts),
                       drill_checks.JWT_KEYS: lambda: drill_checks.check_jwt_keys(files),
                       drill_checks.CONFIGURATION: lambda: drill_checks.check_configuration(files)}
        results = [file_checks[name]() for name in wanted if name in file_checks]
    elif wanted:
        connection = connect(plan.database.target, timeout=15) if plan.database is not None else None
        try:
            restored = drill_checks.RestoredDatabase(connection, plan.database.target.engine,  # type: ignore[arg-type, union-attr]
                                                     plan.database.target.schema) if plan.database else None
            results = drill_checks.run_checks(restored, files, facts, only=wanted)  # type: ignore[arg-type]
        finally:
            if connection is not None:
                connection.close()
    if plan.keyring_import:
        expected = str(manifest.get("configured_fingerprint") or "").upper()
        if expected and expected in fingerprints:
            results.append(drill_checks.CheckResult(KEYRING_CHECK, drill_checks.Status.PASS,
                                                    f"the keyring {plan.keyring.path} holds the server key {expected}"))  # type: ignore[union-attr]
        elif fingerprints and not expected:
            results.append(drill_checks.CheckResult(KEYRING_CHECK, drill_checks.Status.UNPROVEN,
                                                    "the keyring holds a secret key, the snapshot names no fingerprint"))
        else:
            results.append(drill_checks.CheckResult(KEYRING_CHECK, drill_checks.Status.FAIL,
                                                    f"the keyring does not hold the server key {expected}",
                                                    {"found": fingerprints}))
    return results


def run(repository: Repository, reference: str, options: ServerRestoreOptions, reporter: Reporter | None = None) -> ServerRestoreResult:
    """Restore snapshot ``reference`` onto the server whose filesystem is at ``options.root``.

    Returns the result (with the plan; with ``dry_run`` nothing else happened).
    Raises UsageError (a refusal: newer snapshot, non-empty database, bad options),
    IdentityError, IntegrityError, DatabaseError, CommandError, StorageError.
    """
    report = reporter or LogReporter()
    started = time.monotonic()
    if not repository.identities:
        raise IdentityError(ONLY_WRITER_KEY, hint="give --identity FILE: an age identity, an SSH private key, "
                            "or the passphrase identity made by init")
    root = options.root
    if not root.is_dir():
        raise UsageError(f"the target root {root} is not a directory", hint="name the target's filesystem root, e.g. --root /")
    snapshot = repository.load_snapshot(reference)
    repository.check_identity()
    with execute.private_directory("strongroom-restore-") as work_dir:
        report.phase("planning the restore")
        plan = _Planner(repository, snapshot, options, work_dir).plan()
        for warning in plan.warnings:
            report.warn(warning)
        result = ServerRestoreResult(plan, options.dry_run)
        if options.dry_run:
            result.seconds = time.monotonic() - started
            report.done()
            return result
        chown = os.geteuid() == 0
        database = plan.database
        if database is not None:
            if database.create:
                assert options.admin is not None
                result.database_actions += target_database.create_database(options.admin, database.target)
            if database.drop_tables:
                # Tables appeared since planning are dropped too: the database is the one named.
                state = target_database.inspect_target(database.target)
                target_database.drop_tables(database.target, state.tables)
                result.database_actions.append(f"dropped {len(state.tables)} table(s)")
            result.load = load_snapshot_dump(repository, snapshot, database.target, work_dir=work_dir,
                                             map_mysql8_collations=database.map_mysql8_collations, reporter=report)
            result.database_actions.append(f"loaded {database.component}: {result.load.rows} rows")
        report.phase("writing files")
        for entry in plan.paths:
            if entry.kind == "directory":
                _apply_directory(entry, chown)
        for entry in plan.paths:
            if entry.kind == "file":
                _write_file(entry, chown)
                result.written.append(str(entry.location))
        for entry in sorted((e for e in plan.paths if e.kind == "directory"), key=lambda e: -len(e.location.parts)):
            _apply_directory(entry, chown)
        if plan.keyring_import:
            report.phase("importing the server key into the keyring")
            private = next(e for e in plan.paths if e.role == roles.SERVER_KEY_PRIVATE)
            assert private.content is not None
            result.keyring_fingerprints = _import_server_key(plan, private.content, chown, report)
        for step in plan.passbolt_steps:
            if step.run:
                report.phase(f"passbolt {step.name}")
                step_result = _run_step(plan, step)
                result.steps.append(step_result)
                if step.name == "migrate" and step_result.returncode != 0:
                    raise CommandError(f"passbolt migrate failed (exit status {step_result.returncode}):\n{step_result.output[-1500:]}",
                                       program="cake", returncode=step_result.returncode,
                                       hint="read passbolt's message above, fix it, then run the remaining steps by hand")
        report.phase("checking the restored instance")
        result.checks = _run_checks(plan, dict(snapshot.body.get("manifest", {})), result.keyring_fingerprints)
    result.seconds = time.monotonic() - started
    report.done()
    return result
