"""Progress reporting: the core never prints, it reports through a Reporter it is given."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """What long operations tell whoever started them."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase begins (``total`` bytes or items when known)."""

    def advance(self, amount: int) -> None:
        """``amount`` more bytes or items of the current phase are done."""

    def note(self, message: str) -> None:
        """Something worth telling a person watching (not a warning)."""

    def warn(self, message: str) -> None:
        """Something is wrong but the operation goes on."""

    def done(self) -> None:
        """The operation is over; clear any progress display."""


class LogReporter:
    """A Reporter for unattended runs and tests: phases and messages go to the log."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def phase(self, name: str, total: int | None = None) -> None:
        log.info("%s", name)

    def advance(self, amount: int) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)
        log.info("%s", message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("%s", message)

    def done(self) -> None:
        pass
