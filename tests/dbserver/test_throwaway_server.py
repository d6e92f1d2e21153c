"""Throwaway MariaDB and PostgreSQL servers: start, answer, create databases, stop without trace."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.dbserver import ThrowawayServer, connect, list_tables, server_version, start_server
from strongroom.dbserver.server import find_server_programs, server_account
from strongroom.errors import CommandError, DatabaseError, DependencyError, UsageError
from strongroom.execute import MASK, mask

from conftest import require_binary

ENGINES = ("mariadb", "postgresql")
BINARIES = {"mariadb": ("mariadbd", "mariadb-install-db"), "postgresql": ("postgres", "initdb")}


def _require_engine(engine: str) -> None:
    for name in BINARIES[engine]:
        require_binary(name)


def process_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def uid_of(pid: int) -> int:
    """The real uid of process ``pid`` (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for process {pid}")


def children_of(pid: int) -> list[int]:
    """The process ids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture(params=ENGINES)
def session_server(request: pytest.FixtureRequest) -> ThrowawayServer:
    """Each engine's session-wide server in turn."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


def test_session_server_answers_a_query(session_server: ThrowawayServer) -> None:
    connection = session_server.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1 + 1")
        assert cursor.fetchall()[0][0] == 2
        version = server_version(connection)
    finally:
        connection.close()
    assert version == session_server.version
    if session_server.engine == "mariadb":
        assert "MariaDB" in version
    else:
        assert version[0].isdigit()
    assert session_server.target.password
    assert session_server.target.password not in repr(session_server.target)
    assert mask(session_server.target.password) == MASK


def test_admin_target_works_over_tcp_too(session_server: ThrowawayServer) -> None:
    target = session_server.tcp_target
    assert target.socket is None and target.host == "127.0.0.1" and target.port == session_server.port
    connection = connect(target)
    try:
        assert server_version(connection) == session_server.version
    finally:
        connection.close()


def test_create_database_with_its_own_user(session_server: ThrowawayServer) -> None:
    engine = session_server.engine
    target = session_server.create_database("throwaway_created", user="throwaway_owner")
    assert target.database == "throwaway_created" and target.user == "throwaway_owner"
    assert target.password
    for each in (target, target.with_database("throwaway_created")):
        connection = connect(each)
        try:
            cursor = connection.cursor()
            cursor.execute("CREATE TABLE users (id INT PRIMARY KEY)")
            cursor.execute("CREATE TABLE gpgkeys (id INT PRIMARY KEY)")
            connection.commit()
            assert list_tables(connection, engine) == ["gpgkeys", "users"]
            cursor.execute("DROP TABLE users")
            cursor.execute("DROP TABLE gpgkeys")
            connection.commit()
        finally:
            connection.close()
    # Over TCP as well: MariaDB matches 127.0.0.1, not 'localhost', with skip-name-resolve.
    connection = connect(dataclasses.replace(target, socket=None))
    connection.close()

    with pytest.raises(DatabaseError, match="wrong user or password") as denied:
        connect(target.with_account("throwaway_owner", "not-the-password"))
    assert "not-the-password" not in str(denied.value)
    # MariaDB does not tell an unprivileged user whether a database exists; the admin learns it.
    with pytest.raises(DatabaseError, match="does not exist"):
        connect(target, database="no_such_database")
    with pytest.raises(DatabaseError, match="does not exist"):
        connect(session_server.target, database="no_such_database")


def test_mariadb_is_confined_for_untrusted_dumps(mariadb_server: ThrowawayServer) -> None:
    connection = mariadb_server.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT @@secure_file_priv, @@local_infile, @@event_scheduler, @@bind_address, @@skip_name_resolve")
        secure_file_priv, local_infile, event_scheduler, bind_address, skip_name_resolve = cursor.fetchall()[0]
        cursor.execute("SELECT COUNT(*) FROM mysql.global_priv WHERE User = '' OR Priv NOT LIKE '%authentication_string%'")
        accounts_without_password = cursor.fetchall()[0][0]
        cursor.execute("SELECT Host FROM mysql.global_priv WHERE User = 'root' ORDER BY Host")
        root_hosts = [row[0] for row in cursor.fetchall()]
        # Even the admin cannot read or write files outside the private folder.
        cursor.execute("SELECT LOAD_FILE('/etc/passwd')")
        assert cursor.fetchall()[0][0] is None
        with pytest.raises(Exception, match="secure-file-priv"):
            cursor.execute("SELECT 1 INTO OUTFILE '/tmp/strongroom-outfile-probe'")
        assert not Path("/tmp/strongroom-outfile-probe").exists()
    finally:
        connection.close()
    target = mariadb_server.create_database("confinement_checks", user="confined_owner")
    connection = connect(target)
    try:
        cursor = connection.cursor()
        cursor.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cursor.fetchall())
    finally:
        connection.close()
    assert "FILE" not in grants and "`confinement_checks`" in grants
    assert Path(secure_file_priv.rstrip("/")) == mariadb_server.files_dir
    assert list(mariadb_server.files_dir.iterdir()) == []
    assert (local_infile, event_scheduler, bind_address, skip_name_resolve) == (0, "OFF", "127.0.0.1", 1)
    assert accounts_without_password == 0
    assert root_hosts == ["127.0.0.1", "localhost"]


