"""Generate the content of a sandbox passbolt 5.12 instance, deterministically from a seed.

:func:`plan_for_size` turns a target database size into counts; :func:`build_instance`
draws users, keys, groups, folders and resources from a seeded random generator and
encrypts what passbolt encrypts; :func:`table_rows` yields every table's rows, in a
fixed order, as plain Python values (str, int, bytes, datetime, None) that
:mod:`strongroom.sandbox.database` writes to MariaDB/MySQL or PostgreSQL.

Deterministic from the seed: ids, names, counts, plaintexts (passwords, descriptions,
settings), passphrases, row order and every timestamp. Random by nature: key material,
S2K salts and every ciphertext (OpenPGP session keys are random), so two runs with one
seed give identical rows except for keys and encrypted values.

Scale: below ``real_secret_limit`` secret rows every secret is its own OpenPGP
message. Beyond it (benchmark sizes), "bulk" resources take their secret from a small
pool of plaintexts and each user gets one real message per pool plaintext, reused for
every bulk resource with that plaintext: every row is still a valid message to its
user and decrypts to the resource's recorded plaintext, but bulk rows share
ciphertexts. Action logs and history tables are ids and short strings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pysequoia

from strongroom.passbolt.schema_512 import PHINXLOG_512, RESOURCE_TYPES_512, ROLES_512
from strongroom.sandbox import content, openpgp
from strongroom.sandbox.openpgp import KeyPair

# UuidFactory's namespace in passbolt (src/Utility/UuidFactory.php).
PASSBOLT_NAMESPACE = uuid.UUID("d5447ca1-950f-459d-8b20-86ddfdd0f922")

MEGABYTE = 1_000_000
DEFAULT_SIZE = 5 * MEGABYTE
# Bytes of row data per secret row and per action log row, calibrated so that the row data
# (about what a dump holds) comes out near the target size.
BYTES_PER_SECRET = 740
BYTES_PER_ACTION_LOG = 215
# Above this many secret rows, bulk resources reuse pooled messages (see the module docstring).
DEFAULT_REAL_SECRET_LIMIT = 150_000
POOL_SIZE = 8
# The manifest lists at most this many readable resources (with plaintexts) per user.
DEFAULT_MANIFEST_RESOURCES_PER_USER = 200

ACTIONS = (
    ("AuthLogin.loginPost", "POST /auth/login.json"),
    ("ResourcesIndex.index", "GET /resources.json"),
    ("SecretsView.view", "GET /secrets/resource/{id}.json"),
    ("ResourcesAdd.addPost", "POST /resources.json"),
    ("ResourcesUpdate.update", "PUT /resources/{id}.json"),
    ("ShareUpdate.update", "PUT /share/resource/{id}.json"),
    ("GroupsIndex.index", "GET /groups.json"),
    ("UsersIndex.index", "GET /users.json"),
    ("FoldersIndex.index", "GET /folders.json"),
    ("AuthLogout.logoutGet", "GET /auth/logout.json"),
)

V4_TYPES = ("password-and-description", "password-string", "password-description-totp", "totp")
V4_WEIGHTS = (70, 15, 8, 7)
V5_TYPES = ("v5-default", "v5-password-string", "v5-default-with-totp", "v5-totp-standalone", "v5-note")
V5_WEIGHTS = (70, 10, 8, 6, 6)


def uuid5(name: str) -> str:
    """Return passbolt's UuidFactory::uuid(name): a UUIDv5 in passbolt's namespace."""
    return str(uuid.uuid5(PASSBOLT_NAMESPACE, name))


RESOURCE_TYPE_IDS: dict[str, str] = {resource_type.slug: resource_type.id for resource_type in RESOURCE_TYPES_512}


@dataclass(frozen=True)
class Plan:
    """How much to generate: counts derived from a target size (see :func:`plan_for_size`)."""

    target_bytes: int
    users: int
    rsa_users: int
    groups: int
    secret_rows: int
    action_logs: int
    real_secret_limit: int
    manifest_resources_per_user: int


def plan_for_size(
    target_bytes: int = DEFAULT_SIZE,
    *,
    real_secret_limit: int = DEFAULT_REAL_SECRET_LIMIT,
    manifest_resources_per_user: int = DEFAULT_MANIFEST_RESOURCES_PER_USER,
) -> Plan:
    """Return the counts for about ``target_bytes`` of row data (roughly what a dump of it holds).

    About half the size goes to secrets, a quarter to action logs and their history
    rows, the rest to everything else. Users grow with the square root of the size.
    Raises ValueError for a size below 1 MB.
    """
    if target_bytes < MEGABYTE:
        raise ValueError("the sandbox needs at least 1 MB")
    megabytes = target_bytes / MEGABYTE
    users = min(2000, max(8, int(6 + 12 * math.sqrt(megabytes))))
    return Plan(
        target_bytes=target_bytes,
        users=users,
        rsa_users=min(3, max(1, users // 12)),
        groups=max(3, users // 6),
        secret_rows=max(40, int(target_bytes * 0.50 / BYTES_PER_SECRET)),
        action_logs=max(50, int(target_bytes * 0.20 / BYTES_PER_ACTION_LOG)),
        real_secret_limit=real_secret_limit,
        manifest_resources_per_user=manifest_resources_per_user,
    )


@dataclass
class User:
    """A generated passbolt user. ``key`` is None for users who never completed setup."""

    index: int
    id: str
    profile_id: str
    gpgkey_id: str
    username: str
    first_name: str
    last_name: str
    role: str
    active: bool
    deleted: bool
    disabled: dt.datetime | None
    created: dt.datetime
    last_logged_in: dt.datetime | None
    passphrase: str
    has_avatar: bool
    locale: str | None
    key: KeyPair | None = None

    @property
    def can_read(self) -> bool:
        """True when the user is active, not deleted and has a key: only they get secrets."""
        return self.active and not self.deleted and self.key is not None


@dataclass
class Group:
    """A group: its members (user indexes) and which of them manage it."""

    id: str
    name: str
    members: list[int]
    managers: set[int]
    created: dt.datetime


@dataclass
class Folder:
    """A personal folder of one user; v5 folders carry encrypted metadata instead of a name."""

    id: str
    owner: int
    name: str
    v5: bool
    created: dt.datetime
    metadata: str | None = None


@dataclass
class Resource:
    """A resource, who can read it, and its plaintext secret (what every reader decrypts)."""

    id: str
    revision_id: str
    owner: int
    type_slug: str
    name: str
    username: str | None
    uri: str | None
    description: str | None
    plaintext: str
    readers: list[int]
    permissions: list[tuple[str, str, int]]  # (aro, aro id, type)
    folder_of_owner: str | None
    created: dt.datetime
    modified: dt.datetime
    pool_index: int | None = None  # set for bulk resources whose secrets come from the pool
    metadata: str | None = None
    metadata_key_type: str | None = None
    metadata_key_id: str | None = None

    @property
    def v5(self) -> bool:
        """True for passbolt 5 resource types (encrypted metadata)."""
        return self.type_slug.startswith("v5-")


@dataclass
class Instance:
    """Everything generated for one sandbox, before it is written anywhere."""

    seed: int
    plan: Plan
    domain: str
    base_url: str
    installed: dt.datetime
    server_key: KeyPair
    metadata_key: KeyPair
    metadata_key_id: str
    role_ids: dict[str, str]
    users: list[User]
    groups: list[Group]
    folders: list[Folder]
    resources: list[Resource]
    smtp_settings: dict[str, Any]
    jwt_secret_seed: int
    pool_plaintexts: dict[str, list[str]] = field(default_factory=dict)
    _certificates: dict[int, pysequoia.Cert] = field(default_factory=dict, repr=False)
    _pool_messages: dict[tuple[int, str, int], str] = field(default_factory=dict, repr=False)

    def certificate(self, user_index: int) -> pysequoia.Cert:
        """Return the pysequoia certificate of a user (cached)."""
        cert = self._certificates.get(user_index)
        if cert is None:
            key = self.users[user_index].key
            assert key is not None
            cert = key.certificate()
            self._certificates[user_index] = cert
        return cert

    def secret_message(self, resource: Resource, user_index: int) -> str:
        """Return the secrets.data message of ``resource`` for one reader."""
        if resource.pool_index is None:
            return openpgp.encrypt(resource.plaintext, [self.certificate(user_index)])
        key = (user_index, resource.type_slug, resource.pool_index)
        message = self._pool_messages.get(key)
        if message is None:
            message = openpgp.encrypt(resource.plaintext, [self.certificate(user_index)])
            self._pool_messages[key] = message
        return message


def _timestamp(start: dt.datetime, rng: random.Random, span_days: float) -> dt.datetime:
    return start + dt.timedelta(seconds=int(rng.random() * span_days * 86400))


def _passphrase(rng: random.Random) -> str:
    return "-".join(rng.choice(content.WORDS) for _ in range(4)) + f"-{rng.randint(10, 99)}"


def _make_users(rng: random.Random, plan: Plan, domain: str, installed: dt.datetime) -> list[User]:
    users: list[User] = []
    taken: set[str] = set()
    for index in range(plan.users):
        first = rng.choice(content.FIRST_NAMES)
        last = rng.choice(content.LAST_NAMES)
        local = f"{first}.{last}".lower().replace(" ", "")
        name = local
        suffix = 2
        while name in taken:
            name = f"{local}{suffix}"
            suffix += 1
        taken.add(name)
        created = _timestamp(installed, rng, 30 if index < 3 else 700)
        # The first users are the administrators and are always usable; later ones vary.
        roll = rng.random()
        active = index < 3 or roll > 0.05
        deleted = index >= 3 and 0.05 < roll < 0.08
        disabled = _timestamp(created, rng, 60) if index >= 3 and 0.08 < roll < 0.10 else None
        users.append(
            User(
                index=index,
                id=content.make_uuid(rng),
                profile_id=content.make_uuid(rng),
                gpgkey_id=content.make_uuid(rng),
                username=f"{name}@{domain}",
                first_name=first,
                last_name=last,
                role="admin" if index < 2 else "user",
                active=active,
                deleted=deleted,
                disabled=disabled,
                created=created,
                last_logged_in=_timestamp(created, rng, 90) if active and not deleted else None,
                passphrase=_passphrase(rng),
                has_avatar=rng.random() < 0.6,
                locale=rng.choice((None, None, "en-UK", "fr-FR", "de-DE", "es-ES", "ja-JP")),
            )
        )
    return users


def _make_keys(users: list[User], plan: Plan, s2k_coded_count: int) -> None:
    # Spread the RSA users over the list, deterministically.
    rsa_every = max(1, len(users) // max(1, plan.rsa_users))
    rsa_done = 0
    for user in users:
        if not user.active:
            continue  # a user who never finished setup has no key yet
        shape: openpgp.KeyShape = "ecc"
        if rsa_done < plan.rsa_users and user.index % rsa_every == rsa_every - 1:
            shape = "rsa"
            rsa_done += 1
        user.key = openpgp.generate_key_pair(
            f"{user.first_name} {user.last_name} <{user.username}>",
            user.passphrase,
            shape=shape,
            rsa_bits=2048,
            created=int(user.created.replace(tzinfo=dt.timezone.utc).timestamp()),
            s2k_coded_count=s2k_coded_count,
        )


def _make_groups(rng: random.Random, plan: Plan, users: list[User], installed: dt.datetime) -> list[Group]:
    readers = [user.index for user in users if user.can_read]
    groups: list[Group] = []
    for index in range(plan.groups):
        base = content.GROUP_NAMES[index % len(content.GROUP_NAMES)]
        name = base if index < len(content.GROUP_NAMES) else f"{base} {index // len(content.GROUP_NAMES) + 1}"
        size = min(len(readers), rng.randint(2, 12))
        members = sorted(rng.sample(readers, size))
        managers = set(rng.sample(members, 1 if size < 6 else 2))
        groups.append(Group(content.make_uuid(rng), name, members, managers, _timestamp(installed, rng, 365)))
    return groups


def _resource_plaintext(rng: random.Random, slug: str, password: str, description: str) -> str:
    """Return the decrypted secrets.data for a resource type (passbolt-formats.md §3)."""
    if slug in ("password-string", "v5-password-string"):
        return password
    if slug == "password-and-description":
        return json.dumps({"password": password, "description": description})
    if slug == "totp":
        return json.dumps({"totp": content.make_totp(rng)})
    if slug == "password-description-totp":
        return json.dumps({"password": password, "description": description, "totp": content.make_totp(rng)})
    if slug == "v5-default":
        return json.dumps({"object_type": "PASSBOLT_SECRET_DATA", "password": password, "description": description})
    if slug == "v5-default-with-totp":
        return json.dumps(
            {
                "object_type": "PASSBOLT_SECRET_DATA",
                "password": password,
                "description": description,
                "totp": content.make_totp(rng),
            }
        )
    if slug == "v5-totp-standalone":
        return json.dumps({"object_type": "PASSBOLT_SECRET_DATA", "totp": content.make_totp(rng)})
    if slug == "v5-note":
        return json.dumps({"object_type": "PASSBOLT_SECRET_DATA", "description": description})
    raise ValueError(f"no plaintext shape for resource type {slug}")


def _resource_metadata(resource: Resource) -> str:
    """Return the cleartext v5 resource metadata JSON (passbolt-formats.md §4)."""
    return json.dumps(
        {
            "object_type": "PASSBOLT_RESOURCE_METADATA",
            "resource_type_id": RESOURCE_TYPE_IDS[resource.type_slug],
            "name": resource.name,
            "username": resource.username,
            "uris": [resource.uri] if resource.uri else [],
            "description": resource.description,
            "autofill_mappings": None,
            "custom_fields": None,
            "color": None,
            "icon": None,
        }
    )


def _make_folders(rng: random.Random, users: list[User], count: int) -> list[Folder]:
    owners = [user.index for user in users if user.can_read]
    folders = []
    for _ in range(count):
        owner = rng.choice(owners)
        name = rng.choice(content.FOLDER_NAMES)
        created = _timestamp(users[owner].created, rng, 200)
        folders.append(Folder(content.make_uuid(rng), owner, name, rng.random() < 0.4, created))
    return folders


def _make_resources(
    rng: random.Random, plan: Plan, users: list[User], groups: list[Group], folders: list[Folder]
) -> tuple[list[Resource], dict[str, list[str]]]:
    readers_pool = [user.index for user in users if user.can_read]
    folders_of: dict[int, list[str]] = {}
    for folder in folders:
        folders_of.setdefault(folder.owner, []).append(folder.id)
    pool_plaintexts: dict[str, list[str]] = {}
    resources: list[Resource] = []
    secret_rows = 0
    while secret_rows < plan.secret_rows:
        owner = rng.choice(readers_pool)
        v5 = rng.random() < 0.4
        slug = rng.choices(V5_TYPES if v5 else V4_TYPES, V5_WEIGHTS if v5 else V4_WEIGHTS)[0]
        service = rng.choice(content.SERVICES)
        environment = rng.choice(content.ENVIRONMENTS)
        name = f"{service} {environment}"
        host = f"{service.lower().replace('.', '').replace(' ', '')}.{environment}.{rng.choice(content.WORDS)}.example.net"
        account = rng.choice(content.ACCOUNT_NAMES)
        description = content.make_sentence(rng, rng.randint(3, 12))
        has_username = slug not in ("totp", "v5-totp-standalone", "v5-note")
        permissions: list[tuple[str, str, int]] = [("User", users[owner].id, 15)]
        readers = {owner}
        share = rng.random()
        if share > 0.45 and groups:
            group = rng.choice(groups)
            permissions.append(("Group", group.id, rng.choice((1, 7))))
            readers.update(group.members)
        if share > 0.80:
            for other in rng.sample(readers_pool, min(len(readers_pool), rng.randint(1, 4))):
                if other not in readers:
                    permissions.append(("User", users[other].id, rng.choice((1, 1, 7, 15))))
                    readers.add(other)
        created = _timestamp(users[owner].created, rng, 300)
        bulk = secret_rows + len(readers) > plan.real_secret_limit
        pool_index = rng.randrange(POOL_SIZE) if bulk else None
        if bulk:
            # A bulk resource's secret is one of a few pooled plaintexts of its type.
            pool = pool_plaintexts.setdefault(slug, [])
            while len(pool) <= pool_index:  # type: ignore[operator]
                pool.append(_resource_plaintext(rng, slug, content.make_password(rng), description))
            plaintext = pool[pool_index]  # type: ignore[index]
        else:
            plaintext = _resource_plaintext(rng, slug, content.make_password(rng), description)
        owner_folders = folders_of.get(owner)
        folder = rng.choice(owner_folders) if owner_folders and rng.random() < 0.5 else None
        resources.append(
            Resource(
                id=content.make_uuid(rng),
                revision_id=content.make_uuid(rng),
                owner=owner,
                type_slug=slug,
                name=name,
                username=account if has_username else None,
                uri=f"https://{host}/" if slug != "v5-note" else None,
                description=description if slug in ("password-string", "v5-password-string") or v5 else None,
                plaintext=plaintext,
                readers=sorted(readers),
                permissions=permissions,
                folder_of_owner=folder,
                created=created,
                modified=_timestamp(created, rng, 60),
                pool_index=pool_index,
            )
        )
        secret_rows += len(readers)
    return resources, pool_plaintexts


def build_instance(
    seed: int,
    plan: Plan,
    *,
    domain: str = "example.com",
    s2k_coded_count: int = openpgp.DEFAULT_S2K_CODED_COUNT,
    server_key_shape: openpgp.KeyShape = "rsa",
    progress: Callable[[str], None] | None = None,
) -> Instance:
    """Draw a whole instance from ``seed``: users with key pairs, groups, folders, resources.

    Encrypts the v5 metadata of resources and folders now; secrets are encrypted
    while their rows are produced (:func:`table_rows`). Returns the Instance.
    Raises OpenPGPError when a key cannot be generated.
    """
    rng = random.Random(seed)
    say = progress or (lambda message: None)
    installed = dt.datetime(2022, 3, 1, 9, 0, 0) + dt.timedelta(days=rng.randint(0, 300))
    base_url = f"https://passbolt.{domain}"
    say("generating the server key")
    server_key = openpgp.generate_key_pair(
        f"Passbolt Server Key <admin@{domain}>",
        "",  # passbolt's server key has no passphrase (passbolt.gpg.serverKey has none to give)
        shape=server_key_shape,
        rsa_bits=3072,
        created=int(installed.replace(tzinfo=dt.timezone.utc).timestamp()),
    )
    metadata_created = installed + dt.timedelta(days=rng.randint(400, 500))
    metadata_key = openpgp.generate_key_pair(
        "Passbolt Shared Metadata Key <no-reply@passbolt.com>",
        "",
        created=int(metadata_created.replace(tzinfo=dt.timezone.utc).timestamp()),
    )
    role_ids = {role.name: content.make_uuid(rng) for role in ROLES_512}
    users = _make_users(rng, plan, domain, installed)
    say(f"generating {sum(1 for user in users if user.active)} user key pairs")
    _make_keys(users, plan, s2k_coded_count)
    groups = _make_groups(rng, plan, users, installed)
    folders = _make_folders(rng, users, max(4, plan.secret_rows // 60))
    resources, pool_plaintexts = _make_resources(rng, plan, users, groups, folders)
    smtp_settings = {
        "host": f"smtp.{domain}",
        "port": 587,
        "tls": True,
        "client": None,
        "username": f"passbolt@{domain}",
        "password": content.make_password(rng),
        "sender_email": f"passbolt@{domain}",
        "sender_name": "Passbolt",
        "source": "db",
    }
    instance = Instance(
        seed=seed,
        plan=plan,
        domain=domain,
        base_url=base_url,
        installed=installed,
        server_key=server_key,
        metadata_key=metadata_key,
        metadata_key_id=content.make_uuid(rng),
        role_ids=role_ids,
        users=users,
        groups=groups,
        folders=folders,
        resources=resources,
        smtp_settings=smtp_settings,
        jwt_secret_seed=rng.getrandbits(64),
        pool_plaintexts=pool_plaintexts,
    )
    say(f"encrypting metadata of {sum(1 for resource in resources if resource.v5)} v5 resources")
    metadata_cert = metadata_key.certificate()
    for resource in resources:
        if not resource.v5:
            continue
        shared = len(resource.readers) > 1
        resource.metadata_key_type = "shared_key" if shared else "user_key"
        resource.metadata_key_id = instance.metadata_key_id if shared else users[resource.owner].gpgkey_id
        recipient = metadata_cert if shared else instance.certificate(resource.owner)
        resource.metadata = openpgp.encrypt(_resource_metadata(resource), [recipient])
    for folder in folders:
        if folder.v5:
            cleartext = json.dumps(
                {
                    "object_type": "PASSBOLT_FOLDER_METADATA",
                    "name": folder.name,
                    "color": None,
                    "description": None,
                    "icon": None,
                }
            )
            folder.metadata = openpgp.encrypt(cleartext, [instance.certificate(folder.owner)])
    return instance


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRows:
    """One table's rows: column names and an iterable of value tuples in that order."""

    table: str
    columns: tuple[str, ...]
    rows: Iterator[tuple[Any, ...]]


