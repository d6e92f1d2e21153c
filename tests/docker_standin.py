"""The Docker path in tests: no Docker daemon runs here, so a stand-in ``docker`` takes its place.

:func:`install` puts the stand-in program (``standin_docker.py`` beside this file)
first on PATH; it answers ``ps``/``inspect`` from a fixture file and runs ``exec``'d
commands locally, refusing ``-t`` and ``-e NAME=value``, and logs every call.
:func:`compose_fixture` builds the fixture for a sandbox in the docker layout: a
passbolt container with the compose file's mounts and a database container whose
exec'd clients reach the test's throwaway server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def compose_fixture(directory: Path, sandbox: Any, project: str, *, db_running: bool = True) -> Path:
    """Write the stand-in's answers for ``sandbox`` (docker layout) into ``directory``; return the file."""
    root = sandbox.root
    env_file = (root / "opt/passbolt/env/passbolt.env").read_text()
    environment = [line for line in env_file.splitlines() if line and not line.startswith("#")]
    volumes = "/var/lib/docker/volumes"
    passbolt = {
        "Name": f"/{project}-passbolt-1",
        "State": {"Running": True},
        "Config": {
            "Image": "passbolt/passbolt:5.12.0-1-ce",
            "Env": environment,
            "Labels": {"com.docker.compose.project": project, "com.docker.compose.service": "passbolt"},
        },
        "Mounts": [
            {"Type": "volume", "Name": f"{project}_gpg_volume", "Source": f"{volumes}/{project}_gpg_volume/_data", "Destination": "/etc/passbolt/gpg"},
            {"Type": "volume", "Name": f"{project}_jwt_volume", "Source": f"{volumes}/{project}_jwt_volume/_data", "Destination": "/etc/passbolt/jwt"},
            {"Type": "bind", "Source": "/opt/passbolt/subscription_key.txt", "Destination": "/etc/passbolt/subscription_key.txt"},
        ],
    }
    is_postgresql = sandbox.engine == "postgresql"
    database = {
        "Name": f"/{project}-db-1",
        "State": {"Running": db_running},
        "Config": {
            "Image": "postgres:15" if is_postgresql else "mariadb:10.11",
            "Env": [],
            "Labels": {"com.docker.compose.project": project, "com.docker.compose.service": "db"},
        },
        "Mounts": [],
    }
    target = sandbox.target
    # Inside "the container", the clients find the server as the image's default would.
    fixture = directory / "docker-fixture.json"
    containers = [passbolt] + ([database] if db_running else [])
    fixture.write_text(json.dumps({"containers": containers, **database_access(f"{project}-db-1", sandbox.engine, target.effective_port)}))
    return fixture


def database_access(container: str, engine: str, port: int) -> dict[str, Any]:
    """The fixture keys that let clients exec'd in ``container`` reach a test server on ``port``."""
    if engine == "postgresql":
        return {"exec_env": {container: {"PGHOST": "127.0.0.1", "PGPORT": str(port)}}}
    return {"client_options": {container: ["--host=127.0.0.1", f"--port={port}", "--protocol=TCP"]}}


def install(monkeypatch: pytest.MonkeyPatch, bin_directory: Path, fixture: Path) -> Path:
    """Install the stand-in as ``bin_directory/docker`` (put that directory first on PATH); return its call log."""
    bin_directory.mkdir(parents=True, exist_ok=True)
    program = bin_directory / "docker"
    program.write_text(f"#!{sys.executable}\n" + (HERE / "standin_docker.py").read_text())
    program.chmod(0o755)
    log = bin_directory.parent / "docker-calls.jsonl"
    monkeypatch.setenv("STANDIN_DOCKER_FIXTURE", str(fixture))
    monkeypatch.setenv("STANDIN_DOCKER_LOG", str(log))
    return log
