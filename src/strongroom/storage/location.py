"""Repository locations as URLs, and the credentials that open them: parsed in one place.

Accepted forms (``docs/storage.md`` documents every option)::

    /var/backups/strongroom                  a local folder (or local:PATH)
    sftp://user@host:2222/srv/strongroom     SFTP; the path is absolute on the server
    s3://bucket/prefix?endpoint=https://...&region=eu-west-1
    rclone:remote:path/in/remote             any rclone remote, configured in rclone

Query options after ``?`` carry settings that are not secret (endpoint, region,
known_hosts file...). Secrets never go into a URL: a URL that holds a password
(``sftp://user:secret@host``) is refused, since URLs end up in logs and configs.

Credentials come from, first match wins per key:

1. the configuration file (``[repository.credentials]`` or a target's ``credentials``);
2. a credentials file (``credentials_file`` in the configuration, or ``credentials=``
   in the URL): TOML ``key = "value"`` lines, refused when group or others can read it;
3. the environment: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
   ``AWS_SESSION_TOKEN`` for S3; ``STRONGROOM_SFTP_PASSWORD`` and
   ``STRONGROOM_SFTP_KEY_PASSPHRASE`` for SFTP.

Every secret found is registered with :func:`strongroom.execute.register_secret`
so it is masked in every log line and error message.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from strongroom.errors import ConfigError, PermanentStorageError
from strongroom.execute import register_secret

CREDENTIAL_KEYS = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "password",
    "key_passphrase",
)
SECRET_KEYS = ("secret_access_key", "session_token", "password", "key_passphrase")

ENVIRONMENT_NAMES = {
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
    "password": "STRONGROOM_SFTP_PASSWORD",
    "key_passphrase": "STRONGROOM_SFTP_KEY_PASSPHRASE",
}


@dataclass(frozen=True)
class Location:
    """A parsed repository location.

    ``scheme`` is ``local``, ``sftp``, ``s3`` or ``rclone``. For local: ``path``.
    For sftp: ``user``, ``host``, ``port``, ``path``. For s3: ``bucket`` (in
    ``host``) and ``path`` (the prefix, without slashes at either end). For rclone:
    ``remote`` (in ``host``, may be empty for a local path) and ``path``.
    ``options`` holds the query options.
    """

    scheme: str
    path: str
    host: str = ""
    user: str = ""
    port: int | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    text: str = ""

    def option(self, name: str, default: str | None = None) -> str | None:
        """The query option ``name``, or ``default``."""
        return self.options.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        """The query option ``name`` read as a yes/no switch.

        Raises PermanentStorageError for a value that is neither.
        """
        value = self.options.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise PermanentStorageError(
            f"the repository location option {name}={value!r} is not a yes/no value",
            hint="use true or false",
        )


def _options(query: str, text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key in options:
            raise PermanentStorageError(f"the repository location {text!r} names the option {key!r} twice")
        options[key] = value
    return options


def parse_location(url: str) -> Location:
    """Parse a repository location (see the module docstring for the forms).

    Returns the Location. Raises PermanentStorageError naming what is wrong with ``url``.
    """
    text = url.strip()
    if not text:
        raise PermanentStorageError("the repository location is empty", hint="name a folder or a URL")
    if text.startswith("local:"):
        return Location("local", str(Path(text[len("local:"):]).expanduser()), text=text)
    if text.startswith("rclone:"):
        rest, _, query = text[len("rclone:"):].partition("?")
        remote, separator, path = rest.partition(":")
        if not separator:
            # "rclone:/some/path": a path on rclone's local filesystem.
            remote, path = "", rest
        if not path and not remote:
            raise PermanentStorageError(f"the rclone location {text!r} names no remote or path",
                                        hint="write rclone:REMOTE:PATH, as in rclone's own commands")
        return Location("rclone", path, host=remote, options=_options(query, text), text=text)
    if "://" not in text:
        if ":" in text.split("/")[0] and not text.startswith(("/", "~", ".")):
            raise PermanentStorageError(
                f"unsupported repository location {text!r}",
                hint="use a folder, sftp://USER@HOST/PATH, s3://BUCKET/PREFIX or rclone:REMOTE:PATH",
            )
        return Location("local", str(Path(text).expanduser()), text=text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    options = _options(parts.query, text)
    if parts.password is not None:
        raise PermanentStorageError(
            "the repository location holds a password: a URL ends up in logs and configuration files",
            hint="put the password in a credentials file (mode 0600) or the environment, see docs/storage.md",
        )
    try:
        port = parts.port
    except ValueError:
        raise PermanentStorageError(f"the repository location {text!r} has an invalid port") from None
    if scheme == "sftp":
        if not parts.hostname:
            raise PermanentStorageError(f"the SFTP location {text!r} names no host", hint="write sftp://USER@HOST:PORT/PATH")
        path = unquote(parts.path) or "/"
        if path.startswith("/~/") or path == "/~":
            path = path[3:] or "."  # relative to the account's home folder
        return Location("sftp", path, host=parts.hostname, user=unquote(parts.username or ""), port=port or 22,
                        options=options, text=text)
    if scheme == "s3":
        bucket = parts.netloc
        if not bucket or "@" in bucket:
            raise PermanentStorageError(f"the S3 location {text!r} names no bucket", hint="write s3://BUCKET/PREFIX?endpoint=URL")
        return Location("s3", unquote(parts.path).strip("/"), host=bucket, options=options, text=text)
    if scheme == "file":
        return Location("local", unquote(parts.path), text=text)
    raise PermanentStorageError(
        f"unsupported repository location scheme {scheme!r} in {text!r}",
        hint="use a folder, sftp://, s3:// or rclone:",
    )


def display_location(url: str) -> str:
    """``url`` without its query options' values that could be sensitive (for messages)."""
    return url.split("?", 1)[0]


