"""Database connections and throwaway database servers (drills, demo, tests).

- :mod:`strongroom.dbserver.connection`: :class:`DatabaseTarget` (where a database
  is, parsed from a URL) and :func:`connect` (a DB-API connection, driver errors
  translated to :class:`~strongroom.errors.DatabaseError`).
- :mod:`strongroom.dbserver.server`: :func:`start_server`, a private MariaDB or
  PostgreSQL server from the local binaries, removed without trace afterwards.
- :mod:`strongroom.dbserver.watchdog`: the guard process that cleans up when the
  owner dies.
"""

from strongroom.dbserver.connection import (
    DatabaseTarget,
    connect,
    list_tables,
    mysql_option_file,
    pgpass_line,
    postgresql_environment,
    server_version,
)
from strongroom.dbserver.server import ThrowawayServer, find_server_programs, locate_program, start_server

__all__ = [
    "DatabaseTarget",
    "ThrowawayServer",
    "connect",
    "find_server_programs",
    "list_tables",
    "locate_program",
    "mysql_option_file",
    "pgpass_line",
    "postgresql_environment",
    "server_version",
    "start_server",
]
