"""Reading and writing the configuration file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from strongroom.config.schema import Config
from strongroom.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/strongroom/strongroom.toml")


def _describe_error(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{location}: unknown key (check its spelling)"
    if kind == "missing":
        return f"{location}: required key is missing"
    given = error.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{location}: {error['msg'].lower()}{shown}"


def parse_config(data: dict[str, Any], *, source: str) -> Config:
    """Validate raw TOML data into a Config. Raises ConfigError naming every bad key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  {source}: {_describe_error(e)}" for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(
            f"the configuration file {source} is not valid:\n{problems}",
            hint="fix the keys named above; README.md documents every key",
        ) from None


def load_config(path: Path) -> Config:
    """Read and validate the configuration at ``path``.

    Raises ConfigError when the file is missing, unreadable, not TOML or invalid.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}",
            hint="run 'strongroom init' to create one, or name it with --config or STRONGROOM_CONFIG",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the configuration file {path} is not valid TOML: {exc}") from None
    return parse_config(data, source=str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        # Inline table: [[repository.targets]] entries and credentials sections.
        return "{ " + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items() if item is not None) + " }"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_config(config: Config) -> str:
    """Return ``config`` as TOML text (sections with their set values)."""
    lines = ["# strongroom configuration: see README.md for every key.", ""]
    data = config.model_dump(exclude_none=True)
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def write_config(config: Config, path: Path) -> None:
    """Write ``config`` to ``path`` (mode 0600, atomically), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(render_config(config))
    os.replace(temporary, path)
    parse_config(tomllib.loads(path.read_text(encoding="utf-8")), source=str(path))
