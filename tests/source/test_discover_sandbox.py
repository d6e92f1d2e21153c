"""discover on real sandbox instances: every layout on both engines, broken variants, the Docker path.

The databases are real throwaway MariaDB and PostgreSQL servers; the Docker path
uses a stand-in ``docker`` program (tests/standin_docker.py) that answers
``ps``/``inspect`` from fixture data and runs ``exec``'d commands locally.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker_standin
import pytest
from discovery_builders import server_key

from strongroom.cli.main import main
from strongroom.config.schema import InstanceConfig
from strongroom.sandbox.create import Sandbox, create_sandbox
from strongroom.source.checks import run_checks
from strongroom.source.discovery import discover_instance
from strongroom.source.findings import Severity

HERE = Path(__file__).parent


class Sandboxes:
    """Sandboxes created on first use, one per (engine, layout), kept for the module."""

    def __init__(self, servers: dict[str, object], base: Path) -> None:
        self.servers = servers
        self.base = base
        self.made: dict[tuple[str, str], Sandbox] = {}

    def get(self, engine: str, layout: str) -> Sandbox:
        key = (engine, layout)
        if key not in self.made:
            server = self.servers[engine]
            self.made[key] = create_sandbox(
                database_target=server.target,  # type: ignore[attr-defined]
                root=self.base / f"{engine}-{layout}",
                layout=layout,
                size=1_000_000,
                database_name=f"discover_{layout}",
            )
        return self.made[key]


@pytest.fixture(scope="module")
def sandboxes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    servers = {
        "mariadb": request.getfixturevalue("mariadb_server"),
        "postgresql": request.getfixturevalue("postgresql_server"),
    }
    yield Sandboxes(servers, tmp_path_factory.mktemp("discover-sandboxes"))


@pytest.fixture(autouse=True)
def no_real_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No docker daemon here: a real docker CLI would only add noise. Tests that want one put the stand-in first."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}:/usr/local/bin:/usr/bin:/bin")
    for name in list(os.environ):
        if name.startswith(("DATASOURCES_DEFAULT_", "PASSBOLT_GPG_")):
            monkeypatch.delenv(name)


def hide_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Shadow any installed docker CLI with one that fails, as on a host without docker."""
    fake = tmp_path / "empty-bin" / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)


def copy_root(sandbox: Sandbox, tmp_path: Path) -> Path:
    """A private copy of the sandbox's files, to break without touching the shared one."""
    root = tmp_path / "root"
    shutil.copytree(sandbox.root, root, symlinks=True)
    return root


