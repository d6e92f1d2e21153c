"""``init``: create the repository, the writer key and the configuration's [repository] section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strongroom.config.loading import load_config, write_config
from strongroom.config.schema import Config, RepositoryConfig
from strongroom.errors import ConfigError, UsageError
from strongroom.repository.keys import create_passphrase_identity, expand_recipients
from strongroom.repository.repository import Repository
from strongroom.storage.layers import open_backend


@dataclass(frozen=True)
class InitOptions:
    """What ``init`` needs: where the repository goes, who can restore, where keys and config go."""

    repository: str
    recipients: tuple[str, ...]
    config_path: Path
    writer_key: Path | None = None
    passphrase_identity: Path | None = None
    passphrase: str | None = None
    root: Path | None = None


@dataclass(frozen=True)
class InitResult:
    """What ``init`` made."""

    location: str
    repository_id: str
    writer_fingerprint: str
    writer_key: Path
    config_path: Path
    recipients: tuple[str, ...]
    passphrase_identity: Path | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "repository": self.location,
            "repository_id": self.repository_id,
            "writer_fingerprint": self.writer_fingerprint,
            "writer_key": str(self.writer_key),
            "config": str(self.config_path),
            "recipients": list(self.recipients),
            "passphrase_identity": str(self.passphrase_identity) if self.passphrase_identity else None,
        }


def run(options: InitOptions) -> InitResult:
    """Create everything; returns the result. Raises UsageError, ConfigError, IdentityError, RepositoryError, StorageError.

    Nothing is created when the configuration already has a [repository] section or
    the writer key file exists.
    """
    existing: Config | None = None
    if options.config_path.exists():
        existing = load_config(options.config_path)
        if existing.repository is not None:
            raise ConfigError(
                f"{options.config_path} already configures a repository ({existing.repository.url})",
                hint="name another configuration file with --config",
            )
    writer_key_path = (options.writer_key or options.config_path.parent / "writer.key").absolute()
    if writer_key_path.exists():
        raise UsageError(f"the writer key file {writer_key_path} already exists", hint="name another with --writer-key")
    recipients = expand_recipients(list(options.recipients)) if options.recipients else []
    if options.passphrase_identity is not None:
        if options.passphrase is None:
            raise UsageError("a passphrase identity needs a passphrase")
        recipients.append(create_passphrase_identity(options.passphrase_identity, options.passphrase))
    if not recipients:
        raise UsageError(
            "init needs at least one recipient",
            hint="give --recipient KEY (age1... or an SSH public key), or --passphrase-identity FILE",
        )
    location = options.repository
    if not location.startswith("local:") and "://" not in location:
        location = str(Path(location).expanduser().absolute())
    backend = open_backend(location, create=True)
    repository, writer_key = Repository.init(backend, recipients=recipients)
    writer_key.save(writer_key_path)
    section = RepositoryConfig(
        url=location,
        writer_key=writer_key_path,
        writer_fingerprint=writer_key.fingerprint,
        recipients=tuple(recipients),
    )
    config = existing.model_copy(update={"repository": section}) if existing else Config(repository=section)
    if options.root is not None:
        # The passbolt instance lives under another root (a sandbox, a mounted disk).
        config = config.model_copy(update={"instance": config.instance.model_copy(update={"root": options.root.absolute()})})
    write_config(config, options.config_path)
    return InitResult(
        location, repository.repository_id, writer_key.fingerprint, writer_key_path, options.config_path,
        tuple(recipients), options.passphrase_identity,
    )
