"""Rendering helpers: rich progress for terminals, byte sizes both ways."""

from __future__ import annotations

import re

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from strongroom.errors import UsageError


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(count)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_FACTOR = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY_FACTOR = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Return the byte count of ``5MB``, ``1GB``, ``512MiB``, ``2000000``. Raises UsageError."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"cannot read the size {text!r}", hint="write a number with a unit, e.g. 5MB, 200MB, 1GB")
    number, unit, suffix = match.groups()
    table = _BINARY_FACTOR if suffix.lower().startswith("i") else _FACTOR
    return int(float(number) * table[unit.lower()])


class RichReporter:
    """A Reporter drawing a progress line on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.started = False
        self.warnings: list[str] = []

    def phase(self, name: str, total: int | None = None) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(name, total=total)

    def advance(self, amount: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, amount)

    def note(self, message: str) -> None:
        self.console.print(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    def done(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


class NarratingReporter:
    """A Reporter for a person reading a log or a pipe: phases and notes as plain lines, no bars."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.warnings: list[str] = []

    def phase(self, name: str, total: int | None = None) -> None:
        self.console.print(f"==> {name}", highlight=False)

    def advance(self, amount: int) -> None:
        pass

    def note(self, message: str) -> None:
        self.console.print(f"    {message}", highlight=False)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    def done(self) -> None:
        pass
