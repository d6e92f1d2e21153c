"""The files of a sandbox passbolt instance, in one of five install layouts (``passbolt.md`` §2).

This docstring is the reference for what a sandbox puts where. ``<root>`` is the
directory given as ``--root``: every path below is the real path with ``<root>``
in front, and every path *inside* a configuration file is the real one (without
``<root>``), as on the machine the instance would run on.

debian and rpm (package installs; the web user is ``www-data`` on debian, ``nginx`` on rpm)::

    <root>/etc/passbolt/                         root:<wg>    0770
    <root>/etc/passbolt/passbolt.php             <web>:<web>  0440  datasource, fullBaseUrl, email, serverKey
    <root>/etc/passbolt/app.php                  root:<wg>    0640  Security.salt, App.*
    <root>/etc/passbolt/subscription_key.txt     root:<wg>    0640
    <root>/etc/passbolt/gpg/                     root:<wg>    0770
    <root>/etc/passbolt/gpg/serverkey.asc        <web>:<web>  0440
    <root>/etc/passbolt/gpg/serverkey_private.asc <web>:<web> 0440
    <root>/etc/passbolt/jwt/                     root:<wg>    0750
    <root>/etc/passbolt/jwt/jwt.key, jwt.pem     root:<wg>    0640
    <root>/usr/share/php/passbolt/config/version.php  root:root 0644
    <root>/var/lib/passbolt/.gnupg/              <web>:<web>  0700  (the keyring directory, empty)
    <root>/var/log/passbolt/                     <web>:<wg>   0750

source (a clone under /var/www/passbolt; config files as in the table, the rest <web>:<web>)::

    <root>/var/www/passbolt/config/{passbolt.php, app.php, version.php, subscription_key.txt}
    <root>/var/www/passbolt/config/gpg/serverkey{,_private}.asc
    <root>/var/www/passbolt/config/jwt/jwt.{key,pem}
    <root>/var/www/.gnupg/                       (the web user's keyring, 0700)

docker (the official compose file; project name ``passbolt``, from its directory)::

    <root>/opt/passbolt/docker-compose.yaml      root:root    0640  services db and passbolt, env_file entries
    <root>/opt/passbolt/env/passbolt.env         root:root    0600  DATASOURCES_DEFAULT_*, PASSBOLT_GPG_SERVER_KEY_FINGERPRINT, APP_FULL_BASE_URL, ...
    <root>/opt/passbolt/env/mysql.env            root:root    0600  MYSQL_* (MariaDB/MySQL) -- or postgres.env with POSTGRES_*
    <root>/opt/passbolt/subscription_key.txt     root:root    0640  bind-mounted to /etc/passbolt/subscription_key.txt
    <root>/var/lib/docker/volumes/passbolt_gpg_volume/_data/       (= /etc/passbolt/gpg in the container)
    <root>/var/lib/docker/volumes/passbolt_gpg_volume/_data/serverkey{,_private}.asc
    <root>/var/lib/docker/volumes/passbolt_jwt_volume/_data/       (= /etc/passbolt/jwt in the container)
    <root>/var/lib/docker/volumes/passbolt_jwt_volume/_data/jwt.{key,pem}

  The volume data directories and key files have the owners and modes of ``gpg/``
  and ``jwt/`` above, with the image's numeric ``www-data`` (uid and gid 33).

v1 (passbolt 1.x, CakePHP 2, the layout of the original backup guide)::

    <root>/var/www/passbolt/app/Config/{app.php, core.php, database.php, email.php}  <web>:<web> 0440
    <root>/var/www/passbolt/app/Config/gpg/serverkey{,_private}.asc                 <web>:<web> 0440
    <root>/var/www/passbolt/app/webroot/img/public/Avatar/<aa>/<bb>/<id>/<name>.png <web>:<web> 0755 dirs, 0644 files

  v1 has no JWT keys and no passbolt.php; ``database.php`` holds class ``DATABASE_CONFIG``.

When the web user does not exist on this machine, its usual numeric ids are used
(www-data 33:33, nginx 998:998) and a warning says so; when not running as root,
owners are left as they are and a warning says so. Modes are always applied.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pysequoia
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import UsageError
from strongroom.passbolt.installation import DOCKER_WEB_IDS, FALLBACK_IDS, WEB_USER
from strongroom.passbolt.schema_512 import PASSBOLT_VERSION
from strongroom.sandbox import content, openpgp
from strongroom.sandbox.generate import Instance

LAYOUTS = ("debian", "rpm", "docker", "source", "v1")
DOCKER_PROJECT = "passbolt"
JWT_BITS = 2048


@dataclass(frozen=True)
class FileEntry:
    """One path the sandbox wrote: ``path`` under the root, ``real_path`` as passbolt sees it."""

    path: str
    real_path: str
    owner: int
    group: int
    mode: int
    kind: str  # "file" or "directory"
    role: str  # what it is: passbolt_config, server_public_key, jwt_private_key, avatar, ...


@dataclass
class LayoutResult:
    """What writing a layout produced: the entries (in writing order) and warnings."""

    layout: str
    web_user: str
    files: list[FileEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    jwt_public_pem: str = ""


def _web_ids(layout: str, warnings: list[str]) -> tuple[int, int]:
    if layout == "docker":
        return DOCKER_WEB_IDS
    name = WEB_USER[layout]
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        uid, gid = FALLBACK_IDS[name]
        warnings.append(f"the web user {name!r} does not exist here: numeric ids {uid}:{gid} are used instead")
        return uid, gid
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        gid = entry.pw_gid
    return entry.pw_uid, gid


def _php_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


HEADER = """<?php
/**
 * Passbolt ~ Open source password manager for teams
 * Copyright (c) Passbolt SA (https://www.passbolt.com)
 *
 * Licensed under GNU Affero General Public License version 3 of the or any later version.
 * For full copyright and license information, please see the LICENSE.txt
 * Redistributions of files must retain the above copyright notice.
 *
 * @copyright     Copyright (c) Passbolt SA (https://www.passbolt.com)
 * @license       https://opensource.org/licenses/AGPL-3.0 AGPL License
 * @link          https://www.passbolt.com Passbolt(tm)
 * @since         2.0.0
 */
