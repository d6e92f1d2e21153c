"""The backup-set checks: is what a backup would hold complete, consistent and safe?

:func:`run_checks` returns one or more findings per named check, each ``error``
(a backup would be useless or incomplete: it stops the backup), ``warning``
(reported, recorded in the manifest) or ``ok``. Checks never raise for a problem
in the instance; they report it.

==============================  ====================================================
check                           what it asks
==============================  ====================================================
``config-readable``             passbolt's configuration files can be read and parsed
``file-present``                every required file of the backup set exists and is readable
``server-key-single``           ``serverkey.asc`` holds one key (two break logins)
``server-key-parsable``         both key files are OpenPGP keys
``server-key-fingerprint``      the key's fingerprint equals the configured one
``server-key-insecure-default`` the key is not passbolt's published insecure default
``server-key-expiry``           the key does not expire (expired: error; expiring: warning)
``server-key-private-matches``  the private file holds the secret half of the public key
``jwt-present``                 both JWT key files exist
``jwt-match``                   ``jwt.key`` and ``jwt.pem`` are one RSA pair
``jwt-permissions``             ``jwt/`` is 0750, both files 0640
``private-key-permissions``     private keys and files with passwords are not readable by others
``database-settings``           the database settings were found
``database-reachable``          the database server answers
``database-credentials``        it accepts the configured user and password
``database-version``            the server's version (and whether passbolt supports it)
``database-tables``             passbolt's tables are there
``passbolt-version``            passbolt's version is known
==============================  ====================================================
"""

from __future__ import annotations

import datetime
import re
import stat
import warnings
from collections.abc import Callable

from strongroom import execute
from strongroom.dbserver.connection import DatabaseTarget, connect, list_tables, server_version
from strongroom.errors import CommandError, DatabaseError, DependencyError, SourceError
from strongroom.source import backupset as roles
from strongroom.source.backupset import BackupFile
from strongroom.source.discovery import Instance
from strongroom.source.docker import container_query_command
from strongroom.source.findings import Finding, error, passed, warning

INSECURE_DEFAULT_FINGERPRINT = "2FC8945833C51946E937F9FED47B0811573EE67E"
EXPIRY_WARNING_DAYS = 90

# The tables every passbolt database has had since 2.0; the full 5.12 list is compared too.
CORE_TABLES = ("users", "gpgkeys", "resources", "secrets", "permissions", "roles", "profiles", "phinxlog")


def run_checks(instance: Instance, connect_database: bool = True) -> list[Finding]:
    """Check ``instance``'s backup set; return discovery's findings followed by every check's.

    ``connect_database`` False skips the checks that need the database server.
    Never raises for a problem of the instance (only for bugs).
    """
    findings: list[Finding] = list(instance.findings)
    findings += check_files(instance)
    findings += check_server_key(instance)
    if not instance.paths.is_v1:
        findings += check_jwt(instance)
    findings += check_private_permissions(instance)
    if connect_database:
        findings += check_database(instance)
    if instance.version is not None:
        findings.append(passed("passbolt-version", f"passbolt {instance.version}", instance.backup_set.edition))
    return findings


# -- files -----------------------------------------------------------------------------


def _shown(item: BackupFile) -> str:
    return str(item.location) if item.location is not None else f"{item.path} (in container {item.container})"


def check_files(instance: Instance) -> list[Finding]:
    """``file-present``: each required file exists and is readable; optional ones are reported when absent."""
    findings: list[Finding] = []
    for item in instance.backup_set.files:
        if item.location is None:
            level = error if item.required and item.role.startswith(("server-key", "jwt")) else warning
            findings.append(
                level(
                    "file-present",
                    f"{item.role} {item.path} is not on a volume: it lives only inside the container and is lost "
                    "when the container is recreated; mount it on a volume (passbolt's compose mounts gpg/ and jwt/)",
                    str(item.path),
                )
            )
            continue
        state = item.state()
        if not state.exists:
            if item.required and not item.role.startswith("jwt"):
                findings.append(
                    error(
                        "file-present",
                        f"{item.role} {item.location} does not exist ({item.origin}); "
                        "restore it, or name its path in the [instance] section",
                        str(item.path),
                    )
                )
            elif not item.required:
                findings.append(warning("file-present", f"{item.role} {item.location} does not exist", str(item.path)))
            continue
        if not state.readable:
            findings.append(
                error(
                    "file-present",
                    f"{item.role} {item.location} exists but cannot be read by this user; "
                    "run strongroom as root (or as the web user)",
                    str(item.path),
                )
            )
            continue
        if item.kind == "file" and state.kind != "file":
            findings.append(error("file-present", f"{item.role} {item.location} is not a regular file", str(item.path)))
            continue
        findings.append(passed("file-present", f"{item.role} {_shown(item)}", str(item.path)))
    return findings