def _server_signer(instance: Instance) -> pysequoia.PySigner:
    return pysequoia.Tsk.from_bytes(instance.server_key.private_armored.encode("ascii")).signer()


def metadata_private_key_cleartext(instance: Instance) -> str:
    """Return the cleartext of a metadata_private_keys.data value (passbolt-formats.md §5)."""
    return json.dumps(
        {
            "object_type": "PASSBOLT_METADATA_PRIVATE_KEY",
            "domain": instance.base_url,
            "fingerprint": instance.metadata_key.fingerprint,
            "armored_key": instance.metadata_key.private_armored,
            "passphrase": "",
        }
    )


def table_rows(instance: Instance) -> Iterator[TableRows]:
    """Yield the rows of every table the sandbox fills, table by table, deterministically ordered.

    Secrets are encrypted while their rows are produced. Tables not listed stay empty
    (account recovery, directory sync, SSO, SCIM: Pro features a CE instance never fills).
    """
    rng = random.Random(instance.seed ^ 0x5EED)
    users = instance.users
    installed = instance.installed
    admin = users[0]

    def uid() -> str:
        return content.make_uuid(rng)

    yield TableRows(
        "phinxlog",
        ("version", "migration_name", "start_time", "end_time", "breakpoint"),
        iter(
            [
                (
                    migration.version,
                    migration.name,
                    installed + dt.timedelta(seconds=index),
                    installed + dt.timedelta(seconds=index + 1),
                    0,
                )
                for index, migration in enumerate(PHINXLOG_512)
            ]
        ),
    )
    yield TableRows(
        "roles",
        ("id", "name", "description", "created", "modified"),
        iter(
            [
                (instance.role_ids[role.name], role.name, role.description, role.created, role.modified)
                for role in ROLES_512
            ]
        ),
    )
    yield TableRows(
        "resource_types",
        ("id", "slug", "name", "description", "definition", "created", "modified"),
        iter(
            [
                (rt.id, rt.slug, rt.name, rt.description, json.dumps(rt.definition), installed, installed)
                for rt in RESOURCE_TYPES_512
            ]
        ),
    )
    yield TableRows(
        "users",
        ("id", "role_id", "username", "active", "deleted", "disabled", "last_logged_in", "created", "modified"),
        iter(
            [
                (
                    user.id,
                    instance.role_ids[user.role],
                    user.username,
                    int(user.active),
                    int(user.deleted),
                    user.disabled,
                    user.last_logged_in,
                    user.created,
                    user.created,
                )
                for user in users
            ]
        ),
    )
    yield TableRows(
        "profiles",
        ("id", "user_id", "first_name", "last_name", "created", "modified"),
        iter([(u.profile_id, u.id, u.first_name, u.last_name, u.created, u.created) for u in users]),
    )
    yield TableRows(
        "avatars",
        ("id", "data", "profile_id", "created", "modified"),
        iter(
            [
                (uid(), content.make_avatar(random.Random(f"{instance.seed}-{u.id}")), u.profile_id, u.created, u.created)
                for u in users
                if u.has_avatar
            ]
        ),
    )
    gpgkey_rows = []
    for user in users:
        if user.key is None:
            continue
        key_created = dt.datetime.fromtimestamp(user.key.created, dt.timezone.utc).replace(tzinfo=None)
        gpgkey_rows.append(
            (
                user.gpgkey_id,
                user.id,
                user.key.public_armored,
                user.key.bits,
                user.key.uid,
                user.key.key_id,
                user.key.fingerprint,
                user.key.algorithm,
                None,
                key_created,
                0,
                user.created,
                user.created,
            )
        )
    yield TableRows(
        "gpgkeys",
        (
            "id", "user_id", "armored_key", "bits", "uid", "key_id", "fingerprint", "type",
            "expires", "key_created", "deleted", "created", "modified",
        ),
        iter(gpgkey_rows),
    )
    yield TableRows(
        "groups",
        ("id", "name", "deleted", "created", "modified", "created_by", "modified_by"),
        iter([(g.id, g.name, 0, g.created, g.created, admin.id, admin.id) for g in instance.groups]),
    )
    yield TableRows(
        "groups_users",
        ("id", "group_id", "user_id", "is_admin", "created"),
        iter(
            [
                (uid(), g.id, users[member].id, int(member in g.managers), g.created)
                for g in instance.groups
                for member in g.members
            ]
        ),
    )
    yield from _settings_rows(instance, uid)
    yield from _metadata_rows(instance, uid)
    yield TableRows(
        "folders",
        ("id", "name", "metadata", "metadata_key_id", "metadata_key_type", "created", "modified", "created_by", "modified_by"),
        iter(
            [
                (
                    f.id,
                    None if f.v5 else f.name,
                    f.metadata,
                    users[f.owner].gpgkey_id if f.v5 else None,
                    "user_key" if f.v5 else None,
                    f.created,
                    f.created,
                    users[f.owner].id,
                    users[f.owner].id,
                )
                for f in instance.folders
            ]
        ),
    )
    yield TableRows(
        "folders_history",
        ("id", "folder_id", "name"),
        iter([(uid(), f.id, f.name) for f in instance.folders]),
    )
    yield TableRows(
        "resources",
        (
            "id", "name", "username", "uri", "description", "metadata", "metadata_key_id", "metadata_key_type",
            "deleted", "expired", "created", "modified", "created_by", "modified_by", "resource_type_id",
        ),
        (
            (
                r.id,
                None if r.v5 else r.name,
                None if r.v5 else r.username,
                None if r.v5 else r.uri,
                None if r.v5 else r.description,
                r.metadata,
                r.metadata_key_id,
                r.metadata_key_type,
                0,
                None,
                r.created,
                r.modified,
                users[r.owner].id,
                users[r.owner].id,
                RESOURCE_TYPE_IDS[r.type_slug],
            )
            for r in instance.resources
        ),
    )
    yield TableRows(
        "secret_revisions",
        ("id", "resource_id", "resource_type_id", "deleted", "created", "modified", "created_by", "modified_by"),
        (
            (r.revision_id, r.id, RESOURCE_TYPE_IDS[r.type_slug], None, r.modified, r.modified, users[r.owner].id, users[r.owner].id)
            for r in instance.resources
        ),
    )
    permission_rows: list[tuple[Any, ...]] = []

    def permissions() -> Iterator[tuple[Any, ...]]:
        for r in instance.resources:
            for aro, aro_id, kind in r.permissions:
                row = (uid(), "Resource", r.id, aro, aro_id, kind, r.created, r.created)
                permission_rows.append(row[:6])
                yield row
        for f in instance.folders:
            row = (uid(), "Folder", f.id, "User", users[f.owner].id, 15, f.created, f.created)
            permission_rows.append(row[:6])
            yield row

    yield TableRows(
        "permissions",
        ("id", "aco", "aco_foreign_key", "aro", "aro_foreign_key", "type", "created", "modified"),
        permissions(),
    )
    yield TableRows(
        "permissions_history",
        ("id", "aco", "aco_foreign_key", "aro", "aro_foreign_key", "type"),
        ((uid(),) + row[1:] for row in permission_rows),
    )

    def folder_relations() -> Iterator[tuple[Any, ...]]:
        for f in instance.folders:
            yield (uid(), "Folder", f.id, users[f.owner].id, None, f.created, f.created)
        for r in instance.resources:
            for reader in r.readers:
                parent = r.folder_of_owner if reader == r.owner else None
                yield (uid(), "Resource", r.id, users[reader].id, parent, r.created, r.created)

    yield TableRows(
        "folders_relations",
        ("id", "foreign_model", "foreign_id", "user_id", "folder_parent_id", "created", "modified"),
        folder_relations(),
    )
    secret_ids: list[tuple[str, str, str]] = []  # (secret id, user id, resource id) for the audit tables

    def secrets() -> Iterator[tuple[Any, ...]]:
        for r in instance.resources:
            for reader in r.readers:
                secret_id = uid()
                if len(secret_ids) < 1_000_000:
                    secret_ids.append((secret_id, users[reader].id, r.id))
                yield (
                    secret_id,
                    users[reader].id,
                    r.id,
                    r.revision_id,
                    None,
                    users[r.owner].id,
                    users[r.owner].id,
                    instance.secret_message(r, reader),
                    r.created,
                    r.modified,
                )

    yield TableRows(
        "secrets",
        (
            "id", "user_id", "resource_id", "secret_revision_id", "deleted", "created_by", "modified_by",
            "data", "created", "modified",
        ),
        secrets(),
    )
    yield TableRows(
        "secrets_history",
        ("id", "user_id", "resource_id"),
        ((uid(), user_id, resource_id) for _, user_id, resource_id in secret_ids),
    )
    yield from _activity_rows(instance, rng, uid, secret_ids)


