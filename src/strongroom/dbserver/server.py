"""Throwaway MariaDB and PostgreSQL servers started from the local binaries.

:func:`start_server` creates a private directory (mode 0700) holding the data
directory, the unix socket and the log, initialises a fresh cluster with a random
admin password, starts the server as a child process in its own session listening
on the socket and on a free 127.0.0.1 port, and waits until it answers. Drills load
untrusted dumps into it, so as root it runs as an unprivileged account (``postgres``
or ``mysql``, else ``nobody``), with a private ``--secure-file-priv`` folder,
``LOAD DATA LOCAL`` and the event scheduler off.

Nothing is left behind: :meth:`ThrowawayServer.stop` shuts the server down
gracefully (SIGKILL after a timeout) and removes the directory; an ``atexit`` hook
stops servers still running at a normal exit; and a watchdog process
(:mod:`strongroom.dbserver.watchdog`) does the same when the owner crashes or is
SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import glob
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket as socket_module
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from strongroom.dbserver.connection import Connection, DatabaseTarget, connect, server_version
from strongroom.errors import CommandError, DatabaseError, DependencyError, UsageError
from strongroom.execute import PACKAGE_OF_PROGRAM, Running, mask, register_secret, run, start

log = logging.getLogger(__name__)

ServerEngine = Literal["mariadb", "postgresql"]
SERVER_ENGINES: tuple[str, ...] = ("mariadb", "postgresql")

# Where distributions put server binaries that are not on a user's PATH.
POSTGRESQL_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SYSTEM_BIN_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/bin", "/usr/bin")

# Unprivileged accounts a server may run as when strongroom runs as root, best first.
SERVER_ACCOUNTS: dict[str, tuple[str, ...]] = {
    "mariadb": ("mysql", "nobody"),
    "postgresql": ("postgres", "nobody"),
}

# The signal each server takes as "shut down now, cleanly". PostgreSQL's SIGTERM is
# a "smart" shutdown that waits for every client to disconnect; SIGINT is its "fast"
# shutdown, which is what a throwaway server wants.
STOP_SIGNAL: dict[str, signal.Signals] = {"mariadb": signal.SIGTERM, "postgresql": signal.SIGINT}

INSTALL_HINT: dict[str, str] = {"mariadb": "install mariadb-server", "postgresql": "install postgresql"}

# A unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, NUL included).
MAX_SOCKET_PATH = 107
POLL_SECONDS = 0.02
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 25
_PORT_IN_USE = re.compile(r"address already in use|bind on tcp/ip port|could not bind", re.IGNORECASE)


@dataclass(frozen=True)
class ServerAccount:
    """The unprivileged account a server runs as when strongroom runs as root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class ServerPrograms:
    """The binaries of one engine, all taken from the same installation."""

    server: str
    initialise: str

    @property
    def bin_dir(self) -> Path:
        """The directory holding the server binary (clients of the same version live there too)."""
        return Path(self.server).parent


