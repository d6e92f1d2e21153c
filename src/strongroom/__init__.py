"""strongroom: backups of a self-hosted passbolt server, proven to restore."""

__version__ = "0.1.0"