def rewrite(path: Path, old: str, new: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(0o600)
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
    path.chmod(mode)


def discover_json(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code = main(["discover", "--root", str(root), "--json", "--config", str(root / "no-config.toml"), *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.out + captured.err


def checks_with(result: dict, severity: str) -> dict[str, str]:  # type: ignore[type-arg]
    return {f["check"]: f["message"] for f in result["findings"] if f["severity"] == severity}


EXPECTED_ROLES = {
    "debian": {"passbolt-config", "app-config", "server-key-public", "server-key-private", "jwt-private", "jwt-public", "subscription-key"},
    "source": {"passbolt-config", "app-config", "server-key-public", "server-key-private", "jwt-private", "jwt-public", "subscription-key"},
    "v1": {"passbolt-config", "app-config", "database-config", "email-config", "server-key-public", "server-key-private", "avatars"},
}
EXPECTED_ROLES["rpm"] = EXPECTED_ROLES["debian"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
@pytest.mark.parametrize("layout", ["debian", "rpm", "source", "v1"])
def test_every_layout_and_engine_finds_the_right_set(sandboxes: Sandboxes, engine: str, layout: str) -> None:
    sandbox = sandboxes.get(engine, layout)
    instance = discover_instance(sandbox.root, InstanceConfig(), {})
    assert instance.layout == layout
    assert {item.role for item in instance.backup_set.files} == EXPECTED_ROLES[layout]
    assert instance.backup_set.fingerprint == sandbox.server_fingerprint
    assert instance.version == ("1.6.10" if layout == "v1" else "5.12.0")
    database = instance.database
    assert database is not None
    assert database.database == sandbox.target.database
    assert database.user == sandbox.target.user
    assert database.password == sandbox.target.password
    assert (database.engine == "postgresql") == (engine == "postgresql")
    findings = run_checks(instance)
    errors = {f.check: f.message for f in findings if f.severity is Severity.ERROR}
    assert errors == {}
    passed = {f.check for f in findings if f.severity is Severity.OK}
    assert {"database-reachable", "database-credentials", "database-version", "database-tables",
            "server-key-fingerprint", "server-key-private-matches"} <= passed
    if layout != "v1":
        assert {"jwt-match", "jwt-permissions"} <= passed
    for item in instance.backup_set.files:
        assert item.state().exists, item


def test_cli_reports_a_healthy_instance_without_the_password(
    sandboxes: Sandboxes, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = sandboxes.get("mariadb", "debian")
    code, result, output = discover_json(sandbox.root, capsys)
    assert code == 0, checks_with(result, "error")
    assert result["ok"] is True
    assert result["instance"]["backup_set"]["database"]["password"] == "set"
    assert sandbox.target.password not in output
    # The table rendering too.
    assert main(["discover", "--root", str(sandbox.root), "--config", str(sandbox.root / "none.toml"), "--all"]) == 0
    rendered = capsys.readouterr().out
    assert "server-key-private" in rendered and "database-tables" in rendered
    assert sandbox.target.password not in rendered


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _break(root: Path, variant: str, sandbox: Sandbox, tmp_path: Path) -> None:
    gpg = root / "etc/passbolt/gpg"
    config = root / "etc/passbolt/passbolt.php"
    if variant == "fingerprint-mismatch":
        rewrite(config, sandbox.server_fingerprint, server_key("other")[0])
    elif variant == "two-keys":
        public = gpg / "serverkey.asc"
        public.chmod(0o600)
        public.write_text(public.read_text() + server_key("other")[1])
    elif variant == "expired-key":
        fingerprint, public, private = server_key("expired", validity_seconds=1)
        (gpg / "serverkey.asc").chmod(0o600)
        (gpg / "serverkey_private.asc").chmod(0o600)
        (gpg / "serverkey.asc").write_text(public)
        (gpg / "serverkey_private.asc").write_text(private)
        rewrite(config, sandbox.server_fingerprint, fingerprint)
        time.sleep(1.1)
    elif variant == "missing-jwt":
        (root / "etc/passbolt/jwt/jwt.key").unlink()
    elif variant == "world-readable":
        (gpg / "serverkey_private.asc").chmod(0o444)
    elif variant == "wrong-password":
        rewrite(config, f"'{sandbox.target.password}'", "'wrong-password-1234'")
    elif variant == "database-down":
        rewrite(config, f"'{sandbox.target.effective_port}'", f"'{_closed_port()}'")
        rewrite(config, f"'unix_socket' => '{sandbox.target.socket}',", "")
    elif variant == "unparseable":
        config.chmod(0o600)
        config.write_text(config.read_text().replace("return [", "return [\n    'x' => shell_exec('id'),", 1))
    else:
        raise AssertionError(variant)


@pytest.mark.parametrize(
    ("variant", "check", "words"),
    [
        ("fingerprint-mismatch", "server-key-fingerprint", "is not the server key's"),
        ("two-keys", "server-key-single", "holds 2 keys"),
        ("expired-key", "server-key-expiry", "expired on"),
        ("missing-jwt", "jwt-present", "jwt.key is missing"),
        ("world-readable", "private-key-permissions", "readable by every user (mode 0444)"),
        ("wrong-password", "database-credentials", "wrong user or password"),
        ("database-down", "database-reachable", "cannot reach the database server"),
        ("unparseable", "config-readable", "shell_exec() is not understood"),
    ],
)
def test_broken_variants_produce_the_named_finding(
    sandboxes: Sandboxes, tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str, check: str, words: str
) -> None:
    sandbox = sandboxes.get("mariadb", "debian")
    root = copy_root(sandbox, tmp_path)
    _break(root, variant, sandbox, tmp_path)
    code, result, output = discover_json(root, capsys)
    assert code == 11
    errors = checks_with(result, "error")
    assert check in errors, errors
    assert words in errors[check]
    assert sandbox.target.password not in output


def _docker_fixture(tmp_path: Path, sandbox: Sandbox, project: str, *, db_running: bool = True) -> Path:
    return docker_standin.compose_fixture(tmp_path, sandbox, project, db_running=db_running)


def install_standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fixture: Path) -> Path:
    return docker_standin.install(monkeypatch, tmp_path / "empty-bin", fixture)


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_docker_compose_and_running_containers_through_the_docker_cli(
    sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    sandbox = sandboxes.get(engine, "docker")
    log = install_standin(monkeypatch, tmp_path, _docker_fixture(tmp_path, sandbox, "passbolt"))
    code, result, output = discover_json(sandbox.root, capsys)
    errors = checks_with(result, "error")
    assert code == 0, errors
    instance = result["instance"]
    assert instance["layout"] == "docker"
    assert instance["docker"]["passbolt_container"] == "passbolt-passbolt-1"
    assert instance["docker"]["database_container"] == "passbolt-db-1"
    roles = {f["role"]: f for f in instance["backup_set"]["files"]}
    assert roles["server-key-private"]["location"] == str(
        sandbox.root / "var/lib/docker/volumes/passbolt_gpg_volume/_data/serverkey_private.asc"
    )
    assert roles["subscription-key"]["location"] == str(sandbox.root / "opt/passbolt/subscription_key.txt")
    assert {"docker-compose", "docker-env"} <= set(roles)
    assert instance["backup_set"]["fingerprint"] == sandbox.server_fingerprint
    passed = checks_with(result, "ok")
    assert "passbolt-db-1" in passed["database-reachable"]
    assert "database-tables" in passed
    assert sandbox.target.password not in output
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    exec_calls = [call for call in calls if call[0] == "exec" and "passbolt-db-1" in call]
    assert exec_calls, calls
    secret_variable = "PGPASSWORD" if engine == "postgresql" else "MYSQL_PWD"
    assert exec_calls[0][:5] == ["exec", "-i", "-e", secret_variable, "passbolt-db-1"]
    assert all(sandbox.target.password not in " ".join(call) for call in calls)


def test_docker_database_refusing_the_password_is_named(
    sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = sandboxes.get("mariadb", "docker")
    root = copy_root(sandbox, tmp_path)
    rewrite(root / "opt/passbolt/env/passbolt.env", f"DATASOURCES_DEFAULT_PASSWORD={sandbox.target.password}",
            "DATASOURCES_DEFAULT_PASSWORD=wrong-password-1234")
    fixture = _docker_fixture(tmp_path, sandbox, "passbolt")
    data = json.loads(fixture.read_text())
    data["containers"][0]["Config"]["Env"] = [
        line for line in (root / "opt/passbolt/env/passbolt.env").read_text().splitlines() if line
    ]
    fixture.write_text(json.dumps(data))
    install_standin(monkeypatch, tmp_path, fixture)
    code, result, _ = discover_json(root, capsys)
    assert code == 11
    assert "database-credentials" in checks_with(result, "error")


def test_docker_without_the_cli_reads_the_compose_file(
    sandboxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = sandboxes.get("postgresql", "docker")
    code, result, output = discover_json(sandbox.root, capsys, "--no-database")
    assert code == 0, checks_with(result, "error")
    database = result["instance"]["backup_set"]["database"]
    assert (database["engine"], database["host"], database["user"]) == ("postgresql", "db", sandbox.target.user)
    assert result["instance"]["backup_set"]["database_container"] == "passbolt-db-1"
    assert sandbox.target.password not in output
