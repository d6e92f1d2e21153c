"""Database dumps against real throwaway servers: complete, counted, secret-free argv."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from strongroom.dbserver.connection import connect
from strongroom.errors import DatabaseError, DependencyError
from strongroom.source import dump as dumps


def _make_database(server, engine: str):  # type: ignore[no-untyped-def]
    name = "dump_" + secrets.token_hex(4)
    password = "pw-" + secrets.token_hex(8) + ":'\"\\"
    server.create_database(name, user=name, password=password)
    target = replace(server.target, database=name, user=name, password=password)
    # As passbolt does, the application's own account creates and owns the tables.
    connection = connect(target)
    with connection.cursor() as cursor:
        if engine == "mariadb":
            cursor.execute("CREATE TABLE users (id CHAR(36) PRIMARY KEY, name TEXT, data BLOB) DEFAULT CHARSET=utf8mb4")
            cursor.execute("CREATE TABLE empty_table (id INT PRIMARY KEY)")
            rows = [(f"{i:036d}", f"name {i} ); with 'quotes' and \\ backslash\nnewline ü", bytes(range(256))) for i in range(300)]
            cursor.executemany("INSERT INTO users VALUES (%s, %s, %s)", rows)
        else:
            cursor.execute("CREATE TABLE users (id CHAR(36) PRIMARY KEY, name TEXT, data BYTEA)")
            cursor.execute("CREATE TABLE empty_table (id INT PRIMARY KEY)")
            rows = [(f"{i:036d}", f"name {i} with tab\tand newline\n ü", bytes(range(256))) for i in range(300)]
            cursor.executemany("INSERT INTO users VALUES (%s, %s, %s)", rows)
    connection.commit()
    connection.close()
    return target


def _server_version(server) -> str:  # type: ignore[no-untyped-def]
    return server.version


@pytest.fixture(params=["mariadb", "postgresql"])
def engine_server(request):  # type: ignore[no-untyped-def]
    return request.param, request.getfixturevalue(f"{request.param}_server")


def test_dump_is_complete_and_counts_rows(engine_server) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = _make_database(server, engine)
    with dumps.open_dump(target, server_version=_server_version(server)) as dump:
        data = dump.stream.read()
        result = dump.finish()
    assert result.row_counts["users"] == 300
    assert result.row_counts.get("empty_table", 0) == 0
    assert result.bytes == len(data)
    if engine == "mariadb":
        assert dumps.MARIADB_TRAILER in data[-200:]
        assert data.count(b"INSERT INTO `users` VALUES") == 300
    else:
        assert dumps.POSTGRESQL_TRAILER in data[-200:]
    assert target.password.encode() not in data


def test_password_never_in_any_argument_list(engine_server) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = _make_database(server, engine)
    seen: list[str] = []
    with dumps.open_dump(target, server_version=_server_version(server)) as dump:
        # Read slowly and look at every process's command line while the dumper runs.
        first = dump.stream.read(64)
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace"))
                except OSError:
                    pass
        rest = dump.stream.read()
        dump.finish()
    assert first and rest
    assert any("dump" in line for line in seen), "the dumper was not running while we looked"
    assert not [line for line in seen if target.password in line]


def test_wrong_password_is_a_clear_error(engine_server) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = replace(_make_database(server, engine), password="wrong-password-123")
    with pytest.raises(DatabaseError) as caught:
        with dumps.open_dump(target, server_version=_server_version(server)) as dump:
            dump.stream.read()
            dump.finish()
    message = str(caught.value)
    assert "dump failed" in message
    assert "wrong-password-123" not in message
    assert "no snapshot was written" in message


def test_database_down_is_a_clear_error(engine_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = replace(server.target, host="127.0.0.1", port=1, socket=None, database="none")
    with pytest.raises(DatabaseError, match="dump failed"):
        with dumps.open_dump(target, server_version=_server_version(server)) as dump:
            dump.stream.read()
            dump.finish()


def test_killed_dumper_means_no_dump(engine_server) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = _make_database(server, engine)
    with pytest.raises(DatabaseError, match="SIGKILL|incomplete"):
        with dumps.open_dump(target, server_version=_server_version(server)) as dump:
            dump.stream.read(10)
            os.kill(dump.running.pid, signal.SIGKILL)
            dump.stream.read()
            dump.finish()


def test_postgresql_client_older_than_server_names_the_package() -> None:
    with pytest.raises(DependencyError, match="postgresql-client-99"):
        dumps.choose_postgresql_client("99.1")


def _stand_in_docker(directory: Path) -> None:
    """A 'docker' that runs 'exec' commands locally, passing '-e NAME' from its environment."""
    script = directory / "docker"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys
            args = sys.argv[1:]
            log = os.environ.get("DOCKER_STAND_IN_LOG")
            if log:
                with open(log, "a") as handle:
                    handle.write(repr(args) + "\\n")
            assert args[0] == "exec", args
            args = args[1:]
            # The container's own environment: its server on the default socket.
            env = {{"PATH": os.environ["PATH"]}}
            for name in ("PGHOST", "PGPORT"):
                if os.environ.get("STAND_IN_" + name):
                    env[name] = os.environ["STAND_IN_" + name]
            while args[0].startswith("-"):
                flag = args.pop(0)
                if flag == "-e":
                    name = args.pop(0)
                    assert "=" not in name, "a value in argv"
                    env[name] = os.environ[name]
                elif flag == "-t":
                    sys.exit("no TTY allowed")
            container = args.pop(0)
            socket = os.environ.get("STAND_IN_MYSQL_SOCKET")
            if socket and args[0].startswith(("mariadb", "mysql")):
                # MariaDB's clients know no variable for the socket; the image's default is emulated.
                args.insert(1, "--socket=" + socket)
            os.execvpe(args[0], args, env)
            """
        )
    )
    script.chmod(0o755)


def test_docker_exec_dump_passes_secret_by_name(engine_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = _make_database(server, engine)
    _stand_in_docker(tmp_path)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("DOCKER_STAND_IN_LOG", str(log))
    postgres_bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    path = os.pathsep.join([str(tmp_path), *map(str, postgres_bins), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    if engine == "mariadb":
        monkeypatch.setenv("STAND_IN_MYSQL_SOCKET", server.socket)
    else:
        monkeypatch.setenv("STAND_IN_PGHOST", server.socket)
        monkeypatch.setenv("STAND_IN_PGPORT", str(server.port))
    container = dumps.DockerContainer("passbolt-db-1", docker=str(tmp_path / "docker"))
    with dumps.open_dump(target, server_version=_server_version(server), container=container) as dump:
        dump.stream.read()
        result = dump.finish()
    assert result.row_counts["users"] == 300
    recorded = log.read_text()
    assert "'-i'" in recorded and "'-t'" not in recorded
    assert target.password not in recorded
    assert ("'MYSQL_PWD'" if engine == "mariadb" else "'PGPASSWORD'") in recorded