def check_private_file(path: Path, what: str) -> None:
    """Refuse a secret-holding file that group or others may read or write.

    Raises ConfigError naming the file and the chmod that fixes it.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"the {what} {path} does not exist", hint="create it, or fix the path in the configuration") from None
    except OSError as error:
        raise ConfigError(f"cannot read the {what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the {what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"the {what} {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):04o})",
            hint=f"run: chmod 600 {path}",
        )


def read_credentials_file(path: Path) -> dict[str, str]:
    """Read a credentials file: TOML with string values for keys of :data:`CREDENTIAL_KEYS`.

    Returns the keys found. Raises ConfigError when the file is readable by others,
    is not TOML, or holds an unknown key (never quoting the file's values).
    """
    check_private_file(path, "credentials file")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"cannot read the credentials file {path}") from None
    except tomllib.TOMLDecodeError as error:
        # The decoder's message quotes no value, only the position.
        raise ConfigError(f"the credentials file {path} is not valid TOML ({error.args[0].split('(')[-1].rstrip(')')})",
                          hint='write lines of the form key = "value"') from None
    found: dict[str, str] = {}
    for key, value in data.items():
        if key not in CREDENTIAL_KEYS:
            raise ConfigError(f"the credentials file {path} has an unknown key {key!r}",
                              hint="known keys: " + ", ".join(CREDENTIAL_KEYS))
        if not isinstance(value, str):
            raise ConfigError(f"the credentials file {path}: {key} must be a string")
        found[key] = value
    return found


@dataclass(frozen=True)
class Credentials:
    """Secrets for a backend; any may be None. ``repr`` never shows a value."""

    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    key_passphrase: str | None = field(default=None, repr=False)


def resolve_credentials(
    location: Location,
    *,
    configured: Mapping[str, str] | None = None,
    credentials_file: Path | None = None,
    environment: Mapping[str, str] | None = None,
) -> Credentials:
    """Gather the credentials for ``location`` from the configuration, a file and the environment.

    ``credentials_file`` wins over the URL's ``credentials=`` option. Returns Credentials
    (every secret registered for masking). Raises ConfigError for an unreadable,
    unsafe or malformed credentials file or an unknown configured key.
    """
    environ = os.environ if environment is None else environment
    values: dict[str, str] = {}
    for key, value in (configured or {}).items():
        if key not in CREDENTIAL_KEYS:
            raise ConfigError(f"unknown credentials key {key!r} in the configuration",
                              hint="known keys: " + ", ".join(CREDENTIAL_KEYS))
        values[key] = value
    file_name = credentials_file or (Path(location.options["credentials"]) if "credentials" in location.options else None)
    if file_name is not None:
        for key, value in read_credentials_file(Path(file_name).expanduser()).items():
            values.setdefault(key, value)
    for key, name in ENVIRONMENT_NAMES.items():
        if key not in values and environ.get(name):
            values[key] = environ[name]
    for key in SECRET_KEYS:
        register_secret(values.get(key))
    return Credentials(**values)
