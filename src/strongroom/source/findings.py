"""Findings: what discovery and the backup-set checks report, each with a severity.

``error`` stops a backup (the backup would be incomplete or useless), ``warning``
is reported and recorded in the manifest, ``ok`` says a check passed. Every
message says what is wrong and what to do about it; none contains a secret.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Severity(enum.StrEnum):
    """How much a finding matters, from worst to best."""

    ERROR = "error"
    WARNING = "warning"
    OK = "ok"

    @property
    def rank(self) -> int:
        """0 for error, 1 for warning, 2 for ok: sort findings worst first."""
        return {"error": 0, "warning": 1, "ok": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One result of one named check (``server-key-fingerprint``, ``database-reachable``, ...).

    ``subject`` names what was checked (a file path, a role, the database).
    """

    check: str
    severity: Severity
    message: str
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {"check": self.check, "severity": self.severity.value, "message": self.message, "subject": self.subject}


def error(check: str, message: str, subject: str | None = None) -> Finding:
    """An error-level finding."""
    return Finding(check, Severity.ERROR, message, subject)


def warning(check: str, message: str, subject: str | None = None) -> Finding:
    """A warning-level finding."""
    return Finding(check, Severity.WARNING, message, subject)


def passed(check: str, message: str, subject: str | None = None) -> Finding:
    """An ok finding: the check passed."""
    return Finding(check, Severity.OK, message, subject)


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error."""
    return any(finding.severity is Severity.ERROR for finding in findings)


def sorted_by_severity(findings: Iterable[Finding]) -> list[Finding]:
    """The findings worst first, keeping their order within a severity."""
    return sorted(findings, key=lambda finding: finding.severity.rank)
