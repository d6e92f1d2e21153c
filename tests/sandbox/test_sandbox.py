"""Sandbox instances against real throwaway MariaDB and PostgreSQL servers, in every layout."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from strongroom.cli.commands.sandbox import parse_size
from strongroom.cli.main import main
from strongroom.errors import UsageError
from strongroom.passbolt.schema import compare_schema, describe_database, expected_schema
from strongroom.sandbox import LAYOUTS, Sandbox, create_sandbox, generate, openpgp

SMALL = 1_000_000

# passbolt.md §2: (role, owner is the web user?, group is the web group?, mode)
EXPECTED_MODES = {
    "config_dir": 0o770,
    "passbolt_config": 0o440,
    "app_config": 0o640,
    "subscription_key": 0o640,
    "gpg_dir": 0o770,
    "server_public_key": 0o440,
    "server_private_key": 0o440,
    "jwt_dir": 0o750,
    "jwt_private_key": 0o640,
    "jwt_public_key": 0o640,
    "keyring": 0o700,
}
V1_MODES = {
    "passbolt_config": 0o440, "core_config": 0o440, "database_config": 0o440, "email_config": 0o440,
    "server_public_key": 0o440, "server_private_key": 0o440, "avatars_dir": 0o755, "avatar": 0o644,
}


def _server(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue(f"{engine}_server")


def _make(request: pytest.FixtureRequest, tmp_path: Path, engine: str, layout: str, **options: Any) -> Sandbox:
    server = _server(request, engine)
    name = re.sub(r"[^a-z0-9]", "_", f"sbx_{request.node.name}".lower())[:60]
    return create_sandbox(
        database_target=server.target, root=tmp_path / "root", layout=layout, size=SMALL,
        database_name=name, **options,
    )


def _rows(sandbox: Sandbox, query: str) -> list[tuple[Any, ...]]:
    from strongroom.dbserver.connection import connect

    connection = connect(sandbox.target)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _configured_fingerprint(sandbox: Sandbox) -> str:
    by_role = {entry.role: Path(entry.path) for entry in sandbox.files}
    if sandbox.layout == "docker":
        text = next(Path(e.path) for e in sandbox.files if e.path.endswith("passbolt.env")).read_text()
        return re.search(r"^PASSBOLT_GPG_SERVER_KEY_FINGERPRINT=([0-9A-F]+)$", text, re.M).group(1)  # type: ignore[union-attr]
    text = by_role["passbolt_config"].read_text()
    match = re.search(r"'fingerprint' => (?:env\('PASSBOLT_GPG_SERVER_KEY_FINGERPRINT', )?'([0-9A-F]{40})'", text)
    assert match, text
    return match.group(1)


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_files_modes_and_fingerprint(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str, layout: str
) -> None:
    sandbox = _make(request, tmp_path, engine, layout)
    server_key_file = next(Path(e.path) for e in sandbox.files if e.role == "server_public_key")
    private_key_file = next(Path(e.path) for e in sandbox.files if e.role == "server_private_key")
    fingerprint = openpgp.fingerprint_of(server_key_file.read_text())
    assert _configured_fingerprint(sandbox) == fingerprint == sandbox.server_fingerprint
    # The private key file is the private half of the same key, and it never expires.
    key = openpgp.unlock(private_key_file.read_text(), "")
    assert openpgp.decrypt(openpgp.encrypt("probe", [openpgp.pysequoia.Cert.from_bytes(server_key_file.read_bytes())]), key) == b"probe"
    assert openpgp.pysequoia.Cert.from_bytes(server_key_file.read_bytes()).expiration is None

    expected = V1_MODES if layout == "v1" else EXPECTED_MODES
    seen_roles = set()
    for entry in sandbox.files:
        info = os.stat(entry.path)
        assert stat.S_IMODE(info.st_mode) == entry.mode, entry
        if entry.role in expected:
            seen_roles.add(entry.role)
            assert entry.mode == expected[entry.role], entry
        if os.geteuid() == 0:
            assert (info.st_uid, info.st_gid) == (entry.owner, entry.group), entry
    assert seen_roles == set(expected) - (
        {"keyring", "config_dir", "passbolt_config", "app_config"} if layout == "docker" else set()
    )
    if layout in ("debian", "rpm", "source"):
        roles = {entry.role: entry for entry in sandbox.files}
        web_owned = ("passbolt_config", "server_public_key", "server_private_key", "keyring")
        root_owned = ("config_dir", "app_config", "subscription_key", "gpg_dir", "jwt_dir", "jwt_private_key")
        for role in web_owned:
            assert (roles[role].owner, roles[role].group) == (roles["passbolt_config"].owner, roles["passbolt_config"].group)
        assert roles["passbolt_config"].owner != 0
        for role in root_owned:
            assert roles[role].owner == 0 and roles[role].group == roles["passbolt_config"].group
        if layout != "rpm":
            import pwd

            try:
                www_data = pwd.getpwnam("www-data").pw_uid
            except KeyError:
                www_data = 33
            assert roles["passbolt_config"].owner == www_data
    if layout == "docker":
        compose = (tmp_path / "root/opt/passbolt/docker-compose.yaml").read_text()
        assert "gpg_volume:/etc/passbolt/gpg" in compose and "jwt_volume:/etc/passbolt/jwt" in compose
        assert (tmp_path / "root/var/lib/docker/volumes/passbolt_gpg_volume/_data/serverkey_private.asc").is_file()
    if layout == "v1":
        assert "class DATABASE_CONFIG" in (tmp_path / "root/var/www/passbolt/app/Config/database.php").read_text()
        avatars = list((tmp_path / "root/var/www/passbolt/app/webroot/img/public/Avatar").rglob("*.png"))
        assert avatars and avatars[0].read_bytes().startswith(b"\x89PNG")
    # The manifest is private and outside the root.
    assert stat.S_IMODE(os.stat(sandbox.manifest_path).st_mode) == 0o600
    assert not sandbox.manifest_path.resolve().is_relative_to((tmp_path / "root").resolve())


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_database_schema_secrets_and_server_encrypted_values(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    sandbox = _make(request, tmp_path, engine, "debian")
    manifest = json.loads(sandbox.manifest_path.read_text())

    # information_schema matches the project's schema definition, every table included.
    from strongroom.dbserver.connection import connect

    connection = connect(sandbox.target)
    try:
        actual = describe_database(connection, engine, "public" if engine == "postgresql" else sandbox.target.database)
    finally:
        connection.close()
    assert compare_schema(expected_schema(engine), actual) == []
    assert len(actual.tables) == 53
    assert _rows(sandbox, "SELECT COUNT(*) FROM phinxlog")[0][0] == 149

    # gpgkeys hold each user's public key with its real fingerprint.
    users = {user["id"]: user for user in manifest["users"]}
    for user_id, armored, fingerprint, key_id in _rows(sandbox, "SELECT user_id, armored_key, fingerprint, key_id FROM gpgkeys"):
        assert openpgp.fingerprint_of(armored) == fingerprint == users[str(user_id)]["fingerprint"]
        assert key_id == fingerprint[-16:]

    # Every secret row decrypts with its user's private key to the manifest's plaintext.
    decryptors = {
        user_id: openpgp.unlock(user["private_key"], user["passphrase"])
        for user_id, user in users.items()
        if user["private_key"]
    }
    expected_plaintexts = {
        (user_id, item["resource_id"]): item["plaintext"] for user_id, user in users.items() for item in user["readable"]
    }
    rows = _rows(sandbox, "SELECT user_id, resource_id, data FROM secrets")
    assert len(rows) == manifest["counts"]["secrets"] > 100
    for user_id, resource_id, data in rows:
        plaintext = openpgp.decrypt(data, decryptors[str(user_id)]).decode("utf-8")
        assert plaintext == expected_plaintexts[(str(user_id), str(resource_id))]
    # A secret is never readable by another user's key.
    user_id, _, data = rows[0]
    other = next(key for uid, key in decryptors.items() if uid != str(user_id))
    with pytest.raises(openpgp.OpenPGPError):
        openpgp.decrypt(data, other)

    # The SMTP setting and the server's copy of the metadata private key decrypt with the server key.
    server = openpgp.unlock(manifest["server_key"]["private_key"], "")
    (smtp,) = _rows(sandbox, "SELECT value FROM organization_settings WHERE property = 'smtp'")[0]
    assert json.loads(openpgp.decrypt(smtp, server)) == manifest["smtp_settings"]
    (server_copy,) = _rows(sandbox, "SELECT data FROM metadata_private_keys WHERE user_id IS NULL")[0]
    metadata = json.loads(openpgp.decrypt(server_copy, server))
    assert metadata["object_type"] == "PASSBOLT_METADATA_PRIVATE_KEY"
    assert metadata["fingerprint"] == manifest["metadata_key"]["fingerprint"]
    (metadata_fingerprint,) = _rows(sandbox, "SELECT fingerprint FROM metadata_keys")[0]
    assert metadata_fingerprint == metadata["fingerprint"]

    # v5 resources: shared ones decrypt with the metadata key, personal ones with the owner's key.
    metadata_key = openpgp.unlock(metadata["armored_key"], metadata["passphrase"])
    gpgkey_owner = {str(g): str(u) for g, u in _rows(sandbox, "SELECT id, user_id FROM gpgkeys")}
    v5 = _rows(sandbox, "SELECT metadata, metadata_key_type, metadata_key_id, name FROM resources WHERE metadata IS NOT NULL")
    assert v5 and {row[1] for row in v5} == {"shared_key", "user_key"}
    for message, kind, key_id, name in v5:
        assert name is None
        key = metadata_key if kind == "shared_key" else decryptors[gpgkey_owner[str(key_id)]]
        assert json.loads(openpgp.decrypt(message, key))["object_type"] == "PASSBOLT_RESOURCE_METADATA"


def test_same_seed_same_instance() -> None:
    plan = generate.plan_for_size(SMALL)
    first = generate.build_instance(7, plan)
    second = generate.build_instance(7, plan)
    other = generate.build_instance(8, plan)

    def shape(instance: generate.Instance) -> list[Any]:
        return [
            [(u.id, u.username, u.passphrase, u.created) for u in instance.users],
            [(r.id, r.plaintext, r.readers, r.permissions) for r in instance.resources],
            [(g.id, g.members) for g in instance.groups],
        ]

    assert shape(first) == shape(second)
    assert shape(first) != shape(other)
    # Keys are random by nature.
    assert first.server_key.fingerprint != second.server_key.fingerprint


def test_pooled_secrets_still_decrypt_to_their_plaintext() -> None:
    plan = generate.plan_for_size(SMALL, real_secret_limit=50)
    instance = generate.build_instance(3, plan)
    pooled = [r for r in instance.resources if r.pool_index is not None]
    assert pooled
    for resource in pooled[:20]:
        for reader in resource.readers:
            key = instance.users[reader].key
            assert key is not None
            assert openpgp.decrypt(instance.secret_message(resource, reader), key.decryptor()).decode() == resource.plaintext


def test_refuses_non_empty_root_and_existing_database(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    sandbox = _make(request, tmp_path, "mariadb", "debian")
    with pytest.raises(UsageError, match="not empty"):
        _make(request, tmp_path, "mariadb", "debian")
    (tmp_path / "other").mkdir()
    with pytest.raises(UsageError, match="already holds"):
        create_sandbox(
            database_target=_server(request, "mariadb").target, root=tmp_path / "other", size=SMALL,
            database_name=sandbox.target.database or "",
        )
    with pytest.raises(UsageError, match="inside the sandbox root"):
        create_sandbox(
            database_target=_server(request, "mariadb").target, root=tmp_path / "third", size=SMALL,
            manifest_path=tmp_path / "third" / "m.json",
        )


def test_cli_creates_a_sandbox_with_json_summary(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _server(request, "postgresql")
    target = server.tcp_target
    password_file = tmp_path / "password"
    password_file.write_text((target.password or "") + "\n")
    password_file.chmod(0o600)
    code = main(
        [
            "sandbox", "create", "--database", target.url(), "--database-password-file", str(password_file),
            "--database-name", "sbx_cli", "--root", str(tmp_path / "root"), "--layout", "source",
            "--scale", "1MB", "--seed", "5", "--json",
        ]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    summary = json.loads(output)
    assert summary["layout"] == "source" and summary["engine"] == "postgresql"
    assert summary["row_counts"]["secrets"] > 0
    assert (target.password or "") not in output
    assert Path(summary["manifest"]).stat().st_mode & 0o077 == 0


def test_parse_size() -> None:
    assert parse_size("5MB") == 5_000_000
    assert parse_size("1GB") == 1_000_000_000
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("2000000") == 2_000_000
    with pytest.raises(UsageError):
        parse_size("lots")
