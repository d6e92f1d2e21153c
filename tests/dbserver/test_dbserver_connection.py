"""DatabaseTarget parsing and connect()'s error translation, against real servers where one is needed."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from strongroom.dbserver import (
    DatabaseTarget,
    ThrowawayServer,
    connect,
    list_tables,
    mysql_option_file,
    pgpass_line,
    postgresql_environment,
    server_version,
)
from strongroom.errors import ConfigError, DatabaseError
from strongroom.execute import MASK, mask


def _closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mysql_url_is_percent_decoded_and_defaults_the_port() -> None:
    target = DatabaseTarget.from_url("mysql://pass%20bolt:p%40ss%3Aw%2Frd@db.example.org/passbolt%5Fdb")
    assert target.engine == "mysql"
    assert (target.user, target.password) == ("pass bolt", "p@ss:w/rd")
    assert (target.host, target.port, target.effective_port) == ("db.example.org", None, 3306)
    assert target.database == "passbolt_db"
    assert target.is_mysql_family
    assert "p@ss:w/rd" not in repr(target)
    assert mask("the password is p@ss:w/rd") == f"the password is {MASK}"


def test_mariadb_url_with_socket_and_ssl_options() -> None:
    target = DatabaseTarget.from_url(
        "mariadb://backup:secret-pw@/passbolt?socket=/run/mysqld/mysqld.sock&ssl-mode=VERIFY_IDENTITY"
        "&ssl-ca=/etc/ca.pem&ssl-cert=/etc/client.pem&ssl-key=/etc/client.key"
    )
    assert target.engine == "mariadb"
    assert target.socket == "/run/mysqld/mysqld.sock"
    assert target.host == "localhost"
    assert (target.ssl_mode, target.ssl_ca, target.ssl_cert, target.ssl_key) == (
        "verify-full",
        "/etc/ca.pem",
        "/etc/client.pem",
        "/etc/client.key",
    )


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgresql_url_with_schema_port_and_libpq_socket(scheme: str) -> None:
    target = DatabaseTarget.from_url(f"{scheme}://pb:pw-value@[::1]:6543/passbolt?schema=pb&sslmode=require")
    assert (target.engine, target.host, target.port, target.schema, target.ssl_mode) == (
        "postgresql",
        "::1",
        6543,
        "pb",
        "require",
    )
    via_socket = DatabaseTarget.from_url(f"{scheme}://pb@/passbolt?host=/var/run/postgresql")
    assert via_socket.socket == "/var/run/postgresql" and via_socket.password is None
    assert DatabaseTarget.from_url(f"{scheme}:///passbolt").effective_port == 5432


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oracle://u:hidden-pw@h/db", "unknown scheme"),
        ("mysql://u:hidden-pw@h:99999/db", "invalid port"),
        ("mysql://u:hidden-pw@h/db?colour=blue", "unknown option 'colour'"),
        ("postgresql://u:hidden-pw@h/db?sslmode=sometimes", "unknown SSL mode"),
        ("mysql://u:hidden-pw@h/db/extra", "more than one path segment"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as error:
        DatabaseTarget.from_url(url)
    assert "hidden-pw" not in str(error.value)


def test_target_validates_engine_and_port() -> None:
    with pytest.raises(ConfigError, match="unknown database engine"):
        DatabaseTarget("sqlite")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="out of range"):
        DatabaseTarget("mariadb", port=0)


def test_url_and_describe_never_show_the_password() -> None:
    target = DatabaseTarget.from_url("postgresql://pb:do-not-show@db:5433/passbolt?schema=pb")
    assert "do-not-show" not in target.url() and "do-not-show" not in target.describe()
    assert DatabaseTarget.from_url(target.url()) == target.with_account("pb", None)
    assert target.describe() == "postgresql pb@db:5433 database 'passbolt'"


def test_mysql_option_file_quotes_values() -> None:
    target = DatabaseTarget("mariadb", host="db", port=3307, user="pb", password='a"b\\c#d', database="passbolt")
    text = mysql_option_file(target)
    assert text.startswith("[client]\n")
    assert 'password="a\\"b\\\\c#d"' in text
    assert "port=3307" in text and "protocol=TCP" in text and 'database="passbolt"' in text
    via_socket = mysql_option_file(DatabaseTarget("mysql", socket="/run/mysqld.sock", user="pb"), database="other")
    assert 'socket="/run/mysqld.sock"' in via_socket and "protocol=SOCKET" in via_socket
    assert 'database="other"' in via_socket and "password" not in via_socket


def test_pgpass_line_and_environment() -> None:
    target = DatabaseTarget("postgresql", host="db", user="p:b", password="x:y\\z", database="passbolt", ssl_mode="require")
    assert pgpass_line(target) == "db:5432:passbolt:p\\:b:x\\:y\\\\z\n"
    environment = postgresql_environment(target)
    assert environment["PGHOST"] == "db" and environment["PGPORT"] == "5432"
    assert environment["PGSSLMODE"] == "require" and environment["PGUSER"] == "p:b"
    assert all("x:y" not in value for value in environment.values())


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_unreachable_server_says_is_the_database_running(engine: str) -> None:
    target = DatabaseTarget(engine, host="127.0.0.1", port=_closed_port(), user="u", password="never-shown")  # type: ignore[arg-type]
    with pytest.raises(DatabaseError, match="is the database running") as error:
        connect(target, timeout=3)
    assert "cannot reach the database server" in str(error.value)
    assert "never-shown" not in str(error.value)


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_missing_socket_says_is_the_database_running(engine: str, tmp_path: object) -> None:
    target = DatabaseTarget(engine, socket=f"{tmp_path}/nothing-here", user="u", password="never-shown")  # type: ignore[arg-type]
    with pytest.raises(DatabaseError, match="is the database running"):
        connect(target, timeout=3)


@pytest.fixture(params=["mariadb", "postgresql"])
def server(request: pytest.FixtureRequest) -> ThrowawayServer:
    """Each engine's session-wide server in turn."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


