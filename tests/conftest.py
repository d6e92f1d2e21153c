"""Fixtures shared by the whole test suite.

Real components only: database servers are real throwaway servers started from
the local binaries (``strongroom.dbserver``). A missing binary skips the tests that
need it, except under ``CI=true``, where it fails them: CI must not silently skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from strongroom.dbserver import ThrowawayServer, start_server
from strongroom.dbserver.server import locate_program
from strongroom.errors import DependencyError


def running_in_ci() -> bool:
    """True when the environment variable CI is "true" (missing binaries then fail, not skip)."""
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str, *, search_path: str | None = None) -> str:
    """Return the path of program ``name`` (PATH, /usr/lib/postgresql/*/bin, /usr/sbin, ...).

    When it is missing: skip the calling test, or fail it under ``CI=true``.
    """
    try:
        return locate_program(name, search_path=search_path)
    except DependencyError as exc:
        message = f"{name} is not installed ({exc.hint})"
        if running_in_ci():
            pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
        pytest.skip(message)


def _server(engine: str, binaries: tuple[str, ...]) -> Iterator[ThrowawayServer]:
    for name in binaries:
        require_binary(name)
    server = start_server(engine)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[ThrowawayServer]:
    """A throwaway MariaDB server for the whole session (admin target: ``server.target``).

    Tests create their own databases (``server.create_database(name, user)``) with
    names of their own, so they never see each other's tables.
    """
    yield from _server("mariadb", ("mariadbd", "mariadb-install-db"))


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[ThrowawayServer]:
    """A throwaway PostgreSQL server for the whole session (admin target: ``server.target``).

    Tests create their own databases (``server.create_database(name, user)``) with
    names of their own, so they never see each other's tables.
    """
    yield from _server("postgresql", ("postgres", "initdb"))


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The writers' record caches of this session go to a temporary folder, not ~/.cache
    (tests that care name their own ``cache_dir``). Child processes inherit it."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
