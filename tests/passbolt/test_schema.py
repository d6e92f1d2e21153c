"""passbolt 5.12's schema: the literal definition, DDL on real servers, describe, compare."""

from __future__ import annotations

import pytest

from strongroom.dbserver import ThrowawayServer
from strongroom.passbolt import schema
from strongroom.passbolt.schema import (
    PHINXLOG_512,
    RESOURCE_TYPES_512,
    ROLES_512,
    TABLES_512,
    Migration,
    compare_schema,
    create_tables,
    describe_database,
    expected_schema,
    migration_level,
    tables_at,
)

# --------------------------------------------------------------------------- the definition


def test_definition_has_53_tables_and_149_migrations() -> None:
    names = [table.name for table in TABLES_512]
    assert len(names) == 53
    assert len(set(names)) == 53
    assert "phinxlog" in names and "users" in names and "secrets" in names
    assert len(PHINXLOG_512) == 149
    versions = [migration.version for migration in PHINXLOG_512]
    assert versions == sorted(versions) and len(set(versions)) == 149
    assert PHINXLOG_512[0] == Migration(20170830064410, "V162InitialMigration")
    assert PHINXLOG_512[-1].name == "V5120AddPartialUniqueIndexOnScimEntries"


def test_seed_data() -> None:
    assert [role.name for role in ROLES_512] == ["admin", "guest", "user"]
    slugs = [resource_type.slug for resource_type in RESOURCE_TYPES_512]
    assert len(slugs) == 11 and "password-string" in slugs and "v5-pin-code" in slugs
    for resource_type in RESOURCE_TYPES_512:
        assert set(resource_type.definition) >= {"resource", "secret"}


def test_table_facts() -> None:
    email_queue = next(table for table in TABLES_512 if table.name == "email_queue")
    identifier = email_queue.column("id")
    assert identifier is not None and identifier.auto_increment and identifier.type == "int(11)"
    assert {t.name for t in TABLES_512 if t.collation == "ascii_general_ci"} == {
        "sso_keys",
        "ui_actions",
        "scim_entries",
    }
    varying = {(t.name, c.name) for t in TABLES_512 for c in t.columns if c.nullable_varies}
    assert len(varying) == 7 and ("gpgkeys", "uid") in varying


def test_postgresql_view() -> None:
    view = expected_schema("postgresql")
    scim = view.table("scim_entries")
    assert scim is not None
    partial = [index for index in scim.indexes if index.where]
    assert [(i.name, i.columns, i.unique) for i in partial] == [
        ("scim_entries_scim_name_active_uniq", ("scim_name", "foreign_model"), True)
    ]
    users = view.table("users")
    assert users is not None and users.primary_key_name == "users_pkey"
    # 'after' is ignored on PostgreSQL: the columns added later are at the end.
    assert [c.name for c in users.columns][-2:] == ["disabled", "last_logged_in"]
    mysql_users = expected_schema("mariadb").table("users")
    assert mysql_users is not None
    assert [c.name for c in mysql_users.columns].index("disabled") < [c.name for c in mysql_users.columns].index(
        "created"
    )
    assert all(len(index.name.encode()) <= 63 for table in view.tables for index in table.indexes)
    mysql = expected_schema("mariadb").table("scim_entries")
    assert mysql is not None and not any(index.where for index in mysql.indexes)


def test_mysql8_hides_display_widths() -> None:
    view = expected_schema("mysql", display_widths=False)
    email_queue = view.table("email_queue")
    assert email_queue is not None
    assert email_queue.column("id").type == "int"  # type: ignore[union-attr]
    assert email_queue.column("sent").type == "tinyint(1)"  # type: ignore[union-attr]
    assert email_queue.column("send_tries").type == "int"  # type: ignore[union-attr]


def test_unknown_engine_is_a_usage_error() -> None:
    from strongroom.errors import UsageError

    with pytest.raises(UsageError):
        expected_schema("oracle")


# --------------------------------------------------------------------------- migration levels


def test_migration_level_of_a_512_database() -> None:
    rows = [(m.version, m.name, None, None, 0) for m in PHINXLOG_512]
    level = migration_level(rows)
    assert level.version == PHINXLOG_512[-1].version and level.applied == 149
    assert level.is_known_release and not level.newer_than_known
    requirement = tables_at(level)
    assert requirement.exact and len(requirement.tables) == 53 and requirement.note is None


def test_migration_level_newer_than_known() -> None:
    rows = [{"version": m.version, "migration_name": m.name} for m in PHINXLOG_512]
    rows.append({"version": 20270101000000, "migration_name": "V600SomethingNew"})
    level = migration_level(rows)
    assert level.newer_than_known and not level.is_known_release
    assert [m.name for m in level.unknown] == ["V600SomethingNew"]
    requirement = tables_at(level)
    assert not requirement.exact and len(requirement.tables) == 53
    assert requirement.note is not None and "newer than passbolt 5.12.0" in requirement.note


def test_migration_level_older_and_gaps() -> None:
    # A 3.x database: stop at the first migration of 4.x-era tables and leave a gap.
    cut = next(i for i, m in enumerate(PHINXLOG_512) if m.name == "V360AddAccountRecoveryTables")
    rows = [m for i, m in enumerate(PHINXLOG_512[:cut]) if i != 3]
    level = migration_level(rows)
    assert [m.version for m in level.missing] == [PHINXLOG_512[3].version]
    requirement = tables_at(level)
    assert not requirement.exact
    assert "users" in requirement.tables and "phinxlog" in requirement.tables
    assert "account_recovery_organization_policies" not in requirement.tables
    assert "metadata_keys" not in requirement.tables
    assert tables_at(migration_level([])).tables == ()


