"""Configuration: TOML into frozen, validated objects; errors name file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from strongroom.config import Config, load_config, write_config
from strongroom.config.schema import InstanceConfig
from strongroom.errors import ConfigError


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="strongroom init"):
        load_config(tmp_path / "none.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[instance\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_unknown_and_wrong_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[instance]\nlayuot = "debian"\nlayout = "windows"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert f"{path}: instance.layuot: unknown key" in text
    assert "instance.layout" in text
    assert "windows" in text


def test_round_trip_and_frozen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.toml"
    config = Config(instance=InstanceConfig(root=Path("/srv/root"), layout="docker"))
    write_config(config, path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_config(path)
    assert loaded.instance.root == Path("/srv/root")
    assert loaded.instance.layout == "docker"
    with pytest.raises(pydantic.ValidationError):
        loaded.instance.layout = "debian"  # type: ignore[misc]