def _read_bytes(instance: Instance, item: BackupFile | None) -> bytes | None:
    if item is None:
        return None
    try:
        return instance.read_text(item).encode("utf-8")
    except SourceError:
        return None


# -- server key ----------------------------------------------------------------------------


def _certificates(data: bytes) -> list[object]:
    import pysequoia

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(pysequoia.Cert.split_bytes(data))


def _has_secret(cert: object) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(getattr(cert, "has_secret_keys"))


def check_server_key(instance: Instance, *, now: datetime.datetime | None = None) -> list[Finding]:
    """The server key checks (single, parsable, fingerprint, insecure default, expiry, private half)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    findings: list[Finding] = []
    public_file = instance.backup_set.file(roles.SERVER_KEY_PUBLIC)
    private_file = instance.backup_set.file(roles.SERVER_KEY_PRIVATE)
    public_data = _read_bytes(instance, public_file)
    private_data = _read_bytes(instance, private_file)
    configured = instance.backup_set.fingerprint
    public_cert = None
    if public_data is not None and public_file is not None:
        subject = str(public_file.path)
        try:
            certs = _certificates(public_data)
        except Exception as exc:  # pysequoia raises plain RuntimeError/ValueError for bad data
            findings.append(
                error("server-key-parsable", f"{public_file.location} is not an OpenPGP key ({str(exc).splitlines()[0]}); "
                      "restore the server's public key", subject)
            )
            certs = []
        if len(certs) > 1:
            listed = ", ".join(str(c.fingerprint).upper() for c in certs)  # type: ignore[attr-defined]
            findings.append(
                error(
                    "server-key-single",
                    f"{public_file.location} holds {len(certs)} keys ({listed}); passbolt's logins break: "
                    "keep only the key whose fingerprint is configured",
                    subject,
                )
            )
        elif len(certs) == 1:
            findings.append(passed("server-key-single", f"{public_file.location} holds one key", subject))
        elif not any(f.check == "server-key-parsable" for f in findings):
            findings.append(error("server-key-parsable", f"{public_file.location} holds no OpenPGP key", subject))
        if certs:
            public_cert = certs[0]
            if configured:
                public_cert = next((c for c in certs if str(c.fingerprint).upper() == configured), certs[0])  # type: ignore[attr-defined]
            findings += _check_fingerprint(public_cert, configured, subject)
            findings += _check_expiry(public_cert, now, subject)
    if private_data is not None and private_file is not None:
        subject = str(private_file.path)
        try:
            private_certs = _certificates(private_data)
        except Exception as exc:
            findings.append(
                error("server-key-parsable", f"{private_file.location} is not an OpenPGP key ({str(exc).splitlines()[0]}); "
                      "restore the server's private key", subject)
            )
            private_certs = []
        if len(private_certs) > 1:
            findings.append(error("server-key-single", f"{private_file.location} holds {len(private_certs)} keys; keep only the server's", subject))
        if private_certs:
            private_cert = private_certs[0]
            if not _has_secret(private_cert):
                findings.append(
                    error("server-key-private-matches",
                          f"{private_file.location} holds only a public key: the server's private key is missing; "
                          "restore serverkey_private.asc from a backup", subject)
                )
            elif public_cert is not None:
                private_fingerprint = str(private_cert.fingerprint).upper()  # type: ignore[attr-defined]
                public_fingerprint = str(public_cert.fingerprint).upper()  # type: ignore[attr-defined]
                if private_fingerprint != public_fingerprint:
                    findings.append(
                        error("server-key-private-matches",
                              f"the private key ({private_fingerprint}) is not the public key's ({public_fingerprint}) "
                              "private half; put the matching pair back", subject)
                    )
                else:
                    findings.append(passed("server-key-private-matches", "the private key matches the public key", subject))
        elif not any(f.check == "server-key-parsable" and f.subject == subject for f in findings):
            findings.append(error("server-key-parsable", f"{private_file.location} holds no OpenPGP key", subject))
    return findings


def _check_fingerprint(cert: object, configured: str | None, subject: str) -> list[Finding]:
    actual = str(cert.fingerprint).upper()  # type: ignore[attr-defined]
    findings: list[Finding] = [passed("server-key-parsable", f"server key {actual}", subject)]
    if actual == INSECURE_DEFAULT_FINGERPRINT:
        findings.append(
            error("server-key-insecure-default",
                  f"the server key is passbolt's published insecure default key {actual}: anyone can impersonate "
                  "this server; generate a new server key (passbolt's docs: 'Generate the server key')", subject)
        )
    else:
        findings.append(passed("server-key-insecure-default", "not passbolt's insecure default key", subject))
    if configured is None:
        findings.append(
            warning("server-key-fingerprint",
                    f"no server key fingerprint is configured (passbolt.gpg.serverKey.fingerprint or "
                    f"PASSBOLT_GPG_SERVER_KEY_FINGERPRINT); the key's is {actual}", subject)
        )
    elif configured != actual:
        findings.append(
            error("server-key-fingerprint",
                  f"the configured fingerprint {configured} is not the server key's {actual}: logins fail; "
                  "set the configured fingerprint to the key's, or put the configured key back", subject)
        )
    else:
        findings.append(passed("server-key-fingerprint", f"fingerprint {actual} matches the configuration", subject))
    return findings


def _check_expiry(cert: object, now: datetime.datetime, subject: str) -> list[Finding]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expiration = getattr(cert, "expiration")
    if expiration is None:
        return [passed("server-key-expiry", "the server key does not expire", subject)]
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=datetime.timezone.utc)
    day = expiration.date().isoformat()
    if expiration <= now:
        return [
            error("server-key-expiry",
                  f"the server key expired on {day}: users cannot verify the server; extend its expiry with "
                  "'gpg --quick-set-expire FINGERPRINT 0' and export it again", subject)
        ]
    days = (expiration - now).days
    if days <= EXPIRY_WARNING_DAYS:
        return [warning("server-key-expiry", f"the server key expires in {days} days ({day}): extend its expiry now", subject)]
    return [warning("server-key-expiry", f"the server key expires on {day}; passbolt wants a server key that never expires", subject)]


# -- JWT -----------------------------------------------------------------------------------


def check_jwt(instance: Instance) -> list[Finding]:
    """``jwt-present``, ``jwt-match`` and ``jwt-permissions``."""
    from cryptography.hazmat.primitives import serialization

    findings: list[Finding] = []
    private_file = instance.backup_set.file(roles.JWT_PRIVATE)
    public_file = instance.backup_set.file(roles.JWT_PUBLIC)
    if private_file is None or public_file is None:
        return findings
    enabled = instance.config.get("passbolt", {}).get("plugins", {}).get("jwtAuthentication", {}).get("enabled") \
        if isinstance(instance.config.get("passbolt"), dict) else None
    missing = [item for item in (private_file, public_file) if item.location is not None and not item.state().exists]
    if missing:
        both = len(missing) == 2
        names = " and ".join(str(item.location) for item in missing)
        message = (
            f"JWT key {names} {'are' if both else 'is'} missing: mobile apps and JWT logins fail and every "
            "session must re-authenticate; recreate the pair with 'bin/cake passbolt create_jwt_keys'"
        )
        level = warning if both and enabled is False else error
        findings.append(level("jwt-present", message, str(missing[0].path)))
        return findings
    private_data = _read_bytes(instance, private_file)
    public_data = _read_bytes(instance, public_file)
    if private_data is None or public_data is None:
        return findings
    findings.append(passed("jwt-present", "jwt.key and jwt.pem are present", str(private_file.path.parent)))
    try:
        private_key = serialization.load_pem_private_key(private_data, password=None)
        public_key = serialization.load_pem_public_key(public_data)
        matches = private_key.public_key().public_numbers() == public_key.public_numbers()  # type: ignore[union-attr]
    except (ValueError, TypeError, AttributeError) as exc:
        findings.append(error("jwt-match", f"the JWT keys cannot be read as PEM keys ({exc}); recreate them", str(private_file.path)))
        return findings
    if not matches:
        findings.append(error("jwt-match", "jwt.key and jwt.pem are not one key pair; recreate them with create_jwt_keys",
                              str(private_file.path)))
    else:
        findings.append(passed("jwt-match", "jwt.key and jwt.pem are one key pair", str(private_file.path)))
    directory = private_file.location.parent if private_file.location is not None else None
    if directory is not None and private_file.location is not None and public_file.location is not None:
        wrong: list[str] = []
        directory_mode = stat.S_IMODE(directory.stat().st_mode)
        if directory_mode != 0o750:
            wrong.append(f"{directory} is {directory_mode:04o}, should be 0750")
        for item in (private_file, public_file):
            mode = item.state().mode
            if mode is not None and mode != 0o640:
                wrong.append(f"{item.location} is {mode:04o}, should be 0640")
        if wrong:
            findings.append(warning("jwt-permissions", "; ".join(wrong) + " (passbolt's healthcheck expects these; 0600 breaks it)",
                                    str(directory)))
        else:
            findings.append(passed("jwt-permissions", "jwt/ is 0750, its keys 0640", str(directory)))
    return findings


# -- permissions -----------------------------------------------------------------------------


def check_private_permissions(instance: Instance) -> list[Finding]:
    """``private-key-permissions``: private keys and files holding passwords are not readable by others."""
    findings: list[Finding] = []
    for item in instance.backup_set.files:
        if item.role not in roles.PRIVATE_ROLES and not item.role.startswith(("docker-env", "docker-secret", "tls-key")):
            continue
        state = item.state()
        if not state.exists or state.mode is None:
            continue
        if state.mode & stat.S_IROTH or state.mode & stat.S_IWOTH:
            findings.append(
                error("private-key-permissions",
                      f"{item.location} ({item.role}) is readable by every user (mode {state.mode:04o}): "
                      f"run 'chmod o-rwx {item.location}'", str(item.path))
            )
        elif item.role in (roles.SERVER_KEY_PRIVATE, roles.JWT_PRIVATE):
            findings.append(passed("private-key-permissions", f"{item.role} is not readable by others ({state.mode:04o})", str(item.path)))
    return findings


# -- database ----------------------------------------------------------------------------------


def _database_error_finding(exc: DatabaseError) -> Finding:
    text = exc.message
    if text.startswith("wrong user or password") or "Access denied" in text or "password authentication failed" in text:
        return error("database-credentials", f"{text}: {exc.hint}" if exc.hint else text, "database")
    if "does not exist" in text or "may not use" in text:
        return error("database-credentials", f"{text}: {exc.hint}" if exc.hint else text, "database")
    return error("database-reachable", f"{text}: {exc.hint}" if exc.hint else text, "database")


def _expected_tables(engine: str) -> tuple[str, ...]:
    try:
        from strongroom.passbolt.schema import TABLES_512

        return tuple(table.name for table in TABLES_512)
    except ImportError:  # the schema module is optional at this layer
        return CORE_TABLES


def _version_findings(version: str, engine: str) -> list[Finding]:
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2]) or (0,)
    lowered = version.lower()
    if engine == "postgresql":
        return [passed("database-version", f"PostgreSQL {version}", "database")]
    if "mariadb" in lowered:
        if numbers < (10, 3):
            return [error("database-version", f"MariaDB {version} is older than passbolt 4+ supports (10.3); upgrade it", "database")]
        if numbers < (10, 6):
            return [warning("database-version", f"MariaDB {version}: passbolt's healthcheck warns below 10.6; plan an upgrade", "database")]
        return [passed("database-version", f"MariaDB {version}", "database")]
    if numbers < (5, 7):
        return [error("database-version", f"MySQL {version} is older than passbolt 4+ supports (5.7); upgrade it", "database")]
    if numbers < (8, 0):
        return [warning("database-version", f"MySQL {version}: passbolt's healthcheck warns below 8.0; plan an upgrade", "database")]
    return [passed("database-version", f"MySQL {version}", "database")]


def _table_findings(tables: list[str], engine: str, version: str | None) -> list[Finding]:
    present = set(tables)
    missing_core = [name for name in CORE_TABLES if name not in present]
    if not tables:
        return [error("database-tables", "the database has no tables: this is not (yet) a passbolt database; "
                      "check the database name", "database")]
    if missing_core:
        return [error("database-tables", f"passbolt tables are missing: {', '.join(missing_core)}; check the database name "
                      "or run 'bin/cake passbolt migrate'", "database")]
    expected = _expected_tables(engine)
    missing = [name for name in expected if name not in present]
    if missing and version and version.startswith("5.12"):
        return [warning("database-tables", f"{len(missing)} tables of passbolt 5.12 are missing ({', '.join(missing[:5])}"
                        f"{', ...' if len(missing) > 5 else ''}); run 'bin/cake passbolt migrate'", "database")]
    return [passed("database-tables", f"{len(tables)} tables, passbolt's core tables present", "database")]


def check_database(instance: Instance) -> list[Finding]:
    """``database-reachable``, ``database-credentials``, ``database-version``, ``database-tables``."""
    target = instance.database
    if target is None:
        return []
    if instance.backup_set.database_container is not None:
        return _check_database_in_container(instance, target, instance.backup_set.database_container)
    try:
        connection = connect(target, timeout=10)
    except DatabaseError as exc:
        return [_database_error_finding(exc)]
    except DependencyError as exc:
        return [error("database-reachable", f"{exc.message} ({exc.hint})", "database")]
    try:
        version = server_version(connection)
        tables = list_tables(connection, target.engine, target.schema)
    except DatabaseError as exc:
        return [_database_error_finding(exc)]
    finally:
        connection.close()
    findings = [passed("database-reachable", f"connected to {target.describe()}", "database"),
                passed("database-credentials", f"the user {target.user!r} is accepted", "database")]
    findings += _version_findings(version, target.engine)
    findings += _table_findings(tables, target.engine, instance.version)
    return findings


def container_database_command(target: DatabaseTarget, container: str, image: str | None) -> tuple[list[str], dict[str, str]]:
    """The ``docker exec`` command that prints the server version then the table names, and its environment."""
    if target.engine == "postgresql":
        schema = (target.schema or "public").replace("'", "''")
        queries = ["SHOW server_version", f"SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = '{schema}' ORDER BY tablename"]
    else:
        queries = ["SELECT VERSION()", "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'"]
    return container_query_command(target, container, image, queries)


def _check_database_in_container(instance: Instance, target: DatabaseTarget, container: str) -> list[Finding]:
    image = instance.docker.database_image if instance.docker is not None else None
    argv, environment = container_database_command(target, container, image)
    try:
        answer = execute.run(argv, env=environment, secrets=[target.password or ""], timeout=60,
                             what=f"querying the database in {container}")
    except DependencyError as exc:
        return [error("database-reachable", f"{exc.message} ({exc.hint})", "database")]
    except CommandError as exc:
        tail = exc.stderr_tail.lower()
        if "access denied" in tail or "password authentication failed" in tail:
            return [error("database-credentials", f"the database in container {container} refuses the user "
                          f"{target.user!r} with the configured password; check DATASOURCES_DEFAULT_PASSWORD "
                          "and the database container's password", "database")]
        if "unknown database" in tail or ("database" in tail and "does not exist" in tail):
            return [error("database-credentials", f"the database {target.database!r} does not exist in container {container}; "
                          "check DATASOURCES_DEFAULT_DATABASE", "database")]
        detail = exc.stderr_tail.splitlines()[-1] if exc.stderr_tail else exc.message.splitlines()[0]
        return [error("database-reachable", f"cannot query the database in container {container}: {detail}; "
                      "is the container running ('docker ps')?", "database")]
    lines = [line for line in answer.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return [error("database-reachable", f"the database in container {container} gave no answer", "database")]
    version = lines[0].strip()
    tables = [line.split("\t", 1)[0].strip() for line in lines[1:]]
    findings = [passed("database-reachable", f"queried the database in container {container}", "database"),
                passed("database-credentials", f"the user {target.user!r} is accepted", "database")]
    findings += _version_findings(version, target.engine)
    findings += _table_findings(tables, target.engine, instance.version)
    return findings


CheckFunction = Callable[[Instance], list[Finding]]
ALL_CHECKS: tuple[CheckFunction, ...] = (check_files, check_server_key, check_jwt, check_private_permissions, check_database)
