"""Discovery on instances written to disk: every layout, overrides, and what cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from discovery_builders import Database, build_docker, build_package, build_source, build_v1, server_key

from strongroom.config.schema import InstanceConfig
from strongroom.errors import SourceError
from strongroom.source.checks import run_checks
from strongroom.source.discovery import discover_instance
from strongroom.source.findings import Severity
from strongroom.source.layouts import PathMap, detect_layout

PASSWORD = "discovery-password-7f3a"


def roles_of(instance) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {item.role: str(item.path) for item in instance.backup_set.files}


def errors_of(findings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f.check: f.message for f in findings if f.severity is Severity.ERROR}


@pytest.mark.parametrize("layout", ["debian", "rpm"])
def test_package_layouts_are_detected_with_their_backup_set(tmp_path: Path, layout: str) -> None:
    build_package(tmp_path, Database(password=PASSWORD, port=3307), layout=layout)
    assert detect_layout(tmp_path) == layout
    instance = discover_instance(tmp_path, InstanceConfig(), {})
    assert instance.layout == layout
    assert instance.web_user == ("www-data" if layout == "debian" else "nginx")
    assert roles_of(instance) == {
        "passbolt-config": "/etc/passbolt/passbolt.php",
        "app-config": "/etc/passbolt/app.php",
        "server-key-public": "/etc/passbolt/gpg/serverkey.asc",
        "server-key-private": "/etc/passbolt/gpg/serverkey_private.asc",
        "jwt-private": "/etc/passbolt/jwt/jwt.key",
        "jwt-public": "/etc/passbolt/jwt/jwt.pem",
    }
    assert instance.version == "5.12.0" and instance.backup_set.edition == "ce"
    database = instance.database
    assert database is not None
    assert (database.engine, database.host, database.port, database.user, database.database) == (
        "mysql", "127.0.0.1", 3307, "passbolt", "passbolt",
    )
    assert database.password == PASSWORD
    assert instance.backup_set.fingerprint == server_key()[0]
    assert instance.backup_set.file("server-key-public").location == tmp_path / "etc/passbolt/gpg/serverkey.asc"
    findings = run_checks(instance, connect_database=False)
    assert errors_of(findings) == {}
    passed = {f.check for f in findings if f.severity is Severity.OK}
    assert {"server-key-fingerprint", "server-key-single", "server-key-private-matches", "jwt-match",
            "jwt-permissions", "server-key-insecure-default", "file-present"} <= passed
    # The password is in the target, never in the description.
    assert PASSWORD not in json.dumps(instance.to_dict())


def test_source_install_with_postgresql(tmp_path: Path) -> None:
    build_source(tmp_path, Database(engine="postgresql", port=5433, password=PASSWORD))
    instance = discover_instance(tmp_path, InstanceConfig(), {})
    assert instance.layout == "source"
    assert roles_of(instance)["passbolt-config"] == "/var/www/passbolt/config/passbolt.php"
    assert roles_of(instance)["jwt-private"] == "/var/www/passbolt/config/jwt/jwt.key"
    assert instance.database is not None and instance.database.engine == "postgresql"
    assert instance.database.port == 5433
    assert instance.version == "4.10.1"
    # 4.10 keeps avatars in the database: no avatars directory in the set.
    assert "avatars" not in roles_of(instance)


def test_v1_reads_database_php_login_and_avatars(tmp_path: Path) -> None:
    build_v1(tmp_path, Database(user="v1user", password=PASSWORD, name="passbolt_v1"))
    instance = discover_instance(tmp_path, InstanceConfig(), {})
    assert instance.layout == "v1"
    roles = roles_of(instance)
    assert roles["database-config"] == "/var/www/passbolt/app/Config/database.php"
    assert roles["passbolt-config"] == "/var/www/passbolt/app/Config/app.php"
    assert roles["server-key-public"] == "/var/www/passbolt/app/Config/gpg/serverkey.asc"
    assert roles["avatars"] == "/var/www/passbolt/app/webroot/img/public"
    assert "jwt-private" not in roles
    assert instance.database is not None and instance.database.user == "v1user"
    assert instance.database.database == "passbolt_v1"
    assert instance.version == "1.6.10"
    assert errors_of(run_checks(instance, connect_database=False)) == {}


def test_docker_compose_env_files_and_volumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-docker-here"))
    build_docker(tmp_path, Database(password=PASSWORD, host="db", port=3306), project="vault")
    instance = discover_instance(tmp_path, InstanceConfig(), {})
    assert instance.layout == "docker"
    assert instance.docker is not None and instance.docker.project == "vault"
    volume = tmp_path / "var/lib/docker/volumes/vault_gpg_volume/_data"
    assert instance.backup_set.file("server-key-private").location == volume / "serverkey_private.asc"
    assert instance.backup_set.file("jwt-public").location == tmp_path / "var/lib/docker/volumes/vault_jwt_volume/_data/jwt.pem"
    roles = roles_of(instance)
    assert roles["docker-compose"] == "/opt/passbolt/docker-compose.yaml"
    assert roles["docker-env"] == "/opt/passbolt/env/passbolt.env"
    assert "passbolt-config" not in roles  # configured by the environment
    database = instance.database
    assert database is not None
    assert (database.engine, database.host, database.user, database.password) == ("mariadb", "db", "passbolt", PASSWORD)
    assert instance.backup_set.database_container == "vault-db-1"
    assert instance.backup_set.fingerprint == server_key()[0]
    assert instance.version == "5.12.0"


def test_docker_url_dsn_and_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-docker-here"))
    paths = build_docker(tmp_path, Database(engine="postgresql", host="db"))
    compose = paths["docker-compose"]
    text = compose.read_text().replace(
        "      DATASOURCES_DEFAULT_PASSWORD: ${DB_PASSWORD}\n",
        "      DATASOURCES_DEFAULT_URL_FILE: /run/secrets/db_url\n",
    ).replace("    command:", "    secrets: [db_url]\n    command:")
    text += "secrets:\n  db_url:\n    file: ./secrets/db_url.txt\n"
    compose.write_text(text)
    secret = compose.parent / "secrets/db_url.txt"
    secret.parent.mkdir()
    secret.write_text(f"postgres://pb:{PASSWORD}@pg.internal:5544/vault?schema=passbolt\n")
    instance = discover_instance(tmp_path, InstanceConfig(), {})
    database = instance.database
    assert database is not None
    assert (database.engine, database.host, database.port, database.user, database.database, database.schema) == (
        "postgresql", "pg.internal", 5544, "pb", "vault", "passbolt",
    )
    assert database.password == PASSWORD
    assert roles_of(instance)["docker-secret-db_url"] == "/opt/passbolt/secrets/db_url.txt"


def test_explicit_configuration_overrides_detection(tmp_path: Path) -> None:
    build_source(tmp_path, Database(password=PASSWORD))
    # Move the config to an unusual place: detection would not find it, the config names it.
    unusual = tmp_path / "srv/pb"
    unusual.parent.mkdir()
    (tmp_path / "var/www/passbolt").rename(unusual)
    password_file = tmp_path / "db-password"
    password_file.write_text("from-the-file-1234\n")
    config = InstanceConfig(
        layout="source",
        install_dir=Path("/srv/pb"),
        database_url="mysql://backup@10.0.0.5:3310/passbolt_live",
        database_password_file=password_file,
        server_key_fingerprint=server_key()[0].lower(),
    )
    instance = discover_instance(tmp_path, config, {})
    assert instance.paths.config_dir.as_posix() == "/srv/pb/config"
    assert roles_of(instance)["server-key-public"] == "/srv/pb/config/gpg/serverkey.asc"
    database = instance.database
    assert database is not None
    assert (database.host, database.port, database.user, database.database, database.password) == (
        "10.0.0.5", 3310, "backup", "passbolt_live", "from-the-file-1234",
    )
    assert instance.backup_set.database_origin == "[instance] configuration"
    assert instance.backup_set.fingerprint == server_key()[0]
    assert instance.version == "4.10.1"


def test_environment_applies_to_env_calls(tmp_path: Path) -> None:
    paths = build_package(tmp_path, Database())
    paths["passbolt-config"].chmod(0o640)
    paths["passbolt-config"].write_text(
        "<?php\nreturn ['Datasources' => ['default' => [\n"
        "  'host' => env('DB_HOST', 'localhost'), 'username' => env('DB_USER', 'passbolt'),\n"
        "  'password' => env('DB_PASS'), 'database' => 'passbolt']],\n"
        " 'passbolt' => ['gpg' => ['serverKey' => ['fingerprint' => env('FPR')]]]];\n"
    )
    instance = discover_instance(tmp_path, InstanceConfig(), {"DB_HOST": "db.example", "DB_PASS": PASSWORD, "FPR": "abcd"})
    assert instance.database is not None
    assert (instance.database.host, instance.database.user, instance.database.password) == ("db.example", "passbolt", PASSWORD)
    assert instance.backup_set.fingerprint == "ABCD"


def test_unparseable_passbolt_php_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    paths = build_package(tmp_path, Database())
    paths["passbolt-config"].chmod(0o640)
    paths["passbolt-config"].write_text("<?php\nreturn [\n    'Datasources' => [\n        'default' => system('id'),\n    ],\n];\n")
    instance = discover_instance(tmp_path, InstanceConfig(), {})
    errors = errors_of(run_checks(instance, connect_database=False))
    assert "config-readable" in errors
    assert "/etc/passbolt/passbolt.php: line 4, column 22" in errors["config-readable"]
    assert "system() is not understood" in errors["config-readable"]
    assert "database-settings" in errors


def test_no_instance_raises_saying_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-docker-here"))
    with pytest.raises(SourceError) as raised:
        discover_instance(tmp_path, InstanceConfig(), {})
    assert "no passbolt instance found" in raised.value.message
    assert "/etc/passbolt/passbolt.php" in raised.value.message
    assert raised.value.hint


def test_path_map_prefers_the_longest_mount() -> None:
    mounts = PathMap(Path("/r"), ((PurePosix("/etc/passbolt"), Path("/r/a")), (PurePosix("/etc/passbolt/gpg"), Path("/r/g"))), True)
    assert mounts.locate("/etc/passbolt/gpg/serverkey.asc") == Path("/r/g/serverkey.asc")
    assert mounts.locate("/etc/passbolt/passbolt.php") == Path("/r/a/passbolt.php")
    assert mounts.locate("/usr/share/php/passbolt/config/version.php") is None
    assert PathMap(Path("/r")).locate("/etc/passbolt") == Path("/r/etc/passbolt")


def PurePosix(text: str):  # type: ignore[no-untyped-def]
    from pathlib import PurePosixPath

    return PurePosixPath(text)
