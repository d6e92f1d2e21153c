"""Database dumps, streamed: MariaDB/MySQL and PostgreSQL, locally or in a Docker container.

A dump is a stream the repository reads as it comes; nothing is written to disk in
plaintext. It counts only when the dumper exited 0 *and* its completion trailer
arrived (``-- Dump completed`` for MariaDB/MySQL, ``-- PostgreSQL database dump
complete`` for PostgreSQL): :meth:`Dump.finish` checks both and raises otherwise,
naming the dumper's own message.

While the stream passes, the rows of every table are counted from the dump itself
(one ``INSERT`` line per row thanks to ``--skip-extended-insert``; one line per row
between ``COPY ... FROM stdin;`` and ``\\.`` for PostgreSQL). These counts are
authoritative: a drill compares the loaded database with them.

Credentials never reach an argument list: MariaDB/MySQL read an option file of mode
0600 (``--defaults-extra-file``), PostgreSQL a ``PGPASSFILE``; in a container the
password travels in the environment, named by ``docker exec -e NAME`` without a value.

Usage::

    with open_dump(target, server_version="10.11.6-MariaDB") as dump:
        repository_writer.add_record_stream("database", dump.stream)
    result = dump.result      # DumpResult: counts, sizes, client, duration
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from strongroom import execute
from strongroom.dbserver.connection import DatabaseTarget, mysql_option_file, pgpass_line, postgresql_environment
from strongroom.errors import CommandError, DatabaseError, DependencyError
from strongroom.repository.rowcount import RowCounter

MARIADB_TRAILER = b"-- Dump completed"
POSTGRESQL_TRAILER = b"-- PostgreSQL database dump complete"
TAIL_BYTES = 4096
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class DockerContainer:
    """Run the dumper inside this container (``docker exec -i``, never a TTY)."""

    name: str
    docker: str = "docker"


@dataclass
class DumpResult:
    """What a finished dump reports."""

    engine: str
    client: str
    client_version: str
    server_version: str
    bytes: int = 0
    lines: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def is_mysql_family(engine: str) -> bool:
    """True for MariaDB and MySQL, which share the dump format and clients."""
    return engine in ("mariadb", "mysql")


def server_is_mariadb(server_version: str) -> bool:
    """True when ``SELECT VERSION()`` text names MariaDB."""
    return "mariadb" in server_version.lower()


def _major(version_text: str) -> int:
    match = re.search(r"(\d+)", version_text)
    if match is None:
        raise DatabaseError(f"cannot read a version number from {version_text!r}")
    return int(match.group(1))


def _client_version(program: str) -> str:
    result = execute.run([program, "--version"], timeout=30, what=f"asking {Path(program).name} its version")
    return result.stdout.decode("utf-8", "replace").strip()


def choose_mysql_client(server_version: str) -> tuple[str, str, list[str]]:
    """Pick the dump client for a MariaDB or MySQL server.

    Returns (program path, its version text, warnings). MariaDB servers get
    ``mariadb-dump``; MySQL servers get MySQL's own ``mysqldump`` when installed,
    else MariaDB's client with a warning. Raises DependencyError when neither exists.
    """
    warnings: list[str] = []
    if server_is_mariadb(server_version):
        for name in ("mariadb-dump", "mysqldump"):
            with contextlib.suppress(DependencyError):
                program = execute.find_program(name)
                return program, _client_version(program), warnings
        raise DependencyError("no MariaDB dump client (mariadb-dump) is installed", hint="install mariadb-client")
    try:
        program = execute.find_program("mysqldump")
        version = _client_version(program)
        if "mariadb" not in version.lower():
            return program, version, warnings
    except DependencyError:
        pass
    program = execute.find_program("mariadb-dump")
    warnings.append(
        f"the server is MySQL {server_version} but only MariaDB's dump client is installed: "
        "install MySQL's client (mysql-client) for the most faithful dump"
    )
    return program, _client_version(program), warnings


def _postgresql_client_candidates() -> list[Path]:
    found: list[tuple[int, Path]] = []
    for directory in Path("/usr/lib/postgresql").glob("*/bin"):
        program = directory / "pg_dump"
        if program.exists() and directory.parent.name.isdigit():
            found.append((int(directory.parent.name), program))
    found.sort(reverse=True)
    return [path for _, path in found]


def choose_postgresql_client(server_version: str) -> tuple[str, str]:
    """Pick a ``pg_dump`` whose major version is at least the server's.

    Returns (program path, version text). Raises DependencyError naming the client
    package to install when the installed ones are all older than the server.
    """
    server_major = _major(server_version)
    candidates: list[str] = [str(p) for p in _postgresql_client_candidates()]
    with contextlib.suppress(DependencyError):
        candidates.append(execute.find_program("pg_dump"))
    newest = None
    for program in candidates:
        version = _client_version(program)
        # "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        client_major = _major(version.split("(PostgreSQL)", 1)[-1])
        if client_major >= server_major:
            return program, version
        newest = max(newest or 0, client_major)
    if newest is None:
        raise DependencyError("pg_dump is not installed", hint=f"install postgresql-client-{server_major}")
    raise DependencyError(
        f"the database server is PostgreSQL {server_major} but the newest pg_dump here is version {newest}: "
        f"a dump needs a client at least as new as the server",
        hint=f"install postgresql-client-{server_major}",
    )


def mysql_dump_arguments(client_version: str) -> list[str]:
    """The dump options (brief §5): consistent, no PROCESS privilege, one row per line."""
    arguments = [
        "--single-transaction",
        "--no-tablespaces",
        "--skip-extended-insert",
        "--routines",
        "--triggers",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--skip-lock-tables",
    ]
    if "mariadb" not in client_version.lower():
        # MySQL's client: GTID statements need SUPER on restore; not wanted here.
        arguments.append("--set-gtid-purged=OFF")
    return arguments


def postgresql_dump_arguments() -> list[str]:
    """pg_dump options: plain format (rows as COPY lines), no password prompt.

    Ownership and grants are left out: a restore gives the tables to the account
    that loads them, which on a new server is rarely the old one.
    """
    return ["--format=plain", "--no-password", "--encoding=UTF8", "--no-owner", "--no-privileges"]


class _CountingStream(io.RawIOBase):
    """A readable stream over the dumper's stdout: bytes, progress, the tail (for the trailer),
    and, when asked, rows per table counted as they pass (by the repository's row counter,
    one implementation of both dump formats)."""

    def __init__(
        self, source: io.BufferedIOBase | io.RawIOBase, engine: str, on_bytes: object = None, count_rows: bool = True
    ) -> None:
        super().__init__()
        self.source = source
        self.counter = RowCounter("mariadb-dump" if is_mysql_family(engine) else "postgresql-dump") if count_rows else None
        self.bytes = 0
        self.lines = 0
        self.tail = b""
        self._partial = b""
        self._on_bytes = on_bytes

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows per table counted so far (empty when not counting)."""
        return self.counter.result() if self.counter is not None else {}

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # At most READ_BYTES at a time, so progress (and a reader's work) follows the dumper.
        data = self.source.read(min(len(buffer), READ_BYTES))
        if not data:
            return 0
        count = len(data)
        buffer[:count] = data
        self._scan(data)
        return count

    def _scan(self, data: bytes) -> None:
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        if self._on_bytes is not None:
            self._on_bytes(len(data))  # type: ignore[operator]
        self.tail = (self.tail + data)[-TAIL_BYTES:]
        if self.counter is None:
            return
        # The counter takes blocks that end at a line end: hold back an unfinished line.
        chunk = self._partial + data
        cut = chunk.rfind(b"\n") + 1
        self._partial = chunk[cut:]
        if len(self._partial) > 1 << 20:
            # A very long line (a huge BLOB row): its head is all the counter needs.
            self._partial = self._partial[:4096]
        if cut:
            self.counter.feed(chunk[:cut])

    def finish_scan(self) -> None:
        """Account for a last line without a newline."""
        if self._partial:
            self.lines += 1
            partial, self._partial = self._partial, b""
            if self.counter is not None:
                self.counter.feed(partial)


