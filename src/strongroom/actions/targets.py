"""The storage targets of a configuration: the primary location and its copies (3-2-1).

``backup`` writes the snapshot to the primary (``[repository] url``), then
replicates the objects each other target (``[[repository.targets]]``) lacks, in
write order, so every target is a complete repository that restores on its own.
A target that fails is reported and does not stop the others; the next backup
copies whatever it missed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from strongroom.config.schema import RepositoryConfig, StorageCredentials, TargetConfig
from strongroom.errors import StrongroomError
from strongroom.progress import Reporter
from strongroom.storage.backend import Backend
from strongroom.storage.layers import open_backend
from strongroom.storage.location import display_location
from strongroom.storage.replicate import replicate


def _mapping(credentials: StorageCredentials | None) -> dict[str, str] | None:
    return credentials.as_mapping() if credentials is not None else None


def open_primary(config: RepositoryConfig, *, create: bool = False) -> Backend:
    """The primary location's backend, with its configured credentials.

    Raises StorageError, ConfigError (unsafe credentials or key file).
    """
    return open_backend(config.url, create=create, credentials=_mapping(config.credentials),
                        credentials_file=config.credentials_file)


def open_target(target: TargetConfig, *, create: bool = False) -> Backend:
    """A secondary target's backend. Raises StorageError, ConfigError."""
    return open_backend(target.url, create=create, credentials=_mapping(target.credentials),
                        credentials_file=target.credentials_file)


@dataclass(frozen=True)
class TargetOutcome:
    """What replication to one target did, or why it failed."""

    name: str
    location: str
    ok: bool
    copied: int = 0
    copied_bytes: int = 0
    present: int = 0
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name, "location": self.location, "ok": self.ok, "copied": self.copied,
            "copied_bytes": self.copied_bytes, "present": self.present, "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def replicate_to_targets(primary: Backend, config: RepositoryConfig, reporter: Reporter) -> list[TargetOutcome]:
    """Copy what each secondary target lacks from ``primary``; one failure never stops the others.

    Returns one TargetOutcome per target (failures carry the error message). Raises nothing
    from the storage: every StrongroomError becomes a failed outcome and a warning.
    """
    outcomes = []
    for target in config.targets:
        started = time.monotonic()
        location = display_location(target.url)
        reporter.phase(f"copying the snapshot to target {target.name} ({location})")
        backend: Backend | None = None
        try:
            backend = open_target(target, create=True)
            result = replicate(primary, backend, on_bytes=reporter.advance)
            outcomes.append(TargetOutcome(target.name, location, True, result.copied, result.copied_bytes,
                                          result.present, time.monotonic() - started))
        except StrongroomError as error:
            message = error.message
            reporter.warn(f"target {target.name} ({location}) was not updated: {message}; "
                          "the next backup copies what it misses")
            outcomes.append(TargetOutcome(target.name, location, False, seconds=time.monotonic() - started,
                                          error=message))
        finally:
            if backend is not None:
                try:
                    backend.close()
                except StrongroomError:
                    pass
    return outcomes
