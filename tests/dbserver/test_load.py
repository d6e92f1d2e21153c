"""A dump loads into a fresh database and gives back the same tables, on both engines."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from strongroom.dbserver.connection import connect
from strongroom.dbserver.inspect import table_fingerprints
from strongroom.dbserver.load import load_dump
from strongroom.errors import DatabaseError
from strongroom.source.dump import open_dump


def _database(server, rows: int = 50):  # type: ignore[no-untyped-def]
    name = "load_" + secrets.token_hex(4)
    target = server.create_database(name, user=name, password="pw-" + secrets.token_hex(6))
    connection = connect(target)
    with connection.cursor() as cursor:
        blob = "BYTEA" if target.engine == "postgresql" else "BLOB"
        cursor.execute(f"CREATE TABLE t (id CHAR(36) PRIMARY KEY, v TEXT, b {blob})")
        cursor.executemany(
            "INSERT INTO t VALUES (%s, %s, %s)",
            [(f"{i:036d}", f"value {i} 'q' \\ \n ü", bytes([i % 256]) * 10) for i in range(rows)],
        )
    connection.commit()
    connection.close()
    return target


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_dump_then_load_gives_the_same_tables(engine: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(f"{engine}_server")
    source = _database(server)
    with open_dump(source, server_version=server.version) as dump:
        data = dump.stream.read()
        dump.finish()
    name = "copy_" + secrets.token_hex(4)
    copy = server.create_database(name, user=name, password="pw-" + secrets.token_hex(6))
    result = load_dump(copy, iter([data[i : i + 4096] for i in range(0, len(data), 4096)]))
    assert result.bytes == len(data)
    with connect(source) as left, connect(copy) as right:  # type: ignore[attr-defined]
        assert table_fingerprints(left, engine) == table_fingerprints(right, engine)


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_a_failing_statement_is_a_clear_error(engine: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(f"{engine}_server")
    target = _database(server, rows=1)
    with pytest.raises(DatabaseError, match="loading the dump"):
        load_dump(target, [b"CREATE TABLE t (id INT);\n"])


def test_mariadb_client_shell_escape_does_not_run(mariadb_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = _database(mariadb_server, rows=1)
    marker = tmp_path / "escaped"
    with pytest.raises(DatabaseError):
        load_dump(target, [f"\\! touch {marker}\nSELECT 1;\n".encode()])
    assert not marker.exists()