def test_wrong_password_is_access_denied(server: ThrowawayServer) -> None:
    assert server.target.password
    wrong = server.target.with_account(server.target.user or "", "wrong-password-value")
    for target in (wrong, server.tcp_target.with_account(server.target.user or "", "wrong-password-value")):
        with pytest.raises(DatabaseError, match="wrong user or password") as error:
            connect(target)
        assert "wrong-password-value" not in str(error.value)
        assert server.target.password not in str(error.value)


def test_unknown_database_is_named(server: ThrowawayServer) -> None:
    with pytest.raises(DatabaseError, match="the database 'not_a_database' does not exist"):
        connect(server.target, database="not_a_database")


def test_connection_is_transactional_and_lists_base_tables(server: ThrowawayServer) -> None:
    target = server.create_database("connection_checks")
    connection = connect(target)
    try:
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE secrets (id INT PRIMARY KEY, data TEXT)")
        cursor.execute("CREATE VIEW secret_ids AS SELECT id FROM secrets")
        connection.commit()
        cursor.execute("INSERT INTO secrets VALUES (1, 'caf\u00e9 \U0001f511')")
        connection.rollback()  # autocommit is off: the insert is undone
        cursor.execute("SELECT COUNT(*) FROM secrets")
        assert cursor.fetchall()[0][0] == 0
        cursor.execute("INSERT INTO secrets VALUES (2, 'caf\u00e9 \U0001f511')")
        connection.commit()
        cursor.execute("SELECT data FROM secrets")
        assert cursor.fetchall()[0][0] == "caf\u00e9 \U0001f511"  # utf8mb4 round trip
        assert list_tables(connection, server.engine) == ["secrets"]
        assert server_version(connection) == server.version
    finally:
        connection.close()


def test_postgresql_schema_sets_the_search_path(postgresql_server: ThrowawayServer) -> None:
    target = postgresql_server.create_database("schema_checks")
    connection = connect(target)
    try:
        cursor = connection.cursor()
        cursor.execute("CREATE SCHEMA passbolt")
        cursor.execute("CREATE TABLE passbolt.users (id INT)")
        connection.commit()
    finally:
        connection.close()
    scoped = DatabaseTarget.from_url(target.url() + "&schema=passbolt").with_account(target.user or "", target.password)
    connection = connect(scoped)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT COUNT(*) FROM users")  # found through the search path
        assert cursor.fetchall()[0][0] == 0
        assert list_tables(connection, "postgresql", "passbolt") == ["users"]
        assert list_tables(connection, "postgresql") == []
    finally:
        connection.close()
    with pytest.raises(DatabaseError, match="the schema 'elsewhere' does not exist"):
        connect(dataclasses.replace(scoped, schema="elsewhere"))