"""


def _datasource_php(target: DatabaseTarget, indent: str) -> str:
    lines = [
        f"{indent}'host' => env('DATASOURCES_DEFAULT_HOST', {_php_string(target.host)}),",
        f"{indent}'port' => env('DATASOURCES_DEFAULT_PORT', {_php_string(str(target.effective_port))}),",
        f"{indent}'username' => env('DATASOURCES_DEFAULT_USERNAME', {_php_string(target.user or '')}),",
        f"{indent}'password' => env('DATASOURCES_DEFAULT_PASSWORD', {_php_string(target.password or '')}),",
        f"{indent}'database' => env('DATASOURCES_DEFAULT_DATABASE', {_php_string(target.database or '')}),",
    ]
    if target.socket and target.engine != "postgresql":
        lines.insert(2, f"{indent}'unix_socket' => {_php_string(target.socket)},")
    if target.engine == "postgresql":
        lines.insert(0, f"{indent}'driver' => env('DATASOURCES_DEFAULT_DRIVER', 'Cake\\Database\\Driver\\Postgres'),")
        lines.append(f"{indent}'schema' => env('DATASOURCES_DEFAULT_SCHEMA', {_php_string(target.schema or 'public')}),")
    return "\n".join(lines)


def passbolt_php(instance: Instance, target: DatabaseTarget, gpg_dir: str) -> str:
    """Return a passbolt.php in the shape of passbolt's passbolt.default.php."""
    smtp = instance.smtp_settings
    return (
        HEADER
        + f"""return [
    /**
     * DEFAULT APP CONFIGURATION
     *
     * All the information in this section must be provided in order for passbolt to work
     * This configuration overrides the CakePHP defaults locating in app.php
     * Do not modify this file directly, use passbolt.php for your own settings.
     */
    'App' => [
        // A base URL to use for absolute links.
        // The url where the passbolt instance will be reachable to your end users.
        // This information is need to render images in emails for example
        'fullBaseUrl' => env('APP_FULL_BASE_URL', {_php_string(instance.base_url)}),
    ],

    // Database configuration.
    'Datasources' => [
        'default' => [
{_datasource_php(target, "            ")}
        ],
    ],

    // Email configuration.
    'EmailTransport' => [
        'default' => [
            'host' => env('EMAIL_TRANSPORT_DEFAULT_HOST', {_php_string(str(smtp["host"]))}),
            'port' => env('EMAIL_TRANSPORT_DEFAULT_PORT', {smtp["port"]}),
            'username' => env('EMAIL_TRANSPORT_DEFAULT_USERNAME', null),
            'password' => env('EMAIL_TRANSPORT_DEFAULT_PASSWORD', null),
            // Is this a secure connection? true if yes, null if no.
            'tls' => env('EMAIL_TRANSPORT_DEFAULT_TLS', true),
        ],
    ],
    'Email' => [
        'default' => [
            // Defines the default name and email of the sender of the emails.
            'from' => [env('EMAIL_DEFAULT_FROM', {_php_string(str(smtp["sender_email"]))}) => env('EMAIL_DEFAULT_FROM_NAME', 'Passbolt')],
        ],
    ],

    /**
     * DEFAULT PASSBOLT CONFIGURATION
     *
     * This is the default configuration.
     * It enforces the use of ssl, and does not provide a default OpenPGP key.
     * If your objective is to try passbolt quickly for evaluation purpose, and security is not important
     * you can use the demo config example provided in the next section below.
     */
    'passbolt' => [
        // GPG Configuration.
        // The keyring must to be owned and accessible by the webserver user.
        // Example: www-data user on Debian
        'gpg' => [
            // Main server key.
            'serverKey' => [
                // Server private key fingerprint.
                'fingerprint' => env('PASSBOLT_GPG_SERVER_KEY_FINGERPRINT', {_php_string(instance.server_key.fingerprint)}),
                'public' => env('PASSBOLT_GPG_SERVER_KEY_PUBLIC', {_php_string(gpg_dir + "/serverkey.asc")}),
                'private' => env('PASSBOLT_GPG_SERVER_KEY_PRIVATE', {_php_string(gpg_dir + "/serverkey_private.asc")}),
            ],
        ],
    ],
];
"""
    )