def _settings_rows(instance: Instance, uid: Callable[[], str]) -> Iterator[TableRows]:
    """organization_settings (SMTP encrypted to the server key), account_settings."""
    admin = instance.users[0]
    when = instance.installed + dt.timedelta(days=1)
    smtp = openpgp.encrypt(json.dumps(instance.smtp_settings), [instance.server_key.certificate()])
    plain = {
        "metadataKeys": {
            "allow_usage_of_personal_keys": True,
            "zero_knowledge_key_share": False,
        },
        "metadataTypes": {
            "default_resource_types": "v5",
            "default_folder_type": "v4",
            "default_tag_type": "v4",
            "default_comment_type": "v4",
            "allow_creation_of_v5_resources": True,
            "allow_creation_of_v5_folders": True,
            "allow_creation_of_v5_tags": True,
            "allow_creation_of_v5_comments": True,
            "allow_creation_of_v4_resources": True,
            "allow_creation_of_v4_folders": True,
            "allow_creation_of_v4_tags": True,
            "allow_creation_of_v4_comments": True,
            "allow_v4_v5_upgrade": True,
            "allow_v5_v4_downgrade": False,
        },
        "passwordPolicies": {
            "default_generator": "passphrase",
            "source": "db",
            "external_dictionary_check": True,
        },
    }
    rows = [
        (uid(), uuid5("organization.settings.property.id.smtp"), "smtp", smtp, when, when, admin.id, admin.id)
    ]
    for name, value in plain.items():
        rows.append(
            (uid(), uuid5(f"organization.settings.property.id.{name}"), name, json.dumps(value), when, when, admin.id, admin.id)
        )
    yield TableRows(
        "organization_settings",
        ("id", "property_id", "property", "value", "created", "modified", "created_by", "modified_by"),
        iter(rows),
    )
    yield TableRows(
        "account_settings",
        ("id", "user_id", "property_id", "property", "value", "created", "modified"),
        iter(
            [
                (uid(), u.id, uuid5("account.settings.property.id.locale"), "locale", u.locale, u.created, u.created)
                for u in instance.users
                if u.locale
            ]
        ),
    )


