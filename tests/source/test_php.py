"""The PHP configuration reader: what passbolt's files contain, and clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.errors import SourceError
from strongroom.source.php import parse_php, read_dotted, read_php_file

PACKAGE_CONSTANTS = {"ROOT": "/usr/share/php/passbolt", "DS": "/", "CONFIG": "/etc/passbolt/"}

PASSBOLT_PHP = r"""<?php
/**
 * Passbolt ~ Open source password manager for teams
 */
use Cake\Cache\Engine\FileEngine;
# a hash comment
return [
    'debug' => filter_var(env('DEBUG', false), FILTER_VALIDATE_BOOLEAN),
    'App' => [
        'fullBaseUrl' => 'https://passbolt.example.com', // a line comment
        'paths' => ['plugins' => [ROOT . DS . 'plugins' . DS]],
    ],
    'Error' => ['errorLevel' => E_ALL & ~E_USER_DEPRECATED],
    'Cache' => ['default' => ['className' => FileEngine::class, 'url' => env('CACHE_URL', null)]],
    'Datasources' => array(
        'default' => array(
            'host' => env('DATASOURCES_DEFAULT_HOST', 'localhost'),
            'port' => (int) "3306",
            'username' => 'passbolt',
            'password' => 'it\'s "quoted"',
            'database' => "pass\tbolt\x21",
        ),
    ),
    'passbolt' => [
        'gpg' => [
            'serverKey' => [
                'fingerprint' => '2FC8945833C51946E937F9FED47B0811573EE67E',
                'public' => CONFIG . 'gpg' . DS . 'serverkey.asc',
                'private' => __DIR__ . '/gpg/serverkey_private.asc',
            ],
        ],
    ],
    'list' => ['a', 'b',],
    'numbers' => [-1.5, 0x1F, 1_000],
    'fallback' => env('NOT_SET') ?? 'default',
    'choice' => env('FLAG', false) ? 'on' : 'off',
    'short' => '' ?: 'short ternary',
];
"""


def test_reads_a_package_passbolt_php_with_environment_and_constants() -> None:
    result = parse_php(
        PASSBOLT_PHP,
        path="/etc/passbolt/passbolt.php",
        constants=PACKAGE_CONSTANTS,
        environment={"DEBUG": "true", "DATASOURCES_DEFAULT_HOST": "db.internal", "FLAG": "1"},
    )
    config = result.returned
    assert result.has_return
    assert config["debug"] is True
    assert read_dotted(config, "Datasources.default") == {
        "host": "db.internal",
        "port": 3306,
        "username": "passbolt",
        "password": 'it\'s "quoted"',
        "database": "pass\tbolt!",
    }
    assert read_dotted(config, "passbolt.gpg.serverKey.public") == "/etc/passbolt/gpg/serverkey.asc"
    assert read_dotted(config, "passbolt.gpg.serverKey.private") == "/etc/passbolt/gpg/serverkey_private.asc"
    assert read_dotted(config, "App.paths.plugins") == ["/usr/share/php/passbolt/plugins/"]
    assert config["Error"]["errorLevel"] == 32767 & ~16384
    assert config["Cache"]["default"] == {"className": "FileEngine", "url": None}
    assert config["list"] == ["a", "b"]
    assert config["numbers"] == [-1.5, 31, 1000]
    assert config["fallback"] == "default"
    assert config["choice"] == "on"
    assert config["short"] == "short ternary"


def test_environment_defaults_apply_when_variables_are_absent() -> None:
    config = parse_php(PASSBOLT_PHP, path="/etc/passbolt/passbolt.php", constants=PACKAGE_CONSTANTS).returned
    assert config["debug"] is False
    assert config["Datasources"]["default"]["host"] == "localhost"
    assert config["choice"] == "off"


def test_cakephp_env_words_become_php_values() -> None:
    text = "<?php return ['a' => env('A'), 'b' => env('B', 'x'), 'c' => env('C', 'x')];"
    config = parse_php(text, environment={"A": "false", "B": "(null)", "C": "empty"}).returned
    assert config == {"a": False, "b": None, "c": ""}


def test_reads_v1_database_config_class_and_configure_calls() -> None:
    text = """<?php
class DATABASE_CONFIG {
\tpublic $default = array(
\t\t'datasource' => 'Database/Mysql',
\t\t'persistent' => false,
\t\t'host' => 'localhost',
\t\t'login' => 'passbolt',
\t\t'password' => 'secret',
\t\t'database' => 'passbolt',
\t);
\tpublic $test = array();
}
Configure::write('App.fullBaseUrl', 'http://v1.example.com');
$config['GPG']['serverKey']['public'] = APP . 'Config' . DS . 'gpg' . DS . 'server.key';
define('ANSWER', 6 * 7);
?>
<p>text after the closing tag is not PHP</p>
"""
    result = parse_php(text, constants={"APP": "/var/www/passbolt/app/", "DS": "/"})
    assert result.classes["DATABASE_CONFIG"]["default"]["login"] == "passbolt"
    assert result.classes["DATABASE_CONFIG"]["test"] == []
    assert result.configure == {"App": {"fullBaseUrl": "http://v1.example.com"}}
    assert result.variables["config"]["GPG"]["serverKey"]["public"] == "/var/www/passbolt/app/Config/gpg/server.key"
    assert result.constants == {"ANSWER": 42}
    assert not result.has_return


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("<?php\nreturn [\n  'a' => shell_exec('id'),\n];", 3, 10, "shell_exec() is not understood"),
        ("<?php\nreturn [\n  'a' => 1\n  'b' => 2];", 4, 3, "expected ',' or ']'"),
        ("<?php\nreturn [\n 'a' => 1,\n", 2, 8, "never closed"),
        ("<?php\nreturn ['a' => 'x];", 2, 16, "string is never closed"),
        ("<?php\nreturn ['a' => $undefined];", 2, 16, "$undefined is used before it is set"),
        ("<?php\n$config = [\n 'a' => SOME_CONSTANT,\n];", 3, 9, "SOME_CONSTANT has no known value"),
        ("<?php\nreturn [\"a\" => \"$name\"];", 2, 17, "variables inside double-quoted strings"),
        ("return ['a' => 1];", 1, 1, "no '<?php' opening tag"),
        ("<?php\n/* open comment\nreturn [];", 2, 1, "never closed"),
        ("<?php\nif ($x) { $y = 1; }", 2, 1, "statement 'if' is not understood"),
    ],
)
def test_anything_not_understood_names_file_line_and_column(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(SourceError) as raised:
        parse_php(text, path="/etc/passbolt/passbolt.php")
    message = raised.value.message
    assert message.startswith(f"cannot read /etc/passbolt/passbolt.php: line {line}, column {column}:"), message
    assert words in message
    assert raised.value.hint


def test_read_php_file_reports_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        read_php_file(tmp_path / "absent.php")
    with pytest.raises(SourceError, match="is a directory"):
        read_php_file(tmp_path)
    good = tmp_path / "version.php"
    good.write_text("<?php\nreturn ['passbolt' => ['version' => '5.12.0', 'edition' => 'ce']];\n")
    assert read_php_file(good, shown_as="/usr/share/php/passbolt/config/version.php").returned["passbolt"] == {
        "version": "5.12.0",
        "edition": "ce",
    }