def app_php(salt: str, debug: bool = False) -> str:
    """Return a short app.php carrying ``Security.salt`` (the rest is CakePHP's defaults)."""
    return (
        HEADER
        + f"""
return [
    /*
     * Debug Level:
     *
     * Production Mode:
     * false: No error messages, errors, or warnings shown.
     */
    'debug' => filter_var(env('DEBUG', {'true' if debug else 'false'}), FILTER_VALIDATE_BOOLEAN),

    /*
     * Configure basic information about the application.
     */
    'App' => [
        'namespace' => 'App',
        'encoding' => env('APP_ENCODING', 'UTF-8'),
        'defaultLocale' => env('APP_DEFAULT_LOCALE', 'en_UK'),
        'defaultTimezone' => env('APP_DEFAULT_TIMEZONE', 'UTC'),
        'base' => false,
        'dir' => 'src',
        'webroot' => 'webroot',
        'wwwRoot' => WWW_ROOT,
        'fullBaseUrl' => false,
        'imageBaseUrl' => 'img/',
        'cssBaseUrl' => 'css/',
        'jsBaseUrl' => 'js/',
        'paths' => [
            'plugins' => [ROOT . DS . 'plugins' . DS],
            'templates' => [ROOT . DS . 'templates' . DS],
            'locales' => [RESOURCES . 'locales' . DS],
        ],
    ],

    /*
     * Security and encryption configuration
     *
     * - salt - A random string used in security hashing methods.
     *   The salt value is also used as the encryption key.
     *   You should treat it as extremely sensitive data.
     */
    'Security' => [
        'salt' => env('SECURITY_SALT', {_php_string(salt)}),
    ],
];
"""
    )