class Dump:
    """A running dump: read :attr:`stream` to the end, then :meth:`finish`."""

    def __init__(
        self, running: execute.Running, result: DumpResult, trailer: bytes, on_bytes: object = None, count_rows: bool = True
    ) -> None:
        self.running = running
        self.result = result
        self.trailer = trailer
        self.stream = _CountingStream(running.stdout, result.engine, on_bytes, count_rows)  # type: ignore[arg-type]
        self._started = time.monotonic()
        self._finished = False

    def finish(self) -> DumpResult:
        """Wait for the dumper and check it completed.

        Returns the DumpResult. Raises DatabaseError naming the dumper's own message
        when it exited non-zero or the completion trailer is missing.
        """
        # Drain whatever the reader left, so the dumper is not blocked on a full pipe.
        while self.stream.read(1 << 20):
            pass
        self.stream.finish_scan()
        try:
            self.running.wait(timeout=60)
        except CommandError as error:
            raise DatabaseError(
                f"the database dump failed: {error.message}",
                hint="no snapshot was written; earlier snapshots are untouched",
            ) from None
        self._finished = True
        result = self.result
        result.bytes = self.stream.bytes
        result.lines = self.stream.lines
        result.row_counts = dict(self.stream.row_counts)
        result.seconds = time.monotonic() - self._started
        if self.trailer not in self.stream.tail:
            stderr = self.running.stderr_text().strip()
            raise DatabaseError(
                f"the database dump is incomplete: {Path(result.client).name} exited 0 but its "
                f"completion line ({self.trailer.decode()}) is missing"
                + (f"\n{stderr}" if stderr else ""),
                hint="no snapshot was written; earlier snapshots are untouched",
            )
        return result


