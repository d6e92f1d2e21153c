"""The ``discover`` action: find the passbolt instance, describe its backup set, check it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.config.schema import InstanceConfig
from strongroom.source.checks import run_checks
from strongroom.source.discovery import Instance, discover_instance
from strongroom.source.findings import Finding, Severity, has_errors, sorted_by_severity


@dataclass(frozen=True)
class DiscoverResult:
    """The instance found and every finding about it, worst first."""

    instance: Instance
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        """True when an error-level finding exists (a backup would be refused)."""
        return has_errors(self.findings)

    def counts(self) -> dict[str, int]:
        """How many findings of each severity."""
        return {severity.value: sum(1 for f in self.findings if f.severity is severity) for severity in Severity}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result: the instance, its backup set and the findings (no secrets)."""
        return {
            "instance": self.instance.to_dict(),
            "findings": [finding.to_dict() for finding in self.findings],
            "counts": self.counts(),
            "ok": not self.failed,
        }


def run(
    instance_config: InstanceConfig,
    *,
    environment: Mapping[str, str],
    root: Path | None = None,
    connect_database: bool = True,
) -> DiscoverResult:
    """Discover the instance (``root`` overrides the configuration's) and run every check.

    Returns the DiscoverResult. Raises SourceError when no passbolt instance is
    found, ConfigError when the configuration's overrides are unusable.
    """
    chosen_root = root if root is not None else instance_config.root
    instance = discover_instance(chosen_root, instance_config, environment)
    findings = run_checks(instance, connect_database=connect_database)
    return DiscoverResult(instance=instance, findings=tuple(sorted_by_severity(findings)))
