"""The configuration schema: one frozen pydantic model per section.

Nothing outside this package reads the raw TOML: every consumer receives these
objects. Unknown keys are errors (a typo must not silently disable a setting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base of every section: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageCredentials(Section):
    """Secrets for a storage target, when they live in the configuration file (keep it mode 0600).

    A credentials file (``credentials_file``) or the environment are the alternatives;
    ``docs/storage.md`` says which key each backend reads.
    """

    access_key_id: str | None = Field(default=None, description="S3 access key id")
    secret_access_key: str | None = Field(default=None, repr=False, description="S3 secret access key")
    session_token: str | None = Field(default=None, repr=False, description="S3 session token (temporary credentials)")
    password: str | None = Field(default=None, repr=False, description="SFTP password")
    key_passphrase: str | None = Field(default=None, repr=False, description="passphrase of the SFTP key file")

    def as_mapping(self) -> dict[str, str]:
        """The keys that are set, for the storage layer."""
        return {key: value for key, value in self.model_dump().items() if value is not None}


class TargetConfig(Section):
    """Another copy of the repository (3-2-1): backup replicates every new object to it."""

    name: str = Field(min_length=1, description="a short name for messages and status")
    url: str = Field(description="location: a folder, sftp://, s3:// or rclone: (see docs/storage.md)")
    credentials_file: Path | None = Field(default=None, description="credentials file for this target (mode 0600)")
    credentials: StorageCredentials | None = Field(default=None, description="credentials for this target")


class RepositoryConfig(Section):
    """Where snapshots go and the keys that protect them.

    ``recipients`` and ``writer_fingerprint`` are pinned here by ``init``: a reader
    trusts only what this file says, never what the storage says.
    """

    url: str = Field(description="repository location: a folder, sftp://, s3:// or rclone: (see docs/storage.md)")
    credentials_file: Path | None = Field(default=None, description="credentials file for the primary location (mode 0600)")
    credentials: StorageCredentials | None = Field(default=None, description="credentials for the primary location")
    targets: tuple[TargetConfig, ...] = Field(
        default=(), description="more copies of the repository; backup replicates each new snapshot to every one"
    )
    writer_key: Path = Field(description="the host's writer key file (mode 0600)")
    writer_fingerprint: str = Field(description="fingerprint of the writer's public key, pinned at init")
    recipients: tuple[str, ...] = Field(
        min_length=1, description="age X25519 or SSH public keys; any one identity restores"
    )
    lock_wait_seconds: float = Field(
        default=60.0, ge=0, description="how long a backup waits for another run's lock before failing"
    )
    cache_dir: Path | None = Field(
        default=None,
        description="the backup host's cache of the last dump's record ids (default $XDG_CACHE_HOME/strongroom, "
        "else ~/.cache/strongroom); losing it costs one slower backup, never data",
    )


Layout = Literal["auto", "debian", "rpm", "docker", "source", "v1"]


class InstanceConfig(Section):
    """The passbolt instance to back up; detection fills in what is not named."""

    root: Path = Field(default=Path("/"), description="filesystem root under which passbolt's files are found")
    layout: Layout = Field(default="auto", description="installation layout, or auto to detect it")
    # Explicit overrides. Paths are as passbolt sees them (inside the container for
    # Docker), looked up under ``root``. Anything named here wins over detection.
    install_dir: Path | None = Field(default=None, description="passbolt's code (holds config/version.php)")
    config_dir: Path | None = Field(default=None, description="passbolt's config directory (/etc/passbolt, config/, app/Config)")
    passbolt_config: Path | None = Field(default=None, description="the main config file (passbolt.php; v1: app.php)")
    server_key_public: Path | None = Field(default=None, description="the server's public key file (serverkey.asc)")
    server_key_private: Path | None = Field(default=None, description="the server's private key file (serverkey_private.asc)")
    server_key_fingerprint: str | None = Field(default=None, description="the configured server key fingerprint (40 hex)")
    jwt_dir: Path | None = Field(default=None, description="directory of jwt.key and jwt.pem")
    avatars_dir: Path | None = Field(default=None, description="avatar files (passbolt before 3.2 only)")
    tls_files: tuple[Path, ...] = Field(default=(), description="TLS certificate and key files to back up too")
    web_user: str | None = Field(default=None, description="the web server's user (www-data, nginx, wwwrun)")
    database_url: str | None = Field(
        default=None, description="database DSN without password: mysql://user@host:3306/name, postgres://user@host/name"
    )
    database_engine: Literal["mariadb", "mysql", "postgresql"] | None = Field(default=None, description="database engine")
    database_host: str | None = Field(default=None, description="database host name or address")
    database_port: int | None = Field(default=None, description="database TCP port")
    database_socket: Path | None = Field(default=None, description="database unix socket (instead of host and port)")
    database_name: str | None = Field(default=None, description="database name")
    database_user: str | None = Field(default=None, description="database user")
    database_password_file: Path | None = Field(
        default=None, description="file holding the database password (mode 0600); never put the password here"
    )
    docker_compose_file: Path | None = Field(default=None, description="passbolt's docker compose file")
    docker_container: str | None = Field(default=None, description="the running passbolt container's name")
    docker_database_container: str | None = Field(default=None, description="the running database container's name")


class DrillConfig(Section):
    """Restore drills: this machine's drill key, and the drill keys whose records are believed."""

    key: Path | None = Field(
        default=None, description="this machine's drill key file (mode 0600; default: drill.key beside the configuration)"
    )
    trusted_keys: tuple[str, ...] = Field(
        default=(), description="fingerprints of the drill keys whose drill records this machine trusts"
    )


class RetentionConfig(Section):
    """Which snapshots prune keeps (restic/borg style rules; a snapshot any rule keeps is kept)."""

    keep_last: int = Field(default=0, ge=0, description="the N newest snapshots")
    keep_hourly: int = Field(default=0, ge=0, description="the newest snapshot of each of the last N hours that have one")
    keep_daily: int = Field(default=0, ge=0, description="... of each of the last N days")
    keep_weekly: int = Field(default=0, ge=0, description="... of each of the last N ISO weeks")
    keep_monthly: int = Field(default=0, ge=0, description="... of each of the last N months")
    keep_yearly: int = Field(default=0, ge=0, description="... of each of the last N years")
    keep_within: str | None = Field(default=None, description="every snapshot within this of the newest: 30d, 2w, 1y6M, 12h")
    time_zone: str = Field(default="UTC", description="the time zone days, weeks, months and years are counted in")
    prune_grace: str = Field(
        default="1h", description="how long prune waits between marking unreferenced data and deleting it: 1h, 30m, 1d"
    )


class StatusConfig(Section):
    """When ``status`` calls a target stale, and when it asks for a repack."""

    max_backup_age: str = Field(default="26h", description="the last backup may be this old: 26h, 2d, ...")
    max_drill_age: str = Field(default="8d", description="the last successful drill may be this old")
    repack_warning_percent: float = Field(
        default=30.0, ge=0, le=100, description="warn when this share of stored data is dead inside live packs"
    )


class Config(Section):
    """The whole configuration file."""

    repository: RepositoryConfig | None = None
    instance: InstanceConfig = InstanceConfig()
    drill: DrillConfig = DrillConfig()
    retention: RetentionConfig = RetentionConfig()
    status: StatusConfig = StatusConfig()
