"""passbolt.php written from a Docker environment: values, types, quoting, what is left out."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import SourceError
from strongroom.passbolt.from_docker import passbolt_php_from_environment, render_php_config
from strongroom.source.php import parse_php, read_dotted

FINGERPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
BASE = {"APP_FULL_BASE_URL": "https://vault.example.org", "PASSBOLT_GPG_SERVER_KEY_FINGERPRINT": FINGERPRINT}
TARGET = DatabaseTarget(engine="mariadb", host="10.0.0.5", port=3307, user="passbolt", password="p'w\\x", database="vault")


def parsed(text: str) -> dict[str, object]:
    result = parse_php(text, path="passbolt.php", environment={}).returned
    assert isinstance(result, dict)
    return result


def test_values_types_and_the_target_database() -> None:
    environment = {
        **BASE,
        "DATASOURCES_DEFAULT_HOST": "db", "DATASOURCES_DEFAULT_PASSWORD": "old", "DATASOURCES_DEFAULT_ENCODING": "utf8mb4",
        "EMAIL_TRANSPORT_DEFAULT_PORT": "465", "EMAIL_TRANSPORT_DEFAULT_TLS": "0", "EMAIL_TRANSPORT_DEFAULT_TIMEOUT": "soon",
        "EMAIL_DEFAULT_FROM": "no-reply@example.org", "EMAIL_DEFAULT_FROM_NAME": "Vault",
        "PASSBOLT_REGISTRATION_PUBLIC": "yes",
        "PASSBOLT_KEY_EMAIL": "admin@example.org", "DATASOURCES_DEFAULT_PASSWORD_FILE": "/run/secrets/db",
        "SECURITY_SALT": "s" * 40, "PASSBOLT_PLUGINS_SSO_ENABLED": "true", "DEBUG": "1",
    }
    generated = passbolt_php_from_environment(environment, TARGET, PurePosixPath("/var/www/passbolt/config/gpg"))
    data = parsed(generated.text)
    assert read_dotted(data, "Datasources.default") == {
        "host": "10.0.0.5", "port": 3307, "username": "passbolt", "password": "p'w\\x", "database": "vault",
        "encoding": "utf8mb4"}
    transport = read_dotted(data, "EmailTransport.default")
    assert transport == {"port": 465, "tls": False, "timeout": "soon"}
    assert read_dotted(data, "Email.default.from") == {"no-reply@example.org": "Vault"}
    assert read_dotted(data, "passbolt.registration.public") is True
    assert read_dotted(data, "passbolt.gpg.serverKey.private") == "/var/www/passbolt/config/gpg/serverkey_private.asc"
    assert generated.salt == "s" * 40
    # entrypoint-only variables and applied secrets are not "left"; unknown settings are
    assert generated.left == ("DEBUG", "PASSBOLT_PLUGINS_SSO_ENABLED")
    assert "DATASOURCES_DEFAULT_HOST" in generated.carried and "SECURITY_SALT" not in generated.carried


def test_postgresql_target_names_its_driver_and_schema() -> None:
    target = DatabaseTarget(engine="postgresql", host="127.0.0.1", port=5432, user="u", password="", database="d", schema="vault")
    data = parsed(passbolt_php_from_environment(BASE, target, PurePosixPath("/etc/passbolt/gpg")).text)
    assert read_dotted(data, "Datasources.default.driver") == "Cake\\Database\\Driver\\Postgres"
    assert read_dotted(data, "Datasources.default.schema") == "vault"
    assert read_dotted(data, "EmailTransport") is None


@pytest.mark.parametrize("missing", sorted(BASE))
def test_an_environment_without_url_or_fingerprint_is_refused(missing: str) -> None:
    environment = {name: value for name, value in BASE.items() if name != missing}
    with pytest.raises(SourceError, match=missing):
        passbolt_php_from_environment(environment, TARGET, PurePosixPath("/etc/passbolt/gpg"))


def test_rendered_strings_survive_php_quoting() -> None:
    odd = "a'b\\c\\'d $x {y} \n end"
    assert read_dotted(parsed(render_php_config({"A": {"b": odd, "n": None, "t": True}})), "A") == {"b": odd, "n": None, "t": True}