def version_php() -> str:
    """Return config/version.php for passbolt 5.12 CE."""
    return (
        HEADER
        + f"""return [
    'passbolt' => [
        'version' => '{PASSBOLT_VERSION}',
        'name' => 'Ready for take-off',
        'edition' => 'ce',
    ],
    'php' => [
        'minVersion' => '8.2',
    ],
];
"""
    )


def subscription_key(instance: Instance) -> str:
    """Return a subscription key file: base64 of a signed licence document (as passbolt Pro's)."""
    rng = random.Random(instance.seed ^ 0x51B)
    licence = json.dumps(
        {
            "customer_id": content.make_uuid(rng),
            "subscription_id": content.make_uuid(rng),
            "users": max(25, len(instance.users) + 10),
            "email": f"admin@{instance.domain}",
            "created": instance.installed.strftime("%Y-%m-%d"),
            "expiry": (instance.installed.replace(year=instance.installed.year + 5)).strftime("%Y-%m-%d"),
        }
    )
    issuer = openpgp.generate_key_pair("Passbolt Licensing (sandbox) <licensing@example.invalid>", "")
    signer = pysequoia.Tsk.from_bytes(issuer.private_armored.encode("ascii")).signer()
    signed = pysequoia.sign(signer, licence.encode("utf-8"))
    encoded = base64.b64encode(signed).decode("ascii")
    return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + "\n"


def jwt_key_pair() -> tuple[str, str]:
    """Return a JWT RSA key pair as PEM text: (private key, public key)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=JWT_BITS)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return private_pem, public_pem


def _docker_files(instance: Instance, target: DatabaseTarget, salt: str) -> dict[str, str]:
    mysql = target.engine != "postgresql"
    database_service = "db"
    passbolt_env = {
        "APP_FULL_BASE_URL": instance.base_url,
        "DATASOURCES_DEFAULT_HOST": database_service,
        "DATASOURCES_DEFAULT_PORT": "3306" if mysql else "5432",
        "DATASOURCES_DEFAULT_USERNAME": target.user or "passbolt",
        "DATASOURCES_DEFAULT_PASSWORD": target.password or "",
        "DATASOURCES_DEFAULT_DATABASE": target.database or "passbolt",
        "PASSBOLT_GPG_SERVER_KEY_FINGERPRINT": instance.server_key.fingerprint,
        "PASSBOLT_KEY_EMAIL": f"admin@{instance.domain}",
        "EMAIL_DEFAULT_FROM": f"passbolt@{instance.domain}",
        "EMAIL_TRANSPORT_DEFAULT_HOST": f"smtp.{instance.domain}",
        "EMAIL_TRANSPORT_DEFAULT_PORT": "587",
        "EMAIL_TRANSPORT_DEFAULT_TLS": "true",
        "SECURITY_SALT": salt,
    }
    if not mysql:
        passbolt_env["DATASOURCES_DEFAULT_DRIVER"] = "Cake\\Database\\Driver\\Postgres"
    if mysql:
        db_env = {
            "MYSQL_RANDOM_ROOT_PASSWORD": "true",
            "MYSQL_DATABASE": target.database or "passbolt",
            "MYSQL_USER": target.user or "passbolt",
            "MYSQL_PASSWORD": target.password or "",
        }
        db_env_name, image, data_volume, data_path = "mysql.env", "mariadb:10.11", "database_volume", "/var/lib/mysql"
    else:
        db_env = {
            "POSTGRES_DB": target.database or "passbolt",
            "POSTGRES_USER": target.user or "passbolt",
            "POSTGRES_PASSWORD": target.password or "",
        }
        db_env_name, image, data_volume, data_path = "postgres.env", "postgres:15", "database_volume", "/var/lib/postgresql/data"

    def env_text(values: dict[str, str]) -> str:
        return "".join(f"{name}={value}\n" for name, value in values.items())

    compose = f"""services:
  db:
    image: {image}
    restart: unless-stopped
    env_file:
      - env/{db_env_name}
    volumes:
      - {data_volume}:{data_path}

  passbolt:
    image: passbolt/passbolt:{PASSBOLT_VERSION}-1-ce
    # Alternatively you can use rootless:
    # image: passbolt/passbolt:latest-ce-non-root
    restart: unless-stopped
    depends_on:
      - db
    env_file:
      - env/passbolt.env
    volumes:
      - gpg_volume:/etc/passbolt/gpg
      - jwt_volume:/etc/passbolt/jwt
      - ./subscription_key.txt:/etc/passbolt/subscription_key.txt:ro
    command:
      [
        "/usr/bin/wait-for.sh",
        "-t",
        "0",
        "db:{'3306' if mysql else '5432'}",
        "--",
        "/docker-entrypoint.sh",
      ]
    ports:
      - 80:80
      - 443:443

