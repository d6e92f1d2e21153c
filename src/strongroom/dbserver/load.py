"""Loading a SQL dump into a database with the engine's own client.

MariaDB/MySQL dumps go through ``mariadb`` (or ``mysql``) in ``--binary-mode``: no
NUL or CR translation, and no client commands but ``DELIMITER`` (so a dump cannot
run a shell escape such as ``\\!``). PostgreSQL dumps go through ``psql -X`` with
``ON_ERROR_STOP`` in one transaction. Credentials travel by option file or
``PGPASSFILE``, never argv.

:func:`load_dump` streams: it writes chunks from an iterator of bytes into the
client's stdin, so a restore never needs the whole dump in memory. Given a file
instead, it makes the file the client's stdin (the plain client loading a file).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from strongroom import execute
from strongroom.dbserver.connection import DatabaseTarget, mysql_option_file, pgpass_line, postgresql_environment
from strongroom.errors import CommandError, DatabaseError, DependencyError


@dataclass(frozen=True)
class LoadResult:
    """What a finished load reports."""

    client: str
    bytes: int
    seconds: float


def _mysql_client(bin_dir: Path | None) -> str:
    candidates = [str(bin_dir / name) for name in ("mariadb", "mysql")] if bin_dir else []
    candidates += ["mariadb", "mysql"]
    for name in candidates:
        with contextlib.suppress(DependencyError):
            return execute.find_program(name)
    raise DependencyError("no MariaDB/MySQL client (mariadb) is installed", hint="install mariadb-client")


def _psql(bin_dir: Path | None) -> str:
    candidates = [str(bin_dir / "psql")] if bin_dir else []
    candidates += [str(p / "psql") for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    candidates.append("psql")
    for name in candidates:
        with contextlib.suppress(DependencyError):
            return execute.find_program(name)
    raise DependencyError("psql is not installed", hint="install postgresql-client")


def load_dump(
    target: DatabaseTarget,
    chunks: Iterable[bytes] | Path,
    *,
    bin_dir: Path | None = None,
    on_bytes: object = None,
) -> LoadResult:
    """Feed the SQL in ``chunks`` to the client for ``target`` (its ``database`` must exist).

    ``chunks`` is an iterable of bytes, or the path of a file the client reads as
    its stdin (then ``on_bytes`` is called once, with the file's size, at the end).
    ``bin_dir`` prefers the clients next to a throwaway server's binaries.
    ``on_bytes(n)`` is called as bytes are sent. Returns a LoadResult.
    Raises DatabaseError with the client's own message when a statement fails,
    OSError when the file cannot be opened.
    """
    execute.register_secret(target.password)
    started = time.monotonic()
    sent = 0
    if target.is_mysql_family:
        program = _mysql_client(bin_dir)
        option_text = mysql_option_file(target, database="")
        argv_tail = ["--binary-mode", "--batch", "--skip-auto-rehash", "--max-allowed-packet=1G", str(target.database)]
        env: dict[str, str] = {}
    else:
        program = _psql(bin_dir)
        option_text = pgpass_line(target)
        argv_tail = ["-X", "--quiet", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--file=-"]
        env = postgresql_environment(target)
    name = "client.cnf" if target.is_mysql_family else "pgpass"
    with execute.secret_file(option_text, name=name) as secret_path:
        if target.is_mysql_family:
            argv = [program, f"--defaults-extra-file={secret_path}", *argv_tail]
        else:
            argv = [program, *argv_tail]
            env["PGPASSFILE"] = str(secret_path)
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(chunks.open("rb")) if isinstance(chunks, Path) else None
            running = stack.enter_context(
                execute.start(
                    argv,
                    env=env,
                    secrets=[target.password or ""],
                    stdin=source if source is not None else subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    what="loading the dump",
                )
            )
            if source is not None:
                sent = os.fstat(source.fileno()).st_size
            else:
                assert not isinstance(chunks, Path)
                try:
                    for chunk in chunks:
                        running.stdin.write(chunk)
                        sent += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))  # type: ignore[operator]
                    running.stdin.close()
                except BrokenPipeError:
                    pass  # the client stopped reading: its exit status and message say why
            try:
                running.wait()
            except CommandError as error:
                raise DatabaseError(
                    f"loading the dump into {target.describe()} failed: {error.message}",
                    hint="the dump or the target database is not what was expected; nothing else was changed",
                ) from None
            if source is not None and on_bytes is not None:
                on_bytes(sent)  # type: ignore[operator]
    return LoadResult(Path(program).name, sent, time.monotonic() - started)