def test_postgresql_listens_on_loopback_with_passwords(postgresql_server: ThrowawayServer) -> None:
    connection = postgresql_server.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT current_setting('listen_addresses'), current_setting('fsync'), current_setting('password_encryption')")
        assert cursor.fetchall()[0] == ("127.0.0.1", "off", "scram-sha-256")
        cursor.execute("SELECT type, auth_method FROM pg_hba_file_rules ORDER BY line_number")
        rules = cursor.fetchall()
    finally:
        connection.close()
    assert rules and all(method == "scram-sha-256" for _, method in rules)
    with pytest.raises(DatabaseError, match="wrong user or password"):
        connect(postgresql_server.tcp_target.with_account("postgres", "wrong-password"))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches the server to an unprivileged account")
def test_servers_run_unprivileged_as_root(session_server: ThrowawayServer) -> None:
    assert session_server.pid is not None and session_server.account is not None
    assert session_server.account.uid != 0
    assert uid_of(session_server.pid) == session_server.account.uid
    for child in children_of(session_server.pid):  # PostgreSQL's background processes
        assert uid_of(child) == session_server.account.uid
    expected = "mysql" if session_server.engine == "mariadb" else "postgres"
    assert session_server.account.name == expected
    assert session_server.directory.stat().st_uid == session_server.account.uid
    assert session_server.directory.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("engine", ENGINES)
def test_start_query_stop_leaves_nothing_behind(engine: str) -> None:
    _require_engine(engine)
    started = time.monotonic()
    server = start_server(engine)
    elapsed = time.monotonic() - started
    watchdog = server._watchdog
    assert watchdog is not None
    with server:
        assert server.running
        pid = server.pid
        assert pid is not None
        directory = server.directory
        assert directory.is_dir()
        connection = server.connect()
        cursor = connection.cursor()
        cursor.execute("SELECT 42")
        assert cursor.fetchall()[0][0] == 42
        # Left open, mid-transaction: a clean stop must not wait for this client.
        cursor.execute("CREATE TABLE IF NOT EXISTS pending (id INT)" if engine == "postgresql" else "SELECT 1")
        stopping = time.monotonic()
    stop_elapsed = time.monotonic() - stopping
    connection.close()
    assert stop_elapsed < 5, f"stopping with a client connected took {stop_elapsed:.1f} s"
    assert not server.running
    assert not process_alive(pid)
    assert not directory.exists()
    assert watchdog.process.poll() == 0
    server.stop()  # idempotent
    # Generous bound: about 1 s here; fails only when something is badly wrong.
    assert elapsed < 15, f"cold start took {elapsed:.1f} s"


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_binary_names_the_package(engine: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    base = tmp_path / "base"
    with pytest.raises(DependencyError) as missing:
        start_server(engine, search_path=str(empty), base_dir=base)
    expected = "install mariadb-server" if engine == "mariadb" else "install postgresql"
    assert missing.value.hint == expected
    assert expected in str(missing.value)
    assert not base.exists()


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="mariadb"):
        start_server("mysql")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another account")
def test_base_dir_the_server_account_cannot_enter_is_refused(tmp_path: Path) -> None:
    _require_engine("postgresql")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(UsageError, match="cannot enter"):
        start_server("postgresql", base_dir=private)
    assert list(private.iterdir()) == []


