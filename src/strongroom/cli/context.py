"""What every command receives: global options, the configuration, output."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from strongroom.config import DEFAULT_CONFIG_PATH, Config, load_config
from strongroom.errors import ConfigError
from strongroom.progress import LogReporter, Reporter


@dataclass
class Context:
    """Global options and lazily loaded configuration for one command run."""

    config_path: Path | None
    json_output: bool
    verbosity: int
    quiet: bool
    console: Console = field(default_factory=lambda: Console(highlight=False))
    error_console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    @property
    def effective_config_path(self) -> Path:
        """--config, else STRONGROOM_CONFIG, else the default path."""
        if self.config_path is not None:
            return self.config_path
        from_env = os.environ.get("STRONGROOM_CONFIG")
        return Path(from_env) if from_env else DEFAULT_CONFIG_PATH

    @cached_property
    def config(self) -> Config:
        """The validated configuration (read once). Raises ConfigError."""
        return load_config(self.effective_config_path)

    def optional_config(self) -> Config | None:
        """The configuration when its file exists, else None. Raises ConfigError when it is invalid."""
        if not self.effective_config_path.exists():
            return None
        return self.config

    def require_repository(self) -> Any:
        """The repository section; raises ConfigError when the configuration has none."""
        repository = self.config.repository
        if repository is None:
            raise ConfigError(
                f"{self.effective_config_path} has no [repository] section",
                hint="run 'strongroom init' first",
            )
        return repository

    @property
    def interactive(self) -> bool:
        """True when a person watches a terminal (progress bars make sense)."""
        return sys.stderr.isatty() and not self.quiet and not self.json_output

    def reporter(self) -> Reporter:
        """A progress reporter fitting the output: rich on a terminal, the log otherwise."""
        if self.interactive:
            from strongroom.cli.render import RichReporter

            return RichReporter(self.error_console)
        return LogReporter()

    def emit_json(self, data: Any) -> None:
        """Print ``data`` as JSON on stdout."""
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

    def say(self, message: str) -> None:
        """Print a line for a person unless --quiet."""
        if not self.quiet:
            self.console.print(message)
