"""Opening the configured repository for an action: backend, pinned config, writer key, identities."""

from __future__ import annotations

from pathlib import Path

from strongroom.config.schema import RepositoryConfig
from strongroom.errors import ConfigError, UsageError
from strongroom.repository.keys import Identity, WriterKey, load_identities
from strongroom.repository.repository import Repository
from strongroom.actions.targets import open_primary, open_target
from strongroom.config.schema import TargetConfig


def open_repository(
    config: RepositoryConfig,
    *,
    identity_file: Path | None = None,
    passphrase_file: Path | None = None,
    writer_key_required: bool = False,
    target: str | None = None,
) -> Repository:
    """The repository named by ``config``, with the writer key when its file is readable and the
    identities from ``identity_file`` when given. ``target`` names one of the
    configured copies (``[[repository.targets]]``) instead of the primary location.

    Raises ConfigError (writer key required but unreadable), IdentityError, RepositoryError,
    IntegrityError, StorageError.
    """
    writer_key: WriterKey | None = None
    try:
        writer_key = WriterKey.load(config.writer_key)
    except ConfigError:
        if writer_key_required:
            raise
    identities: list[Identity] | None = None
    if identity_file is not None:
        identities = load_identities(identity_file, passphrase_file=passphrase_file)
    backend = open_primary(config) if target is None else open_target(_target_named(config, target))
    return Repository.open(backend, config, writer_key=writer_key, identities=identities)


def _target_named(config: RepositoryConfig, name: str) -> TargetConfig:
    for target in config.targets:
        if target.name == name:
            return target
    known = ", ".join(t.name for t in config.targets) or "none"
    raise UsageError(f"no storage target named {name!r} (configured: {known})")
