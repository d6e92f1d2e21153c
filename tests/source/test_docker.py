"""Compose interpolation, env files and the container database command."""

from __future__ import annotations

import pytest

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import SourceError
from strongroom.source.checks import container_database_command
from strongroom.source.docker import DockerSetup, interpolate, parse_env_file


def test_interpolation_follows_compose_rules() -> None:
    variables = {"SET": "value", "EMPTY": ""}
    assert interpolate("a-${SET}-$SET-$$SET", variables, where="c") == "a-value-value-$SET"
    assert interpolate("${MISSING:-fallback} ${EMPTY:-fallback} [${EMPTY-unused}] ${MISSING-dash}", variables, where="c") == (
        "fallback fallback [] dash"
    )
    assert interpolate("${SET:+alt}${MISSING:+alt}", variables, where="c") == "alt"
    with pytest.raises(SourceError, match=r"\$\{MISSING\} is required: set it"):
        interpolate("${MISSING:?set it}", variables, where="compose.yaml")


def test_env_files_strip_comments_quotes_and_export() -> None:
    text = "# comment\nexport A=1\nB='two words'\nC=\"x#y\"\nD=plain # trailing\n\nnot a line\nE=\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "x#y", "D": "plain", "E": ""}


def test_version_from_image_tag() -> None:
    assert DockerSetup(image="passbolt/passbolt:5.12.0-1-ce").version_from_image == "5.12.0"
    assert DockerSetup(image="registry:5000/passbolt/passbolt").version_from_image is None
    assert DockerSetup(image="passbolt/passbolt:latest-ce").version_from_image is None


def test_container_database_command_keeps_the_password_out_of_argv() -> None:
    target = DatabaseTarget(engine="mariadb", host="db", user="passbolt", password="container-secret-99", database="passbolt")
    argv, environment = container_database_command(target, "passbolt-db-1", "mariadb:10.11")
    assert argv[:6] == ["docker", "exec", "-i", "-e", "MYSQL_PWD", "passbolt-db-1"]
    assert argv[6] == "mariadb"
    assert environment == {"MYSQL_PWD": "container-secret-99"}
    assert not any("container-secret-99" in part for part in argv)
    postgres = DatabaseTarget(engine="postgresql", host="db", user="pb", password="container-secret-99", database="pb", schema="passbolt")
    argv, environment = container_database_command(postgres, "pg", "postgres:15")
    assert argv[3:7] == ["-e", "PGPASSWORD", "pg", "psql"]
    assert "schemaname = 'passbolt'" in argv[-1]
    assert environment == {"PGPASSWORD": "container-secret-99"}
