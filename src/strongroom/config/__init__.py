"""Configuration: a TOML file parsed once into typed, frozen objects."""

from strongroom.config.loading import DEFAULT_CONFIG_PATH, load_config, write_config
from strongroom.config.schema import Config, InstanceConfig, RepositoryConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "Config",
    "InstanceConfig",
    "RepositoryConfig",
    "load_config",
    "write_config",
]