volumes:
  {data_volume}:
  gpg_volume:
  jwt_volume:
"""
    return {
        "docker-compose.yaml": compose,
        "env/passbolt.env": env_text(passbolt_env),
        f"env/{db_env_name}": env_text(db_env),
    }


def _v1_files(instance: Instance, target: DatabaseTarget, salt: str) -> dict[str, str]:
    smtp = instance.smtp_settings
    datasource = "Database/Postgres" if target.engine == "postgresql" else "Database/Mysql"
    database = f"""<?php
class DATABASE_CONFIG {{

	public $default = array(
		'datasource' => '{datasource}',
		'persistent' => false,
		'host' => {_php_string(target.host)},
		'port' => {_php_string(str(target.effective_port))},
		'login' => {_php_string(target.user or '')},
		'password' => {_php_string(target.password or '')},
		'database' => {_php_string(target.database or '')},
		'prefix' => '',
		'encoding' => 'utf8mb4',
	);
}}
"""
    gpg_dir = "/var/www/passbolt/app/Config/gpg"
    app = f"""<?php
/**
 * Passbolt application configuration.
 */
$config = array(
	'App' => array(
		'version' => array(
			'number' => '1.6.10',
		),
		'ssl' => array(
			'force' => true,
		),
		'registration' => array(
			'public' => false,
		),
	),
	'GPG' => array(
		'env' => array(
			'setenv' => true,
			'home' => '/var/www/.gnupg',
		),
		'serverKey' => array(
			'fingerprint' => '{instance.server_key.fingerprint}',
			'public' => '{gpg_dir}/serverkey.asc',
			'private' => '{gpg_dir}/serverkey_private.asc',
		),
	),
);
"""
    core = f"""<?php
/**
 * CakePHP core configuration (passbolt 1.x).
 */
	Configure::write('debug', 0);
	Configure::write('App.fullBaseUrl', {_php_string(instance.base_url)});
	Configure::write('Security.salt', {_php_string(salt[:40])});
	Configure::write('Security.cipherSeed', {_php_string(str(int(salt[:16], 16))[:29])});
	Configure::write('Session', array(
		'defaults' => 'php'
	));
"""
    email = f"""<?php
class EmailConfig {{

