"""Edits of passbolt.php and Docker env files: only the named values change, the result parses to them."""

from __future__ import annotations

import pytest

from strongroom.errors import SourceError
from strongroom.passbolt.config_edit import read_env_values, set_env_values, set_php_values
from strongroom.source.php import parse_php, read_dotted

PASSBOLT_PHP = """<?php
// A comment with 'Datasources' => ['default' => ['host' => 'decoy']] in it.
return [
    'App' => ['fullBaseUrl' => 'https://passbolt.example.com'],
    'Datasources' => [
        'default' => [
            'host' => env('DATASOURCES_DEFAULT_HOST', 'localhost'),
            'port' => 3306,
            'username' => 'passbolt', # the account
            'password' => env('DATASOURCES_DEFAULT_PASSWORD'),
            'database' => "passbolt",
        ],
    ],
    'passbolt' => ['gpg' => ['serverKey' => ['public' => CONFIG . 'gpg' . DS . 'serverkey.asc']]],
];
"""


def values(text: str) -> dict:
    return parse_php(text, environment={}, constants={"CONFIG": "/etc/passbolt/", "DS": "/"}).returned


def test_values_change_and_nothing_else() -> None:
    edited = set_php_values(PASSBOLT_PHP, {
        "Datasources.default.host": "db.internal", "Datasources.default.port": "3307",
        "Datasources.default.username": "pb", "Datasources.default.password": "it's \\ secret",
        "Datasources.default.database": "pb_restored", "Datasources.default.unix_socket": "/run/mysqld/mysqld.sock",
    }, file_name="passbolt.php", constants={"CONFIG": "/etc/passbolt/", "DS": "/"})
    data = values(edited)["Datasources"]["default"]
    assert data == {"host": "db.internal", "port": 3307, "username": "pb", "password": "it's \\ secret",
                    "database": "pb_restored", "unix_socket": "/run/mysqld/mysqld.sock"}
    # env() stays: the environment still wins over the restored default, as in passbolt.
    assert "env('DATASOURCES_DEFAULT_HOST', 'db.internal')" in edited
    assert "env('DATASOURCES_DEFAULT_PASSWORD', 'it\\'s \\\\ secret')" in edited
    assert "# the account" in edited and "'decoy'" in edited
    assert values(edited)["App"] == values(PASSBOLT_PHP)["App"]


def test_an_expression_is_refused_not_guessed() -> None:
    with pytest.raises(SourceError) as caught:
        set_php_values(PASSBOLT_PHP, {"passbolt.gpg.serverKey.public": "/srv/key.asc"},
                       constants={"CONFIG": "/etc/passbolt/", "DS": "/"})
    assert "passbolt.gpg.serverKey.public" in caught.value.message
    assert "by hand" in str(caught.value.hint)


def test_a_key_in_a_missing_array_is_refused() -> None:
    with pytest.raises(SourceError):
        set_php_values(PASSBOLT_PHP, {"Nowhere.default.host": "x"})


def test_one_line_arrays_get_their_commas() -> None:
    text = "<?php\nreturn ['Datasources' => ['default' => ['host' => 'a', 'password' => env('P')]]];\n"
    edited = set_php_values(text, {"Datasources.default.password": "s3cret", "Datasources.default.database": "dbx"})
    assert read_dotted(values(edited), "Datasources.default") == {"host": "a", "password": "s3cret", "database": "dbx"}


def test_env_file_values_replaced_in_place_or_appended() -> None:
    text = "# passbolt\nAPP_FULL_BASE_URL=https://x\nDATASOURCES_DEFAULT_PASSWORD='old'\nexport OTHER=1"
    edited = set_env_values(text, {"DATASOURCES_DEFAULT_PASSWORD": 'new "$pw"', "DATASOURCES_DEFAULT_DATABASE": "pb"})
    assert edited.splitlines()[:2] == ["# passbolt", "APP_FULL_BASE_URL=https://x"]
    assert edited.splitlines()[3] == "export OTHER=1"
    assert read_env_values(edited) == {"APP_FULL_BASE_URL": "https://x", "DATASOURCES_DEFAULT_PASSWORD": 'new "$pw"',
                                       "OTHER": "1", "DATASOURCES_DEFAULT_DATABASE": "pb"}


V1_DATABASE_PHP = """<?php
class DATABASE_CONFIG {
	public $default = array(
		'datasource' => 'Database/Mysql',
		'host' => 'localhost',
		'login' => 'passbolt',
		'password' => 'old',
		'database' => 'passbolt'
	);
	public $test = array('host' => 'localhost', 'login' => 'passbolt', 'password' => 'old');
}
"""


def test_a_class_property_array_is_edited_by_its_name() -> None:
    edited = set_php_values(V1_DATABASE_PHP, {"$default.password": "n'ew", "$default.port": "3307"}, file_name="database.php")
    classes = parse_php(edited, environment={}).classes["DATABASE_CONFIG"]
    assert classes["default"] == {"datasource": "Database/Mysql", "host": "localhost", "login": "passbolt",
                                  "password": "n'ew", "database": "passbolt", "port": "3307"}
    assert classes["test"] == {"host": "localhost", "login": "passbolt", "password": "old"}
    with pytest.raises(SourceError, match=r"\$other"):
        set_php_values(V1_DATABASE_PHP, {"$other.host": "x"}, file_name="database.php")