# --------------------------------------------------------------------------- real servers


def test_mariadb_create_describe_compare(mariadb_server: ThrowawayServer) -> None:
    mariadb_server.create_database("passbolt_schema")
    connection = mariadb_server.connect("passbolt_schema")
    try:
        create_tables(connection, "mariadb")
        expected = expected_schema("mariadb")
        actual = describe_database(connection, "mariadb", "passbolt_schema")
        assert len(actual.tables) == 53
        assert compare_schema(expected, actual) == []

        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE `users` MODIFY `username` varchar(200) COLLATE utf8mb4_bin NULL")
            cursor.execute("ALTER TABLE `secrets` DROP INDEX `resource_id`")
            cursor.execute("ALTER TABLE `gpgkeys` ALTER `bits` SET DEFAULT 4096")
            cursor.execute("ALTER TABLE `sso_keys` ENGINE=MyISAM")
            cursor.execute("DROP TABLE `tags`")
            cursor.execute("CREATE TABLE `stray` (`id` int PRIMARY KEY)")
            cursor.execute("ALTER TABLE `email_queue` MODIFY `id` int(11) NOT NULL")
        changed = describe_database(connection, "mariadb", "passbolt_schema")
        differences = compare_schema(expected, changed)
        text = "\n".join(differences)
        assert "table users: column username has type varchar(200), expected varchar(255)" in differences
        assert "table users: column username is NULL-able, expected NOT NULL" in differences
        assert (
            "table users: column username has collation utf8mb4_bin, expected utf8mb4_unicode_ci" in differences
        )
        assert any(d.startswith("table secrets: index resource_id ") and d.endswith("is missing") for d in differences)
        assert "table gpgkeys: column bits has default 4096, expected 2048" in differences
        assert "table sso_keys uses engine MyISAM, expected InnoDB" in differences
        assert "table tags is missing" in differences
        assert "table stray is not expected (extra table)" in differences
        assert "email_queue: column id is not auto-increment" in text
        assert len(differences) == 9, text
    finally:
        connection.close()


def test_mariadb_legacy_nullability(mariadb_server: ThrowawayServer) -> None:
    mariadb_server.create_database("passbolt_legacy")
    connection = mariadb_server.connect("passbolt_legacy")
    try:
        create_tables(connection, "mariadb")
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE `gpgkeys` MODIFY `uid` varchar(769) CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_unicode_ci NOT NULL"
            )
        actual = describe_database(connection, "mariadb", "passbolt_legacy")
        expected = expected_schema("mariadb")
        assert compare_schema(expected, actual) == ["table gpgkeys: column uid is NOT NULL, expected NULL-able"]
        assert compare_schema(expected, actual, allow_legacy_nullability=True) == []
    finally:
        connection.close()


def test_postgresql_create_describe_compare(postgresql_server: ThrowawayServer) -> None:
    postgresql_server.create_database("passbolt_schema")
    connection = postgresql_server.connect("passbolt_schema")
    try:
        create_tables(connection, "postgresql")
        expected = expected_schema("postgresql")
        actual = describe_database(connection, "postgresql", "public")
        assert len(actual.tables) == 53
        assert compare_schema(expected, actual) == []
        scim = actual.table("scim_entries")
        assert scim is not None and any(index.where == "deleted IS NULL" for index in scim.indexes)

        connection.execute('ALTER TABLE "resources" ALTER COLUMN "name" TYPE character varying(100)')
        connection.execute('DROP INDEX "scim_entries_scim_name_active_uniq"')
        connection.execute('CREATE INDEX "scim_entries_scim_name_active_uniq" ON "scim_entries" ("scim_name")')
        connection.execute('ALTER TABLE "users" ALTER COLUMN "active" DROP DEFAULT')
        connection.execute('ALTER TABLE "avatars" DROP COLUMN "data"')
        connection.commit()
        differences = compare_schema(expected, describe_database(connection, "postgresql", "public"))
        assert (
            "table resources: column name has type character varying(100), expected character varying(255)"
            in differences
        )
        assert (
            "table scim_entries: index scim_entries_scim_name_active_uniq is (scim_name), "
            "expected unique (scim_name, foreign_model) where deleted IS NULL" in differences
        )
        assert "table users: column active has default none, expected false" in differences
        assert "table avatars: column data is missing" in differences
        assert len(differences) == 4, differences
    finally:
        connection.close()


def test_engines_do_not_compare_across_families() -> None:
    differences = compare_schema(expected_schema("postgresql"), expected_schema("mariadb"))
    assert differences == ["the database is a mariadb database, expected postgresql"]
    assert schema.MYSQL_FAMILY == {"mariadb", "mysql"}


def test_mariadb_column_order_is_compared(mariadb_server: ThrowawayServer) -> None:
    mariadb_server.create_database("passbolt_order")
    connection = mariadb_server.connect("passbolt_order")
    try:
        create_tables(connection, "mariadb")
        with connection.cursor() as cursor:
            # disabled and last_logged_in swapped: the comparison must say so.
            cursor.execute("ALTER TABLE `users` MODIFY `disabled` datetime NULL DEFAULT NULL AFTER `last_logged_in`")
        actual = describe_database(connection, "mariadb", "passbolt_order")
        assert compare_schema(expected_schema("mariadb"), actual) == [
            "table users: columns are in the order id, role_id, username, active, deleted, last_logged_in, "
            "disabled, created, modified; expected id, role_id, username, active, deleted, disabled, "
            "last_logged_in, created, modified"
        ]
    finally:
        connection.close()