def _version_key(directory: str) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: numeric version, highest first."""
    version = Path(directory).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def search_directories(search_path: str | None = None) -> list[str]:
    """Return the directories searched for server binaries, in order.

    ``search_path`` (``os.pathsep``-separated, globs allowed) replaces the default:
    PATH, then ``/usr/lib/postgresql/*/bin`` (highest version first), then the
    system sbin directories.
    """
    if search_path is not None:
        entries = [entry for entry in search_path.split(os.pathsep) if entry]
    else:
        entries = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
        entries.append(POSTGRESQL_BIN_GLOB)
        entries.extend(SYSTEM_BIN_DIRECTORIES)
    directories: list[str] = []
    for entry in entries:
        matches = sorted(glob.glob(entry), key=_version_key, reverse=True) if glob.has_magic(entry) else [entry]
        for directory in matches:
            if directory not in directories:
                directories.append(directory)
    return directories


def locate_program(names: str | tuple[str, ...], *, search_path: str | None = None, hint: str | None = None) -> str:
    """Return the absolute path of the first of ``names`` found in :func:`search_directories`.

    Raises DependencyError (with ``hint``, default "install <package>") when none is found.
    """
    candidates = (names,) if isinstance(names, str) else names
    directories = search_directories(search_path)
    for name in candidates:
        for directory in directories:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    searched = os.pathsep.join(directories) or "(nothing)"
    raise DependencyError(
        f"the program {candidates[0]!r} is not installed (searched {searched})",
        hint=hint or f"install {PACKAGE_OF_PROGRAM.get(candidates[0], candidates[0])}",
    )


def find_server_programs(engine: str, *, search_path: str | None = None) -> ServerPrograms:
    """Return the server and initialisation binaries of ``engine``.

    PostgreSQL's ``initdb`` is taken from the directory of the ``postgres`` found
    (symlinks resolved), so both are of the same major version.
    Raises DependencyError naming the package to install, UsageError for an unknown engine.
    """
    hint = INSTALL_HINT.get(engine)
    if hint is None:
        raise UsageError(
            f"cannot start a throwaway {engine!r} server",
            hint="use mariadb (it also loads MySQL dumps) or postgresql",
        )
    if engine == "postgresql":
        server = os.path.realpath(locate_program("postgres", search_path=search_path, hint=hint))
        initialise = os.path.join(os.path.dirname(server), "initdb")
        if not os.access(initialise, os.X_OK):
            raise DependencyError(
                f"the program 'initdb' is missing next to {server}",
                hint=f"{hint} (the full server package, not only the client)",
            )
        return ServerPrograms(server, initialise)
    server = locate_program(("mariadbd", "mysqld"), search_path=search_path, hint=hint)
    initialise = locate_program(("mariadb-install-db", "mysql_install_db"), search_path=search_path, hint=hint)
    return ServerPrograms(server, initialise)


def server_account(engine: str) -> ServerAccount | None:
    """The account the server must run as: None unless running as root.

    Raises DependencyError when root has no unprivileged account to use.
    """
    if os.geteuid() != 0:
        return None
    for name in SERVER_ACCOUNTS[engine]:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return ServerAccount(name, entry.pw_uid, entry.pw_gid)
    raise DependencyError(
        f"running as root, but there is no unprivileged account to run the {engine} server as",
        hint=f"create the account {SERVER_ACCOUNTS[engine][0]!r} (the {INSTALL_HINT[engine][8:]} package does)",
    )


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _check_reachable(path: Path, account: ServerAccount) -> None:
    """Raise UsageError when ``account`` cannot traverse every parent of ``path``."""
    for parent in path.parents:
        info = parent.stat()
        if info.st_uid == account.uid:
            allowed = bool(info.st_mode & 0o100)
        elif info.st_gid == account.gid:
            allowed = bool(info.st_mode & 0o010)
        else:
            allowed = bool(info.st_mode & 0o001)
        if not allowed:
            raise UsageError(
                f"the database server runs as {account.name!r}, which cannot enter {parent}",
                hint="choose a base directory every account may traverse (for example /tmp)",
            )


_live_servers: set[ThrowawayServer] = set()
_live_lock = threading.Lock()


@atexit.register
def _stop_live_servers() -> None:
    """At a normal interpreter exit, stop every server this process started.

    A forked child inherits the set and this hook: it must not stop its parent's servers.
    """
    with _live_lock:
        servers = [server for server in _live_servers if server.owner_pid == os.getpid()]
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class ThrowawayServer:
    """A running throwaway database server; stop it with :meth:`stop` or a ``with`` block.

    ``target`` is the admin account (all privileges) over the unix socket, with
    ``host``/``port`` set as well for clients that need TCP (use
    ``dataclasses.replace(target, socket=None)``, or :attr:`tcp_target`).
    """

    def __init__(
        self,
        *,
        engine: ServerEngine,
        directory: Path,
        programs: ServerPrograms,
        account: ServerAccount | None,
        watchdog: Running,
    ) -> None:
        self.engine: ServerEngine = engine
        self.directory = directory
        self.programs = programs
        self.account = account
        self.port = 0
        self.version = ""
        self.target = DatabaseTarget(engine=engine)
        self.process: Running | None = None
        self.owner_pid = os.getpid()
        # Seconds spent in each start-up step ("initialise", "ready"), for reports.
        self.timings: dict[str, float] = {}
        self._watchdog: Running | None = watchdog
        self._stopped = False
        self._lock = threading.Lock()

    # -- paths -------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The server's data directory."""
        return self.directory / "data"

    @property
    def run_dir(self) -> Path:
        """The directory of the unix socket (PostgreSQL's socket directory)."""
        return self.directory / "run"

    @property
    def files_dir(self) -> Path:
        """MariaDB's ``--secure-file-priv`` folder (private and empty)."""
        return self.directory / "files"

    @property
    def log_path(self) -> Path:
        """MariaDB's error log (PostgreSQL logs to a pipe kept in memory)."""
        return self.directory / "server.log"

    @property
    def socket(self) -> str:
        """The unix socket: a file for MariaDB, a directory for PostgreSQL (as libpq wants)."""
        return str(self.run_dir / "mariadb.sock") if self.engine == "mariadb" else str(self.run_dir)

    @property
    def pid(self) -> int | None:
        """The server's process id, None when it is not running."""
        return self.process.pid if self.process is not None else None

    @property
    def bin_dir(self) -> Path:
        """Where the server binaries came from (same-version clients live there too)."""
        return self.programs.bin_dir

    @property
    def tcp_target(self) -> DatabaseTarget:
        """The admin target over TCP on 127.0.0.1 instead of the socket."""
        return dataclasses.replace(self.target, socket=None)

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self.process is not None and self.process.process.poll() is None

    # -- use ---------------------------------------------------------------------------

    def connect(self, database: str | None = None) -> Connection:
        """Open an admin connection (to ``database`` when given). Raises DatabaseError."""
        return connect(self.target, database)

    def create_database(self, name: str, user: str | None = None, password: str | None = None) -> DatabaseTarget:
        """Create database ``name``; with ``user``, also an account with all privileges on it.

        A missing ``password`` for a new user is generated. Returns the target for the
        new database (as ``user`` when given, else as the admin). Raises DatabaseError.
        """
        if user is not None and password is None:
            password = secrets.token_urlsafe(18)
        register_secret(password)
        connection = self.connect()
        try:
            if self.engine == "mariadb":
                self._create_mariadb_database(connection, name, user, password)
            else:
                self._create_postgresql_database(connection, name, user, password)
        except DatabaseError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("pymysql", "psycopg")):
                raise DatabaseError(
                    f"cannot create the database {name!r} on the throwaway {self.engine} server: {mask(str(exc))}"
                ) from None
            raise
        finally:
            connection.close()
        target = self.target.with_database(name)
        if user is not None:
            target = target.with_account(user, password)
        return target

    @staticmethod
    def _create_mariadb_database(connection: Connection, name: str, user: str | None, password: str | None) -> None:
        quoted = "`" + name.replace("`", "``") + "`"
        cursor = connection.cursor()
        cursor.execute(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        if user is not None:
            for host in ("localhost", "127.0.0.1"):
                cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cursor.execute(f"GRANT ALL PRIVILEGES ON {quoted}.* TO %s@%s", (user, host))
        cursor.close()
        connection.commit()

    @staticmethod
    def _create_postgresql_database(
        connection: Connection, name: str, user: str | None, password: str | None
    ) -> None:
        from psycopg import sql

        connection.autocommit = True  # type: ignore[attr-defined]  # CREATE DATABASE refuses transactions
        cursor = connection.cursor()
        owner: sql.Composable = sql.SQL("")
        if user is not None:
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password))
            )
            owner = sql.SQL(" OWNER {}").format(sql.Identifier(user))
        cursor.execute(
            sql.SQL("CREATE DATABASE {}{} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name), owner)
        )
        cursor.close()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines the server logged (passwords masked)."""
        text = ""
        if self.engine == "mariadb":
            with contextlib.suppress(OSError):
                text = self.log_path.read_text("utf-8", "replace")
        if self.process is not None:
            text = text + "\n" + self.process.stderr_text()
        return mask("\n".join(text.strip().splitlines()[-lines:]))

    # -- lifetime ----------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (its clean stop signal, SIGKILL after ``timeout`` s), remove the directory.

        Idempotent; never raises for a server that is already gone.
        """
        with self._lock:
            if self._stopped or os.getpid() != self.owner_pid:
                return
            self._stopped = True
        with _live_lock:
            _live_servers.discard(self)
        if self.process is not None:
            process = self.process.process
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(STOP_SIGNAL[self.engine])
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("the throwaway %s server did not stop within %.0f s: killing it", self.engine, timeout)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=10)
            self.process.__exit__(None, None, None)
        shutil.rmtree(self.directory, ignore_errors=True)
        self._release_watchdog()

    def _release_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        with contextlib.suppress(OSError, ValueError):
            watchdog.stdin.write(b"release\n")
            watchdog.stdin.close()
        with contextlib.suppress(CommandError):
            watchdog.wait(timeout=5, check=False)
        watchdog.__exit__(None, None, None)

    def _watch(self, pid: int, *, forget: bool = False) -> None:
        """Tell the watchdog which process to stop if this process dies (or to forget it)."""
        if self._watchdog is None:
            return
        line = f"forget {pid}\n" if forget else f"server {pid} {int(STOP_SIGNAL[self.engine])}\n"
        try:
            self._watchdog.stdin.write(line.encode("ascii"))
            self._watchdog.stdin.flush()
        except OSError as exc:
            raise CommandError(
                f"the watchdog of the throwaway {self.engine} server died: {exc.strerror}",
                program="watchdog",
                hint="this is a bug in strongroom: please report it",
            ) from None

    def __enter__(self) -> ThrowawayServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ThrowawayServer {self.engine} {self.version or '?'} port {self.port} {state}>"


def _start_watchdog(directory: Path) -> Running:
    """Start the guard that cleans up ``directory`` (and the server) if this process dies."""
    return start(
        [sys.executable, "-m", "strongroom.dbserver.watchdog", str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd="/",
        new_session=True,
        what="starting the throwaway database watchdog",
    )


def _make_private_directory(base_dir: Path | str | None, account: ServerAccount | None) -> Path:
    """Create the server's private directory (0700, owned by the server's account)."""
    if base_dir is not None:
        Path(base_dir).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="strongroom-db-", dir=base_dir)).resolve()
    os.chmod(directory, 0o700)
    for name in ("data", "run", "files", "tmp"):
        (directory / name).mkdir(mode=0o700)
    if account is not None:
        for path in (directory, *(directory / name for name in ("data", "run", "files", "tmp"))):
            os.chown(path, account.uid, account.gid)
    return directory


def _write_private_file(path: Path, content: str, account: ServerAccount | None) -> None:
    """Write a 0600 file (owned by ``account`` when given) that the server reads at start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content.encode("utf-8"))
    finally:
        os.close(fd)
    if account is not None:
        os.chown(path, account.uid, account.gid)


def _child_environment() -> dict[str, str]:
    """A small, predictable environment for server programs (TZ set: initdb skips probing zones)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C",
        "LC_ALL": "C",
        "TZ": "UTC",
        "HOME": "/nonexistent",
    }


def start_server(
    engine: str,
    *,
    base_dir: Path | str | None = None,
    timeout: float = 30.0,
    search_path: str | None = None,
) -> ThrowawayServer:
    """Start a throwaway ``"mariadb"`` or ``"postgresql"`` server and return it ready.

    ``base_dir`` is where the private directory is created (default: the system's
    temporary directory); ``search_path`` replaces the directories searched for the
    binaries (see :func:`search_directories`). The whole start must finish within
    ``timeout`` seconds. Use the result as a context manager, or call ``stop()``.
    Raises DependencyError when a binary or account is missing, UsageError for an
    unknown engine or an unusable ``base_dir``, and CommandError (with the tail of
    the server's log) when the server fails to start or to answer in time.
    """
    programs = find_server_programs(engine, search_path=search_path)
    account = server_account(engine)
    deadline = time.monotonic() + timeout
    directory = _make_private_directory(base_dir, account)
    try:
        if account is not None:
            _check_reachable(directory, account)
        socket_path = directory / "run" / ("mariadb.sock" if engine == "mariadb" else ".s.PGSQL.65535")
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise UsageError(
                f"the socket path {socket_path} is too long for a unix socket",
                hint="choose a shorter base directory (for example /tmp)",
            )
        watchdog = _start_watchdog(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    server = ThrowawayServer(
        engine=engine,  # type: ignore[arg-type]
        directory=directory,
        programs=programs,
        account=account,
        watchdog=watchdog,
    )
    with _live_lock:
        _live_servers.add(server)
    try:
        password = secrets.token_urlsafe(24)
        register_secret(password)
        step = time.monotonic()
        if engine == "mariadb":
            _initialise_mariadb(server, password, deadline)
        else:
            _initialise_postgresql(server, password, deadline)
        server.timings["initialise"] = time.monotonic() - step
        step = time.monotonic()
        for _attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            if _launch(server, port, password, deadline):
                break
            log.info("port %d was taken before the %s server bound it: trying another", port, engine)
        else:
            raise CommandError(
                f"the throwaway {engine} server found no free port after {PORT_ATTEMPTS} attempts",
                program=Path(programs.server).name,
                stderr_tail=server.log_tail(),
            )
        server.timings["ready"] = time.monotonic() - step
    except BaseException:
        server.stop(timeout=5)
        raise
    return server


def _remaining(deadline: float, what: str, server: ThrowawayServer) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise CommandError(
            f"the throwaway {server.engine} server did not {what} in time",
            program=Path(server.programs.server).name,
            hint="the machine may be overloaded; try again or raise the timeout",
        )
    return left


def _initialise_mariadb(server: ThrowawayServer, password: str, deadline: float) -> None:
    """Create the system tables; root (socket and 127.0.0.1 only) gets ``password``."""
    init_sql = server.directory / "init.sql"
    # Runs inside mariadbd --bootstrap, where ALTER USER is unavailable: edit the
    # grant table directly. Only root@localhost and root@127.0.0.1 remain.
    _write_private_file(
        init_sql,
        "DELETE FROM mysql.global_priv WHERE User = '' OR"
        " (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1'));\n"
        "UPDATE mysql.global_priv SET Priv = JSON_SET(Priv, '$.plugin', 'mysql_native_password',"
        f" '$.authentication_string', PASSWORD('{password}')) WHERE User = 'root';\n",
        server.account,
    )
    try:
        run(
            [
                server.programs.initialise,
                "--no-defaults",
                f"--datadir={server.data_dir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--extra-file={init_sql}",
                f"--tmpdir={server.directory / 'tmp'}",
            ],
            env=_child_environment(),
            inherit_env=False,
            cwd=server.directory,
            timeout=_remaining(deadline, "initialise", server),
            user=server.account.name if server.account else None,
            what="initialising the throwaway MariaDB data directory",
        )
    finally:
        with contextlib.suppress(OSError):
            init_sql.unlink()


def _initialise_postgresql(server: ThrowawayServer, password: str, deadline: float) -> None:
    """Run initdb; the superuser ``postgres`` gets ``password`` (scram-sha-256 everywhere)."""
    password_file = server.directory / "password"
    _write_private_file(password_file, password + "\n", server.account)
    try:
        run(
            [
                server.programs.initialise,
                "-D",
                str(server.data_dir),
                "-U",
                "postgres",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            env=_child_environment(),
            inherit_env=False,
            cwd=server.directory,
            timeout=_remaining(deadline, "initialise", server),
            user=server.account.name if server.account else None,
            what="initialising the throwaway PostgreSQL cluster",
        )
    finally:
        with contextlib.suppress(OSError):
            password_file.unlink()


def _server_argv(server: ThrowawayServer, port: int) -> list[str]:
    if server.engine == "mariadb":
        return [
            server.programs.server,
            "--no-defaults",
            f"--datadir={server.data_dir}",
            f"--socket={server.socket}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--secure-file-priv={server.files_dir}",
            f"--tmpdir={server.directory / 'tmp'}",
            f"--pid-file={server.run_dir / 'mariadbd.pid'}",
            f"--log-error={server.log_path}",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            # Untrusted dumps: no client-side file reads, no scheduled events, no symlinked tables.
            "--local-infile=0",
            "--event-scheduler=OFF",
            "--skip-symbolic-links",
            # Throwaway data needs no durability. The buffer pool is sized for loading
            # dumps: with 32 MB a 260 MB passbolt dump loaded at 1.6 MB/s (its secondary
            # indexes did not fit and every insert read pages back), with 512 MB at
            # 10 MB/s. Its memory is touched only as pages are used: an idle server
            # holds ~10 MB more, and the start takes no longer.
            "--innodb-buffer-pool-size=512M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--performance-schema=OFF",
            "--max-connections=50",
            "--max-allowed-packet=64M",
        ]
    return [
        server.programs.server,
        "-D",
        str(server.data_dir),
        "-k",
        str(server.run_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        "unix_socket_permissions=0700",
        # Throwaway data needs no durability; these make loading a dump fast.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "wal_level=minimal",
        "-c",
        "max_wal_senders=0",
        "-c",
        "autovacuum=off",
        "-c",
        "shared_buffers=16MB",
        "-c",
        "max_connections=30",
        "-c",
        "jit=off",
        # Dynamic shared memory in files under the data directory, so a killed
        # server leaves nothing in /dev/shm.
        "-c",
        "dynamic_shared_memory_type=mmap",
        "-c",
        "logging_collector=off",
    ]


def _launch(server: ThrowawayServer, port: int, password: str, deadline: float) -> bool:
    """Start the server on ``port`` and wait until it answers.

    Returns False when the port turned out to be taken (the caller tries another).
    Raises CommandError with the log tail when the server fails or is not ready in time.
    """
    account = server.account
    process = start(
        _server_argv(server, port),
        env=_child_environment(),
        inherit_env=False,
        stdout=subprocess.DEVNULL,
        cwd=server.directory,
        user=account.name if account else None,
        new_session=True,
        what=f"starting the throwaway {server.engine} server",
    )
    server.process = process
    server._watch(process.pid)
    server.port = port
    user = "root" if server.engine == "mariadb" else "postgres"
    server.target = DatabaseTarget(
        engine=server.engine,
        host="127.0.0.1",
        port=port,
        socket=server.socket,
        user=user,
        password=password,
        database=None if server.engine == "mariadb" else "postgres",
    )
    last_error = ""
    while True:
        status = process.process.poll()
        if status is not None:
            process.wait(timeout=5, check=False)
            tail = server.log_tail()
            if _PORT_IN_USE.search(tail):
                server._watch(process.pid, forget=True)
                process.__exit__(None, None, None)
                server.process = None
                _truncate_log(server)
                return False
            raise CommandError(
                f"the throwaway {server.engine} server exited with status {status} while starting"
                + (f":\n{tail}" if tail else ""),
                program=Path(server.programs.server).name,
                returncode=status,
                stderr_tail=tail,
                hint="read the server log lines above",
            )
        if _socket_ready(server):
            try:
                connection = connect(server.target, timeout=2)
            except DatabaseError as exc:
                last_error = exc.message
            else:
                try:
                    server.version = server_version(connection)
                finally:
                    connection.close()
                log.debug("throwaway %s %s ready on port %d", server.engine, server.version, port)
                return True
        if time.monotonic() >= deadline:
            tail = server.log_tail()
            raise CommandError(
                f"the throwaway {server.engine} server did not answer in time"
                + (f" ({last_error})" if last_error else "")
                + (f":\n{tail}" if tail else ""),
                program=Path(server.programs.server).name,
                stderr_tail=tail,
                hint="the machine may be overloaded; try again or raise the timeout",
            )
        time.sleep(POLL_SECONDS)


def _socket_ready(server: ThrowawayServer) -> bool:
    """A cheap check before trying to connect: the socket exists (PostgreSQL: and says "ready")."""
    if server.engine == "mariadb":
        return os.path.exists(server.socket)
    try:
        lines = (server.data_dir / "postmaster.pid").read_text("ascii", "replace").splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _truncate_log(server: ThrowawayServer) -> None:
    with contextlib.suppress(OSError):
        server.log_path.write_text("")


@contextlib.contextmanager
def throwaway_server(engine: str, **options: object) -> Iterator[ThrowawayServer]:
    """``with throwaway_server("postgresql") as server:`` — :func:`start_server`, stopped on exit."""
    server = start_server(engine, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
