"""``create_sandbox``: generate a passbolt instance, load its database, write its files and manifest.

The manifest (JSON, mode 0600: it holds private keys) lists what was generated so
tests, the demo and break-glass checks can compare a restore against it: users with
their private keys and passphrases, which resources each can read with the plaintext
(all of them up to ``manifest_resources_per_user`` per user), the server and metadata
keys, the SMTP setting, row counts, the files with owners and modes, and warnings.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import UsageError
from strongroom.passbolt.schema_512 import PASSBOLT_VERSION
from strongroom.progress import LogReporter, Reporter
from strongroom.sandbox import content, database, generate, layouts, openpgp
from strongroom.sandbox.generate import Instance, TableRows

MANIFEST_FORMAT = "strongroom-sandbox-manifest"
MANIFEST_VERSION = 1


@dataclass
class Sandbox:
    """A created sandbox: where it is, what it holds, and how long it took."""

    root: Path
    layout: str
    engine: str
    target: DatabaseTarget
    manifest_path: Path
    manifest: dict[str, Any]
    row_counts: dict[str, int]
    row_bytes: int
    database_bytes: int
    server_fingerprint: str
    files: list[layouts.FileEntry]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready summary without any secret (for ``--json`` and logs)."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "engine": self.engine,
            "database": self.target.url(),
            "manifest": str(self.manifest_path),
            "server_fingerprint": self.server_fingerprint,
            "rows": sum(self.row_counts.values()),
            "row_counts": self.row_counts,
            "row_bytes": self.row_bytes,
            "database_bytes": self.database_bytes,
            "users": self.manifest["counts"]["users"],
            "resources": self.manifest["counts"]["resources"],
            "files": len(self.files),
            "warnings": self.warnings,
            "seconds": round(self.seconds, 1),
        }


def _value_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bytes, bytearray)):
        return len(value) * 2  # written as hex (MariaDB) or escaped bytea (PostgreSQL)
    return 8


class _Tally:
    """Counts the bytes of the values that pass through (roughly what a dump will hold)."""

    def __init__(self) -> None:
        self.bytes = 0

    def wrap(self, tables: Iterator[TableRows]) -> Iterator[TableRows]:
        for table in tables:
            yield TableRows(table.table, table.columns, self._rows(table.rows))

    def _rows(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            self.bytes += sum(_value_size(value) for value in row)
            yield row


def default_manifest_path(root: Path) -> Path:
    """Return ``<parent of root>/<root name>-sandbox.json``: beside the root, outside the backed-up paths.

    Raises UsageError when the root has no name (``/``).
    """
    resolved = root.resolve()
    if not resolved.name:
        raise UsageError("cannot put the manifest beside the root '/'", hint="name the manifest file with --manifest")
    return resolved.parent / f"{resolved.name}-sandbox.json"


def _user_entries(instance: Instance, per_user_limit: int) -> list[dict[str, Any]]:
    readable: dict[int, list[generate.Resource]] = {}
    for resource in instance.resources:
        for reader in resource.readers:
            readable.setdefault(reader, []).append(resource)
    entries = []
    for user in instance.users:
        resources = readable.get(user.index, [])
        entries.append(
            {
                "id": user.id,
                "username": user.username,
                "first_name": user.first_name,
                "last_name": user.last_name,
                "role": user.role,
                "active": user.active,
                "deleted": user.deleted,
                "disabled": user.disabled is not None,
                "gpgkey_id": user.gpgkey_id if user.key else None,
                "fingerprint": user.key.fingerprint if user.key else None,
                "key_algorithm": user.key.algorithm if user.key else None,
                "public_key": user.key.public_armored if user.key else None,
                "private_key": user.key.private_armored if user.key else None,
                "passphrase": user.passphrase,
                "readable_count": len(resources),
                "readable": [
                    {
                        "resource_id": resource.id,
                        "name": resource.name,
                        "resource_type": resource.type_slug,
                        "plaintext": resource.plaintext,
                        "pooled": resource.pool_index is not None,
                    }
                    for resource in resources[:per_user_limit]
                ],
            }
        )
    return entries


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1)
        stream.write("\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def create_sandbox(
    *,
    database_target: DatabaseTarget | str,
    root: Path | str,
    layout: str = "debian",
    size: int = generate.DEFAULT_SIZE,
    seed: int = 1,
    database_name: str = "passbolt",
    manifest_path: Path | str | None = None,
    replace: bool = False,
    domain: str = "example.com",
    s2k_coded_count: int = openpgp.DEFAULT_S2K_CODED_COUNT,
    real_secret_limit: int = generate.DEFAULT_REAL_SECRET_LIMIT,
    manifest_resources_per_user: int = generate.DEFAULT_MANIFEST_RESOURCES_PER_USER,
    reporter: Reporter | None = None,
) -> Sandbox:
    """Create a sandbox passbolt 5.12 instance and return it.

    ``database_target`` is a server (a DatabaseTarget or URL) on which the database
    ``database_name`` is created; its account is also the one the configuration names.
    ``root`` is the directory the instance's files go under (created; it must be
    empty unless ``replace``). ``size`` is the target amount of row data in bytes
    (about what a dump holds; the server's own size is larger). Same seed, same
    instance, except for key material and ciphertexts, which are random by nature.

    Raises UsageError for a bad layout, size, a non-empty root or an existing
    database (without ``replace``), DatabaseError when the server refuses,
    OpenPGPError when a key cannot be generated.
    """
    started = time.monotonic()
    report = reporter or LogReporter()
    if layout not in layouts.LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint=f"use one of: {', '.join(layouts.LAYOUTS)}")
    try:
        plan = generate.plan_for_size(
            size, real_secret_limit=real_secret_limit, manifest_resources_per_user=manifest_resources_per_user
        )
    except ValueError as exc:
        raise UsageError(str(exc), hint="give a size of at least 1 MB (e.g. --scale 5MB)") from None
    server = DatabaseTarget.from_url(database_target) if isinstance(database_target, str) else database_target
    root_path = Path(root)
    manifest_file = Path(manifest_path) if manifest_path is not None else default_manifest_path(root_path)
    if manifest_file.resolve().is_relative_to(root_path.resolve()):
        raise UsageError(
            f"the manifest {manifest_file} would be inside the sandbox root {root_path}",
            hint="put the manifest outside the root: it holds private keys and must not be backed up with the instance",
        )
    if root_path.exists() and any(root_path.iterdir()):
        if not replace:
            raise UsageError(f"the sandbox root {root_path} is not empty", hint="name an empty directory or pass --replace")
        layouts.clear_root(root_path)
    root_path.mkdir(parents=True, exist_ok=True)
    target = database.prepare_database(server, database_name, replace=replace)

    report.phase("generating users, keys and resources")
    instance = generate.build_instance(seed, plan, domain=domain, s2k_coded_count=s2k_coded_count, progress=report.note)
    tally = _Tally()
    counts = database.load_rows(target, tally.wrap(generate.table_rows(instance)), report)
    report.phase("writing files")
    # The same pictures as the avatars table (v1 kept them as files), named by profile id.
    avatars = [
        (user.profile_id, content.make_avatar(random.Random(f"{instance.seed}-{user.id}")))
        for user in instance.users
        if user.has_avatar
    ]
    written = layouts.write_layout(root_path, layout, instance, target, avatars=avatars)
    for warning in written.warnings:
        report.warn(warning)
    database_bytes = database.database_size(target)
    sandbox = Sandbox(
        root=root_path,
        layout=layout,
        engine=target.engine,
        target=target,
        manifest_path=manifest_file,
        manifest={},
        row_counts=counts,
        row_bytes=tally.bytes,
        database_bytes=database_bytes,
        server_fingerprint=instance.server_key.fingerprint,
        files=written.files,
        warnings=list(written.warnings),
    )
    sandbox.manifest = _manifest(instance, sandbox, written, manifest_resources_per_user)
    _write_private_json(manifest_file, sandbox.manifest)
    sandbox.seconds = time.monotonic() - started
    report.done()
    return sandbox


def _manifest(instance: Instance, sandbox: Sandbox, written: layouts.LayoutResult, per_user: int) -> dict[str, Any]:
    secrets_decryptable = sum(len(resource.readers) for resource in instance.resources)
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": instance.seed,
        "passbolt_version": PASSBOLT_VERSION,
        "layout": sandbox.layout,
        "web_user": written.web_user,
        "root": str(sandbox.root.resolve()),
        "base_url": instance.base_url,
        "database": {
            "engine": sandbox.engine,
            "url": sandbox.target.url(),
            "name": sandbox.target.database,
            "user": sandbox.target.user,
            "password": sandbox.target.password,
            "row_bytes": sandbox.row_bytes,
            "database_bytes": sandbox.database_bytes,
        },
        "counts": {
            "users": len(instance.users),
            "active_users": sum(1 for user in instance.users if user.can_read),
            "groups": len(instance.groups),
            "folders": len(instance.folders),
            "resources": len(instance.resources),
            "v5_resources": sum(1 for resource in instance.resources if resource.v5),
            "secrets": secrets_decryptable,
            "pooled_resources": sum(1 for resource in instance.resources if resource.pool_index is not None),
            "rows": sandbox.row_counts,
        },
        "server_key": {
            "fingerprint": instance.server_key.fingerprint,
            "uid": instance.server_key.uid,
            "public_key": instance.server_key.public_armored,
            "private_key": instance.server_key.private_armored,
            "passphrase": "",
        },
        "metadata_key": {
            "id": instance.metadata_key_id,
            "fingerprint": instance.metadata_key.fingerprint,
            "public_key": instance.metadata_key.public_armored,
            "private_key": instance.metadata_key.private_armored,
            "passphrase": "",
        },
        "smtp_settings": instance.smtp_settings,
        "jwt_public_key": written.jwt_public_pem or None,
        "users": _user_entries(instance, per_user),
        "files": [
            {
                "path": entry.path,
                "real_path": entry.real_path,
                "kind": entry.kind,
                "role": entry.role,
                "owner": entry.owner,
                "group": entry.group,
                "mode": f"{entry.mode:04o}",
            }
            for entry in written.files
        ],
        "warnings": sandbox.warnings,
    }