@pytest.fixture
def wrapper_dir() -> Iterator[Path]:
    """A directory every account can enter, for stand-in server programs."""
    directory = Path(tempfile.mkdtemp(prefix="strongroom-wrapper-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


def _wrap(directory: Path, name: str, real: str, extra: str) -> None:
    """Write ``directory/name``: runs the real program with an extra, invalid option."""
    script = directory / name
    script.write_text(f'#!/bin/sh\nexec {real} "$@" {extra}\n')
    script.chmod(0o755)


@pytest.mark.parametrize("engine", ENGINES)
def test_start_failure_reports_the_log_tail(engine: str, wrapper_dir: Path) -> None:
    _require_engine(engine)
    programs = find_server_programs(engine)
    if engine == "postgresql":
        # The real server refuses a setting out of range; initdb comes from beside it.
        _wrap(wrapper_dir, "postgres", programs.server, "-c shared_buffers=1kB")
        (wrapper_dir / "initdb").symlink_to(programs.initialise)
        expected = "shared_buffers"
    else:
        _wrap(wrapper_dir, "mariadbd", programs.server, "--innodb-buffer-pool-size=1Zillion")
        (wrapper_dir / "mariadb-install-db").symlink_to(programs.initialise)
        expected = "innodb"
    base = wrapper_dir / "base"
    base.mkdir(mode=0o755)
    with pytest.raises(CommandError) as failure:
        start_server(engine, search_path=str(wrapper_dir), base_dir=base, timeout=30)
    message = str(failure.value)
    assert "while starting" in message
    assert expected in failure.value.stderr_tail.lower()
    assert expected in message.lower()
    assert list(base.iterdir()) == []


OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from strongroom.dbserver import start_server
    server = start_server(sys.argv[1])
    print(server.pid, server.directory, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize("engine", ENGINES)
def test_sigkilled_owner_leaves_no_server_behind(engine: str) -> None:
    _require_engine(engine)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, engine], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, owner.stderr.read() if owner.stderr else "the owner printed nothing"
        pid_text, directory_text = line.split(maxsplit=1)
        pid, directory = int(pid_text), Path(directory_text.strip())
        assert process_alive(pid) and directory.is_dir()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        if owner.stdout:
            owner.stdout.close()
        if owner.stderr:
            owner.stderr.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (process_alive(pid) or directory.exists()):
        time.sleep(0.05)
    assert not process_alive(pid), f"the {engine} server {pid} outlived its owner"
    assert not directory.exists(), f"{directory} outlived its owner"


def test_server_account_is_none_unless_root() -> None:
    account = server_account("postgresql")
    if os.geteuid() == 0:
        assert account is not None and account.uid != 0
    else:
        assert account is None


def test_a_forked_child_does_not_stop_its_parents_server(mariadb_server: ThrowawayServer) -> None:
    from strongroom.dbserver.server import _stop_live_servers

    child = os.fork()
    if child == 0:  # the child: what its exit (atexit) would do
        try:
            mariadb_server.stop()
            _stop_live_servers()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert mariadb_server.running and mariadb_server.directory.is_dir()
    connection = mariadb_server.connect()
    connection.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_port_taken_before_the_server_binds_it_is_retried(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_engine(engine)
    import socket

    from strongroom.dbserver import server as server_module

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_port = server_module._free_port
        offered: list[int] = []

        def first_taken_then_free() -> int:
            # The first port offered is already in use: the race a free-port probe can lose.
            offered.append(taken if not offered else real_free_port())
            return offered[-1]

        monkeypatch.setattr(server_module, "_free_port", first_taken_then_free)
        with start_server(engine) as server:
            assert len(offered) == 2 and server.port == offered[1] != taken
            connection = server.connect()
            connection.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_owner_killed_while_initialising_leaves_nothing_behind(engine: str, wrapper_dir: Path) -> None:
    _require_engine(engine)
    from strongroom.dbserver.watchdog import processes_naming

    base = wrapper_dir / "base"
    base.mkdir(mode=0o755)
    script = f"from strongroom.dbserver import start_server; start_server({engine!r}, base_dir={str(base)!r})"
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill the owner as soon as the initialisation has begun writing the data directory.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(base.glob("strongroom-db-*/data/*")):
            time.sleep(0.005)
        directories = list(base.glob("strongroom-db-*"))
        assert directories, "the initialisation never started"
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (list(base.iterdir()) or processes_naming(str(directories[0]))):
        time.sleep(0.05)
    assert list(base.iterdir()) == []
    assert processes_naming(str(directories[0])) == []