def _metadata_rows(instance: Instance, uid: Callable[[], str]) -> Iterator[TableRows]:
    """metadata_keys, metadata_private_keys (server copy to the server key, user copies), session keys."""
    users = instance.users
    admin = users[0]
    key = instance.metadata_key
    created = dt.datetime.fromtimestamp(key.created, dt.timezone.utc).replace(tzinfo=None)
    yield TableRows(
        "metadata_keys",
        ("id", "fingerprint", "armored_key", "created", "modified", "expired", "deleted", "created_by", "modified_by"),
        iter([(instance.metadata_key_id, key.fingerprint, key.public_armored, created, created, None, None, admin.id, admin.id)]),
    )
    cleartext = metadata_private_key_cleartext(instance)
    server_copy = pysequoia.encrypt(
        cleartext.encode("utf-8"), [instance.server_key.certificate()], _server_signer(instance)
    ).decode("ascii")
    rows = [(uid(), instance.metadata_key_id, None, server_copy, created, created, admin.id, admin.id)]
    for user in users:
        if user.can_read:
            rows.append(
                (
                    uid(),
                    instance.metadata_key_id,
                    user.id,
                    openpgp.encrypt(cleartext, [instance.certificate(user.index)]),
                    created,
                    created,
                    admin.id,
                    admin.id,
                )
            )
    yield TableRows(
        "metadata_private_keys",
        ("id", "metadata_key_id", "user_id", "data", "created", "modified", "created_by", "modified_by"),
        iter(rows),
    )
    session_rows = []
    for user in users:
        if user.can_read and user.index % 3 == 0:
            cache = json.dumps({"object_type": "PASSBOLT_SESSION_KEYS", "session_keys": []})
            when = user.last_logged_in or user.created
            session_rows.append((uid(), user.id, openpgp.encrypt(cache, [instance.certificate(user.index)]), when, when))
    yield TableRows("metadata_session_keys", ("id", "user_id", "data", "created", "modified"), iter(session_rows))


