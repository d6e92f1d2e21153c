"""The passbolt instance: discovery, configuration, database dumps, files, checks."""
