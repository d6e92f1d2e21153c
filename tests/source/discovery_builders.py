"""Small passbolt instances on disk for the discovery tests: every layout, real keys, chosen breakage."""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pysequoia
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def server_key(name: str = "server", validity_seconds: int | None = None) -> tuple[str, str, str]:
    """(fingerprint, armored public, armored private) of a fresh RFC 4880 key, cached per name."""
    return _server_key(name, validity_seconds)


@functools.lru_cache(maxsize=None)
def _server_key(name: str, validity_seconds: int | None) -> tuple[str, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tsk = pysequoia.Tsk.generate(
            f"Passbolt {name} <{name}@passbolt.test>", profile=pysequoia.Profile.RFC4880, validity_seconds=validity_seconds
        )
        cert = tsk.extract_certificate()
        private = str(tsk)
        public_cert = pysequoia.Cert.from_bytes(bytes(cert)) if hasattr(cert, "__bytes__") else cert
        fingerprint = str(public_cert.fingerprint).upper()
        # Strip the secret material: only the public packets go to serverkey.asc.
        public = _public_armor(private)
    return fingerprint, public, private


def _public_armor(private_armor: str) -> str:
    """The public certificate of an armored secret key, through gpg-free sequoia calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cert = pysequoia.Cert.from_bytes(private_armor.encode())
        # str(Cert) of a cert with secrets armors only its public parts.
        return str(cert)


@functools.lru_cache(maxsize=None)
def jwt_pair(name: str = "jwt") -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of an RSA 2048 key pair, cached per name."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@dataclass
class Database:
    """Connection settings written into the instance's configuration."""

    engine: str = "mysql"
    host: str = "127.0.0.1"
    port: int = 3306
    socket: str | None = None
    name: str = "passbolt"
    user: str = "passbolt"
    password: str = "not-the-real-one"


def _write(path: Path, content: str | bytes, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def _datasource_php(database: Database, *, v1: bool = False) -> str:
    driver = "Cake\\\\Database\\\\Driver\\\\Postgres" if database.engine == "postgresql" else "Cake\\\\Database\\\\Driver\\\\Mysql"
    host = database.socket or database.host
    if v1:
        source = "Database/Postgres" if database.engine == "postgresql" else "Database/Mysql"
        return (
            f"\t\t'datasource' => '{source}',\n\t\t'persistent' => false,\n\t\t'host' => '{host}',\n"
            f"\t\t'port' => '{database.port}',\n\t\t'login' => '{database.user}',\n"
            f"\t\t'password' => '{database.password}',\n\t\t'database' => '{database.name}',\n\t\t'prefix' => '',\n"
        )
    return (
        f"            'driver' => '{driver}',\n"
        f"            'host' => '{host}',\n"
        f"            'port' => '{database.port}',\n"
        f"            'username' => '{database.user}',\n"
        f"            'password' => '{database.password}',\n"
        f"            'database' => '{database.name}',\n"
    )


def passbolt_php(database: Database, fingerprint: str) -> str:
    """A passbolt.php as the Debian package's installer writes it."""
    return f"""<?php
/**
 * Passbolt ~ Open source password manager for teams
 */
return [
    'App' => [
        'fullBaseUrl' => 'https://passbolt.test',
    ],
    // Database configuration.
    'Datasources' => [
        'default' => [
{_datasource_php(database)}        ],
    ],
    'passbolt' => [
        'gpg' => [
            'serverKey' => [
                'fingerprint' => '{fingerprint}',
                'public' => CONFIG . 'gpg' . DS . 'serverkey.asc',
                'private' => CONFIG . 'gpg' . DS . 'serverkey_private.asc',
            ],
        ],
        'ssl' => ['force' => filter_var(env('PASSBOLT_SSL_FORCE', true), FILTER_VALIDATE_BOOLEAN)],
    ],
];
"""


APP_PHP = """<?php
use Cake\\Cache\\Engine\\FileEngine;
return [
    'debug' => filter_var(env('DEBUG', false), FILTER_VALIDATE_BOOLEAN),
    'App' => ['namespace' => 'App', 'paths' => ['plugins' => [ROOT . DS . 'plugins' . DS]]],
    'Security' => ['salt' => env('SECURITY_SALT', 'a-salt-that-is-long-enough-to-be-masked')],
    'Cache' => ['default' => ['className' => FileEngine::class, 'path' => CACHE]],
    'Error' => ['errorLevel' => E_ALL & ~E_USER_DEPRECATED],
    'Datasources' => [
        'default' => [
            'host' => env('DATASOURCES_DEFAULT_HOST', 'localhost'),
            'username' => env('DATASOURCES_DEFAULT_USERNAME', ''),
            'password' => env('DATASOURCES_DEFAULT_PASSWORD', ''),
            'database' => env('DATASOURCES_DEFAULT_DATABASE', ''),
            'url' => env('DATASOURCES_DEFAULT_URL', null),
        ],
    ],
];
"""


def version_php(version: str) -> str:
    """config/version.php of passbolt ``version``."""
    return f"<?php\nreturn [\n    'passbolt' => [\n        'version' => '{version}',\n        'name' => 'Strongroom',\n        'edition' => 'ce',\n    ],\n    'php' => ['minVersion' => '8.2'],\n];\n"


def build_package(
    root: Path,
    database: Database,
    *,
    layout: str = "debian",
    version: str = "5.12.0",
    key_name: str = "server",
) -> dict[str, Path]:
    """A Debian (or RPM with ``layout='rpm'``) package install under ``root``; returns paths by role."""
    os_release = 'ID=debian\nVERSION_ID="12"\n' if layout == "debian" else 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'
    _write(root / "etc/os-release", os_release, 0o644)
    return _build_v2(root, database, config_dir=root / "etc/passbolt", install_dir=root / "usr/share/php/passbolt",
                     version=version, key_name=key_name)


def build_source(root: Path, database: Database, *, version: str = "4.10.1") -> dict[str, Path]:
    """A source install in /var/www/passbolt under ``root``."""
    install = root / "var/www/passbolt"
    return _build_v2(root, database, config_dir=install / "config", install_dir=install, version=version)


def _build_v2(root: Path, database: Database, *, config_dir: Path, install_dir: Path, version: str,
              key_name: str = "server") -> dict[str, Path]:
    fingerprint, public, private = server_key(key_name)
    jwt_private, jwt_public = jwt_pair()
    paths = {
        "passbolt-config": _write(config_dir / "passbolt.php", passbolt_php(database, fingerprint), 0o440),
        "app-config": _write(config_dir / "app.php", APP_PHP, 0o640),
        "server-key-public": _write(config_dir / "gpg/serverkey.asc", public, 0o440),
        "server-key-private": _write(config_dir / "gpg/serverkey_private.asc", private, 0o440),
        "jwt-private": _write(config_dir / "jwt/jwt.key", jwt_private, 0o640),
        "jwt-public": _write(config_dir / "jwt/jwt.pem", jwt_public, 0o640),
        "version": _write(install_dir / "config/version.php", version_php(version), 0o644),
    }
    os.chmod(config_dir / "jwt", 0o750)
    os.chmod(config_dir / "gpg", 0o770)
    return paths


def build_v1(root: Path, database: Database, *, version: str = "1.6.10") -> dict[str, Path]:
    """A passbolt v1 install (CakePHP 2, app/Config) under ``root``, with avatar files."""
    fingerprint, public, private = server_key()
    config = root / "var/www/passbolt/app/Config"
    app_php = f"""<?php
$config = [
    'App' => ['version' => ['number' => '{version}']],
    'GPG' => [
        'env' => ['setenv' => true, 'home' => '/var/www/.gnupg'],
        'serverKey' => [
            'fingerprint' => '{fingerprint}',
            'public' => APP . 'Config' . DS . 'gpg' . DS . 'serverkey.asc',
            'private' => APP . 'Config' . DS . 'gpg' . DS . 'serverkey_private.asc',
        ],
    ],
];
"""
    database_php = f"<?php\nclass DATABASE_CONFIG {{\n\tpublic $default = array(\n{_datasource_php(database, v1=True)}\t);\n}}\n"
    avatar = root / "var/www/passbolt/app/webroot/img/public/Avatar/ab/cd/avatar.png"
    return {
        "passbolt-config": _write(config / "app.php", app_php, 0o440),
        "app-config": _write(config / "core.php", "<?php\nConfigure::write('debug', 0);\nConfigure::write('Security.salt', 'v1-salt-value');\n", 0o440),
        "database-config": _write(config / "database.php", database_php, 0o440),
        "server-key-public": _write(config / "gpg/serverkey.asc", public, 0o440),
        "server-key-private": _write(config / "gpg/serverkey_private.asc", private, 0o440),
        "avatar": _write(avatar, b"\x89PNG fake", 0o644),
    }


def build_docker(root: Path, database: Database, *, project: str = "passbolt", version: str = "5.12.0") -> dict[str, Path]:
    """A Docker compose deployment: compose file, env file, gpg and jwt named volumes under ``root``."""
    fingerprint, public, private = server_key()
    jwt_private, jwt_public = jwt_pair()
    compose_dir = root / "opt/passbolt"
    volumes = root / "var/lib/docker/volumes"
    db_image = "postgres:16" if database.engine == "postgresql" else "mariadb:10.11"
    db_environment = (
        f"      POSTGRES_DB: {database.name}\n      POSTGRES_USER: {database.user}\n      POSTGRES_PASSWORD: ${{DB_PASSWORD}}\n"
        if database.engine == "postgresql"
        else f"      MYSQL_RANDOM_ROOT_PASSWORD: \"true\"\n      MYSQL_DATABASE: {database.name}\n"
        f"      MYSQL_USER: {database.user}\n      MYSQL_PASSWORD: ${{DB_PASSWORD}}\n"
    )
    compose = f"""services:
  db:
    image: {db_image}
    restart: unless-stopped
    environment:
{db_environment}    volumes:
      - database_volume:/var/lib/mysql
  passbolt:
    image: passbolt/passbolt:{version}-1-ce
    restart: unless-stopped
    depends_on: [db]
    env_file:
      - env/passbolt.env
    environment:
      DATASOURCES_DEFAULT_PASSWORD: ${{DB_PASSWORD}}
      PASSBOLT_GPG_SERVER_KEY_FINGERPRINT: {fingerprint}
    volumes:
      - gpg_volume:/etc/passbolt/gpg
      - jwt_volume:/etc/passbolt/jwt
    command: ["/usr/bin/wait-for.sh", "-t", "0", "db:3306", "--", "/docker-entrypoint.sh"]
    ports:
      - 443:443
volumes:
  database_volume:
  gpg_volume:
  jwt_volume:
"""
    engine_driver = "Cake\\Database\\Driver\\Postgres" if database.engine == "postgresql" else "Cake\\Database\\Driver\\Mysql"
    env_file = (
        "# passbolt's environment\n"
        "APP_FULL_BASE_URL=https://passbolt.test\n"
        f"DATASOURCES_DEFAULT_DRIVER={engine_driver}\n"
        f"DATASOURCES_DEFAULT_HOST={database.socket or database.host}\n"
        f"DATASOURCES_DEFAULT_PORT={database.port}\n"
        f"DATASOURCES_DEFAULT_USERNAME={database.user}\n"
        f"DATASOURCES_DEFAULT_DATABASE={database.name}\n"
    )
    gpg = volumes / f"{project}_gpg_volume/_data"
    jwt = volumes / f"{project}_jwt_volume/_data"
    paths = {
        "docker-compose": _write(compose_dir / "docker-compose.yaml", compose, 0o640),
        "docker-env": _write(compose_dir / "env/passbolt.env", env_file, 0o640),
        "dotenv": _write(compose_dir / ".env", f"COMPOSE_PROJECT_NAME={project}\nDB_PASSWORD={database.password}\n", 0o600),
        "server-key-public": _write(gpg / "serverkey.asc", public, 0o440),
        "server-key-private": _write(gpg / "serverkey_private.asc", private, 0o440),
        "jwt-private": _write(jwt / "jwt.key", jwt_private, 0o640),
        "jwt-public": _write(jwt / "jwt.pem", jwt_public, 0o640),
    }
    os.chmod(jwt, 0o750)
    return paths