@contextlib.contextmanager
def open_dump(
    target: DatabaseTarget,
    *,
    server_version: str,
    container: DockerContainer | None = None,
    on_bytes: object = None,
    count_rows: bool = True,
) -> Iterator[Dump]:
    """Start dumping ``target`` and yield the running :class:`Dump`.

    ``server_version`` is ``SELECT VERSION()`` (MariaDB/MySQL) or ``SHOW
    server_version`` (PostgreSQL) of the live server; it picks the client.
    ``container`` runs the dumper in that Docker container instead.
    ``on_bytes(n)`` is called as bytes pass (progress). ``count_rows=False`` leaves
    the row counting to the reader (the repository counts rows as it stores them).
    On leaving the block the dumper is killed if it still runs; call
    ``dump.finish()`` inside the block once the stream is consumed.
    Raises DependencyError when no suitable client is installed.
    """
    execute.register_secret(target.password)
    if container is not None:
        with _open_container_dump(target, server_version, container, on_bytes, count_rows) as dump:
            yield dump
        return
    if is_mysql_family(target.engine):
        program, client_version, warnings = choose_mysql_client(server_version)
        # database="": the dump names the database as an argument; [client] must not.
        with execute.secret_file(mysql_option_file(target, database=""), name="client.cnf") as option_file:
            argv = [program, f"--defaults-extra-file={option_file}", *mysql_dump_arguments(client_version), str(target.database)]
            running = execute.start(argv, secrets=[target.password or ""], what="dumping the database")
            result = DumpResult(target.engine, program, client_version, server_version, warnings=warnings)
            with running:
                yield Dump(running, result, MARIADB_TRAILER, on_bytes, count_rows)
        return
    program, client_version = choose_postgresql_client(server_version)
    with execute.secret_file(pgpass_line(target), name="pgpass") as passfile:
        argv = [program, *postgresql_dump_arguments()]
        env = {**postgresql_environment(target), "PGPASSFILE": str(passfile), "PGCONNECT_TIMEOUT": "15"}
        running = execute.start(argv, env=env, secrets=[target.password or ""], what="dumping the database")
        result = DumpResult(target.engine, program, client_version, server_version)
        with running:
            yield Dump(running, result, POSTGRESQL_TRAILER, on_bytes, count_rows)


@contextlib.contextmanager
def _open_container_dump(
    target: DatabaseTarget, server_version: str, container: DockerContainer, on_bytes: object, count_rows: bool
) -> Iterator[Dump]:
    """The dump inside the database container: ``docker exec -i -e PASSWORD_VARIABLE db dumper ...``.

    Inside its own container the server answers on the image's default socket, so
    no host is given (the host name passbolt uses, such as ``db``, means nothing
    there). The password reaches the dumper through the environment: docker copies
    a variable named by ``-e NAME`` (no value) from its own environment, so argv
    holds only the name.
    """
    docker = execute.find_program(container.docker)
    if is_mysql_family(target.engine):
        client = "mariadb-dump" if server_is_mariadb(server_version) else "mysqldump"
        client_kind = "mariadb" if client == "mariadb-dump" else "mysql"
        argv = [
            docker, "exec", "-i", "-e", "MYSQL_PWD", container.name, client,
            f"--user={target.user}", *mysql_dump_arguments(client_kind), str(target.database),
        ]
        env = {"MYSQL_PWD": target.password or ""}
        trailer = MARIADB_TRAILER
    else:
        client = "pg_dump"
        argv = [
            docker, "exec", "-i", "-e", "PGPASSWORD", container.name, client,
            f"--username={target.user}", f"--dbname={target.database}", *postgresql_dump_arguments(),
        ]
        env = {"PGPASSWORD": target.password or ""}
        trailer = POSTGRESQL_TRAILER
    running = execute.start(
        argv, env=env, secrets=[target.password or ""], stdin=subprocess.DEVNULL,
        what="dumping the database in its container",
    )
    result = DumpResult(target.engine, f"{container.name}:{client}", client, server_version)
    with running:
        yield Dump(running, result, trailer, on_bytes, count_rows)
