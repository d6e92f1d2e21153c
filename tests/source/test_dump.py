"""Database dumps against real throwaway servers: complete, counted, secret-free argv."""

from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import replace
from pathlib import Path

import docker_standin
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


def test_docker_exec_dump_passes_secret_by_name(engine_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, server = engine_server
    target = _make_database(server, engine)
    fixture = tmp_path / "fixture.json"
    access = docker_standin.database_access("passbolt-db-1", engine, server.port)
    fixture.write_text(json.dumps({"containers": [{"Name": "/passbolt-db-1"}], **access}))
    bin_directory = tmp_path / "bin"
    log = docker_standin.install(monkeypatch, bin_directory, fixture)
    postgres_bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_directory), *map(str, postgres_bins), os.environ["PATH"]]))
    container = dumps.DockerContainer("passbolt-db-1", docker=str(bin_directory / "docker"))
    with dumps.open_dump(target, server_version=_server_version(server), container=container) as dump:
        dump.stream.read()
        result = dump.finish()
    assert result.row_counts["users"] == 300
    (call,) = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    assert call[:2] == ["exec", "-i"] and "-t" not in call
    assert ("MYSQL_PWD" if engine == "mariadb" else "PGPASSWORD") in call
    assert not [arg for arg in call if target.password in arg]