	public $default = array(
		'transport' => 'Smtp',
		'from' => array({_php_string(str(smtp["sender_email"]))} => 'Passbolt'),
		'host' => {_php_string(str(smtp["host"]))},
		'port' => {smtp["port"]},
		'timeout' => 30,
		'username' => {_php_string(str(smtp["username"]))},
		'password' => {_php_string(str(smtp["password"]))},
		'client' => null,
		'tls' => true,
	);
}}
"""
    return {"app.php": app, "core.php": core, "database.php": database, "email.php": email}


class _Writer:
    """Writes files under the root and remembers owners and modes, applied at the end."""

    def __init__(self, root: Path, result: LayoutResult, chown: bool) -> None:
        self.root = root
        self.result = result
        self.chown = chown
        self.pending: list[tuple[Path, FileEntry]] = []

    def _path(self, real: str) -> Path:
        return self.root / real.lstrip("/")

    def directory(self, real: str, owner: tuple[int, int], mode: int, role: str) -> None:
        path = self._path(real)
        path.mkdir(parents=True, exist_ok=True)
        self._record(path, real, owner, mode, "directory", role)

    def file(self, real: str, data: str | bytes, owner: tuple[int, int], mode: int, role: str) -> None:
        path = self._path(real)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = data.encode("utf-8") if isinstance(data, str) else data
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, payload)
        finally:
            os.close(descriptor)
        self._record(path, real, owner, mode, "file", role)

    def _record(self, path: Path, real: str, owner: tuple[int, int], mode: int, kind: str, role: str) -> None:
        entry = FileEntry(str(path), real, owner[0], owner[1], mode, kind, role)
        self.pending.append((path, entry))
        self.result.files.append(entry)

    def finish(self) -> None:
        """Apply owners and modes, files first, then directories deepest first."""
        ordered = sorted(self.pending, key=lambda item: (item[1].kind == "directory", -len(item[0].parts)))
        for path, entry in ordered:
            if self.chown:
                os.chown(path, entry.owner, entry.group)
            os.chmod(path, entry.mode)


def write_layout(
    root: Path,
    layout: str,
    instance: Instance,
    target: DatabaseTarget,
    *,
    avatars: list[tuple[str, bytes]] | None = None,
) -> LayoutResult:
    """Write the instance's files under ``root`` in ``layout``; return what was written.

    ``target`` is the datasource the configuration names (its password is written into
    the configuration, as passbolt's own files do). ``avatars`` (v1 only) are
    (avatar id, PNG bytes) pairs to store as files. Raises UsageError for an unknown layout.
    """
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint=f"use one of: {', '.join(LAYOUTS)}")
    result = LayoutResult(layout=layout, web_user=WEB_USER[layout])
    chown = os.geteuid() == 0
    if not chown:
        result.warnings.append("not running as root: file owners were left as they are (modes were applied)")
    web = _web_ids(layout, result.warnings)
    root_web_group = (0, web[1])
    root_root = (0, 0)
    writer = _Writer(root, result, chown)
    salt = random.Random(instance.seed ^ 0x5A17).getrandbits(256).to_bytes(32, "big").hex()
    server = instance.server_key
    if layout in ("debian", "rpm", "source"):
        config = "/etc/passbolt" if layout != "source" else "/var/www/passbolt/config"
        if layout == "source":
            writer.directory("/var/www/passbolt", web, 0o755, "install_dir")
        writer.directory(config, root_web_group, 0o770, "config_dir")
        writer.file(f"{config}/passbolt.php", passbolt_php(instance, target, f"{config}/gpg"), web, 0o440, "passbolt_config")
        writer.file(f"{config}/app.php", app_php(salt), root_web_group, 0o640, "app_config")
        writer.file(f"{config}/subscription_key.txt", subscription_key(instance), root_web_group, 0o640, "subscription_key")
        writer.directory(f"{config}/gpg", root_web_group, 0o770, "gpg_dir")
        writer.file(f"{config}/gpg/serverkey.asc", server.public_armored, web, 0o440, "server_public_key")
        writer.file(f"{config}/gpg/serverkey_private.asc", server.private_armored, web, 0o440, "server_private_key")
        jwt_private, jwt_public = jwt_key_pair()
        result.jwt_public_pem = jwt_public
        writer.directory(f"{config}/jwt", root_web_group, 0o750, "jwt_dir")
        writer.file(f"{config}/jwt/jwt.key", jwt_private, root_web_group, 0o640, "jwt_private_key")
        writer.file(f"{config}/jwt/jwt.pem", jwt_public, root_web_group, 0o640, "jwt_public_key")
        if layout == "source":
            writer.file(f"{config}/version.php", version_php(), web, 0o644, "version")
            writer.directory("/var/www/.gnupg", web, 0o700, "keyring")
            writer.directory("/var/www/passbolt/logs", web, 0o750, "logs")
        else:
            writer.directory("/usr/share/php/passbolt/config", root_root, 0o755, "install_config_dir")
            writer.file("/usr/share/php/passbolt/config/version.php", version_php(), root_root, 0o644, "version")
            writer.directory("/var/lib/passbolt/.gnupg", web, 0o700, "keyring")
            writer.directory("/var/log/passbolt", (web[0], web[1]), 0o750, "logs")
    elif layout == "docker":
        for name, text in _docker_files(instance, target, salt).items():
            mode = 0o600 if name.startswith("env/") else 0o640
            if name.startswith("env/"):
                writer.directory("/opt/passbolt/env", root_root, 0o700, "docker_env_dir")
            writer.file(f"/opt/passbolt/{name}", text, root_root, mode, "docker_env" if name.startswith("env/") else "docker_compose")
        writer.file("/opt/passbolt/subscription_key.txt", subscription_key(instance), root_root, 0o640, "subscription_key")
        gpg = f"/var/lib/docker/volumes/{DOCKER_PROJECT}_gpg_volume/_data"
        jwt = f"/var/lib/docker/volumes/{DOCKER_PROJECT}_jwt_volume/_data"
        writer.directory(gpg, root_web_group, 0o770, "gpg_dir")
        writer.file(f"{gpg}/serverkey.asc", server.public_armored, web, 0o440, "server_public_key")
        writer.file(f"{gpg}/serverkey_private.asc", server.private_armored, web, 0o440, "server_private_key")
        jwt_private, jwt_public = jwt_key_pair()
        result.jwt_public_pem = jwt_public
        writer.directory(jwt, root_web_group, 0o750, "jwt_dir")
        writer.file(f"{jwt}/jwt.key", jwt_private, root_web_group, 0o640, "jwt_private_key")
        writer.file(f"{jwt}/jwt.pem", jwt_public, root_web_group, 0o640, "jwt_public_key")
    else:  # v1
        config = "/var/www/passbolt/app/Config"
        writer.directory("/var/www/passbolt", web, 0o755, "install_dir")
        writer.directory(config, web, 0o750, "config_dir")
        roles = {"app.php": "passbolt_config", "core.php": "core_config", "database.php": "database_config", "email.php": "email_config"}
        for name, text in _v1_files(instance, target, salt).items():
            writer.file(f"{config}/{name}", text, web, 0o440, roles[name])
        writer.directory(f"{config}/gpg", web, 0o750, "gpg_dir")
        writer.file(f"{config}/gpg/serverkey.asc", server.public_armored, web, 0o440, "server_public_key")
        writer.file(f"{config}/gpg/serverkey_private.asc", server.private_armored, web, 0o440, "server_private_key")
        public = "/var/www/passbolt/app/webroot/img/public"
        writer.directory(public, web, 0o755, "avatars_dir")
        writer.directory(f"{public}/Avatar", web, 0o755, "avatars_dir")
        for avatar_id, data in avatars or []:
            compact = avatar_id.replace("-", "")
            folder = f"{public}/Avatar/{compact[:2]}/{compact[2:4]}/{compact[4:8]}/{avatar_id}"
            for depth_path in (f"{public}/Avatar/{compact[:2]}", f"{public}/Avatar/{compact[:2]}/{compact[2:4]}",
                               f"{public}/Avatar/{compact[:2]}/{compact[2:4]}/{compact[4:8]}", folder):
                writer.directory(depth_path, web, 0o755, "avatars_dir")
            writer.file(f"{folder}/avatar.png", data, web, 0o644, "avatar")
            writer.file(f"{folder}/avatar.a.png", data, web, 0o644, "avatar")
    writer.finish()
    # A directory recorded twice (shared parents of avatars) keeps one entry.
    seen: set[str] = set()
    unique = []
    for entry in result.files:
        if entry.path not in seen:
            seen.add(entry.path)
            unique.append(entry)
    result.files = unique
    return result


def clear_root(root: Path) -> None:
    """Remove everything under ``root`` (for --replace); the root itself stays."""
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