def _activity_rows(
    instance: Instance,
    rng: random.Random,
    uid: Callable[[], str],
    secret_ids: Sequence[tuple[str, str, str]],
) -> Iterator[TableRows]:
    """actions, action_logs, entities_history, secret_accesses, authentication tokens, emails, favorites."""
    users = instance.users
    readers = [u for u in users if u.can_read]
    yield TableRows("actions", ("id", "name"), iter([(uuid5(name), name) for name, _ in ACTIONS]))
    entity_rows: list[tuple[Any, ...]] = []
    access_rows: list[tuple[Any, ...]] = []
    count = instance.plan.action_logs
    start = instance.installed
    span = 900.0

    def logs() -> Iterator[tuple[Any, ...]]:
        for index in range(count):
            name, context = ACTIONS[rng.randrange(len(ACTIONS))]
            user = readers[rng.randrange(len(readers))]
            when = start + dt.timedelta(seconds=int(span * 86400 * index / count) + rng.randrange(3600))
            log_id = uid()
            if "{id}" in context and instance.resources:
                resource = instance.resources[rng.randrange(len(instance.resources))]
                context = context.replace("{id}", resource.id)
                if name == "ResourcesAdd.addPost" or name == "ResourcesUpdate.update":
                    if len(entity_rows) < 2_000_000:
                        entity_rows.append((uid(), log_id, "Resources", resource.id, "C" if name.endswith("addPost") else "U", when))
            if name == "SecretsView.view" and secret_ids and len(access_rows) < 2_000_000:
                secret_id, user_id, resource_id = secret_ids[rng.randrange(len(secret_ids))]
                access_rows.append((uid(), user_id, resource_id, secret_id, when))
                context = f"GET /secrets/resource/{resource_id}.json"
                user_id_for_log = user_id
            else:
                user_id_for_log = user.id
            yield (log_id, user_id_for_log, uuid5(name), context, 1 if rng.random() > 0.02 else 0, when)

    yield TableRows("action_logs", ("id", "user_id", "action_id", "context", "status", "created"), logs())
    yield TableRows(
        "entities_history",
        ("id", "action_log_id", "foreign_model", "foreign_key", "crud", "created"),
        iter(entity_rows),
    )
    yield TableRows("secret_accesses", ("id", "user_id", "resource_id", "secret_id", "created"), iter(access_rows))
    token_rows = []
    for user in users:
        token_rows.append((uid(), uid(), user.id, 0 if user.active else 1, user.created, user.created, "register", None))
        if user.last_logged_in is not None:
            token_rows.append(
                (uid(), uid(), user.id, 0, user.last_logged_in, user.last_logged_in, "login", None)
            )
    yield TableRows(
        "authentication_tokens",
        ("id", "token", "user_id", "active", "created", "modified", "type", "data"),
        iter(token_rows),
    )
    emails = []
    for user in users:
        variables = json.dumps({"body": {"user": {"username": user.username, "profile": {"first_name": user.first_name}}}})
        emails.append(
            (
                user.username,
                "Passbolt",
                f"passbolt@{instance.domain}",
                f"Welcome to passbolt, {user.first_name}!",
                "default",
                "AN/user_register_self",
                "default",
                "",
                "html",
                variables,
                None,
                1,
                0,
                1,
                user.created,
                user.created,
                user.created,
                None,
                None,
            )
        )
    yield TableRows(
        "email_queue",
        (
            "email", "from_name", "from_email", "subject", "config", "template", "layout", "theme", "format",
            "template_vars", "headers", "sent", "locked", "send_tries", "send_at", "created", "modified",
            "attachments", "error",
        ),
        iter(emails),
    )
    favorites = []
    comments = []
    for resource in instance.resources:
        if rng.random() < 0.08:
            favorites.append((uid(), users[resource.owner].id, resource.id, "Resource", resource.modified, resource.modified))
        if rng.random() < 0.02:
            owner = users[resource.owner].id
            comments.append(
                (uid(), None, resource.id, "Resource", content.make_sentence(rng, 6), None, resource.modified, resource.modified, owner, owner, owner)
            )
    yield TableRows("favorites", ("id", "user_id", "foreign_key", "foreign_model", "created", "modified"), iter(favorites))
    yield TableRows(
        "comments",
        ("id", "parent_id", "foreign_key", "foreign_model", "content", "data", "created", "modified", "created_by", "modified_by", "user_id"),
        iter(comments),
    )
