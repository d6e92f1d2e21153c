"""``python -m strongroom``."""

from strongroom.cli.main import entry_point

entry_point()
