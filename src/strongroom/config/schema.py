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


class RepositoryConfig(Section):
    """Where snapshots go and the keys that protect them.

    ``recipients`` and ``writer_fingerprint`` are pinned here by ``init``: a reader
    trusts only what this file says, never what the storage says.
    """

    url: str = Field(description="repository location: a local path (other backends come later)")
    writer_key: Path = Field(description="the host's writer key file (mode 0600)")
    writer_fingerprint: str = Field(description="fingerprint of the writer's public key, pinned at init")
    recipients: tuple[str, ...] = Field(
        min_length=1, description="age X25519 or SSH public keys; any one identity restores"
    )


Layout = Literal["auto", "debian", "rpm", "docker", "source", "v1"]


class InstanceConfig(Section):
    """The passbolt instance to back up; detection fills in what is not named."""

    root: Path = Field(default=Path("/"), description="filesystem root under which passbolt's files are found")
    layout: Layout = Field(default="auto", description="installation layout, or auto to detect it")


class Config(Section):
    """The whole configuration file."""

    repository: RepositoryConfig | None = None
    instance: InstanceConfig = InstanceConfig()
