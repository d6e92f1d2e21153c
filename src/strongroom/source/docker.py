"""passbolt on Docker: its compose file and env files, and running containers through the ``docker`` CLI.

Two sources, used together when both exist:

- the compose file (``docker-compose.yaml`` and the ``env_file`` files it loads,
  with ``${VAR}``/``${VAR:-default}`` interpolation from the compose directory's
  ``.env``): services, environment, volumes, secrets;
- running containers, through ``docker ps`` and ``docker inspect`` (run with
  :mod:`strongroom.execute`): their environment, mounts and compose labels.

From them comes a :class:`DockerSetup`: which service/container is passbolt,
which is the database, passbolt's environment, and where each container path is
on this host (named volumes under ``<root>/var/lib/docker/volumes/<name>/_data``,
bind mounts relative to the compose file, secrets at ``/run/secrets/<name>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from strongroom import execute
from strongroom.dbserver.connection import DatabaseTarget
from strongroom.errors import CommandError, DependencyError, SourceError
from strongroom.source.layouts import under_root

DOCKER_VOLUMES = PurePosixPath("/var/lib/docker/volumes")
DATABASE_IMAGES = ("mariadb", "mysql", "postgres", "percona")


@dataclass(frozen=True)
class DockerSetup:
    """What strongroom learned about a Docker deployment of passbolt.

    ``environment`` is the passbolt container's environment (compose values, env
    files, or the running container's); ``database_environment`` the database
    container's. ``mounts`` maps container paths of the passbolt container to host
    paths (already under the root). ``files`` are the deployment's own files
    (compose file, env files, secret files) by role. ``problems`` are sentences
    about what could not be read.
    """

    project: str | None = None
    compose_file: Path | None = None
    passbolt_service: str | None = None
    database_service: str | None = None
    passbolt_container: str | None = None
    database_container: str | None = None
    image: str | None = None
    database_image: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    database_environment: dict[str, str] = field(default_factory=dict)
    mounts: tuple[tuple[PurePosixPath, Path], ...] = ()
    files: tuple[tuple[str, Path], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def version_from_image(self) -> str | None:
        """passbolt's version from the image tag (``passbolt/passbolt:5.12.0-1-ce`` gives 5.12.0), or None."""
        if not self.image or ":" not in self.image.rsplit("/", 1)[-1]:
            return None
        tag = self.image.rsplit(":", 1)[1]
        match = re.match(r"(\d+\.\d+\.\d+)", tag)
        return match.group(1) if match else None


# -- compose files -------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, variables: Mapping[str, str], *, where: str) -> str:
    """Compose's variable interpolation: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR:+alternative}``, ``$$``.

    Raises SourceError for ``${VAR:?message}`` when VAR is unset or empty.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = variables.get(name)
        if operator is None:
            return value or ""
        empty_counts = operator.startswith(":")
        unset = value is None or (empty_counts and value == "")
        if operator.endswith("-"):
            return argument if unset else str(value)
        if operator.endswith("?"):
            if unset:
                raise SourceError(f"{where}: ${{{name}}} is required: {argument or 'it is not set'}")
            return str(value)
        return "" if unset else argument

    return _INTERPOLATION.sub(replace, text)


def _interpolate_tree(value: Any, variables: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        return interpolate(value, variables, where=where)
    if isinstance(value, list):
        return [_interpolate_tree(item, variables, where) for item in value]
    if isinstance(value, dict):
        return {key: _interpolate_tree(item, variables, where) for key, item in value.items()}
    return value


def parse_env_file(text: str) -> dict[str, str]:
    """The variables of a Docker env file: ``NAME=value`` lines, ``#`` comments, optional quotes and ``export``."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, separator, value = line.partition("=")
        name = name.strip()
        if not separator or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def _project_name(compose: Mapping[str, Any], compose_file: Path, dotenv: Mapping[str, str]) -> str:
    name = compose.get("name") or dotenv.get("COMPOSE_PROJECT_NAME") or compose_file.parent.name
    return re.sub(r"[^a-z0-9_-]", "", str(name).lower())


def _environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    values: dict[str, str] = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            if value is not None:
                values[str(name)] = "true" if value is True else "false" if value is False else str(value)
    else:
        for item in raw:
            name, separator, value = str(item).partition("=")
            if separator:
                values[name] = value
    return values


def _env_file_entries(service: Mapping[str, Any]) -> list[tuple[str, bool]]:
    raw = service.get("env_file")
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    entries: list[tuple[str, bool]] = []
    for item in items:
        if isinstance(item, dict):
            entries.append((str(item.get("path", "")), bool(item.get("required", True))))
        else:
            entries.append((str(item), True))
    return entries


def _image_kind(image: str | None) -> str | None:
    if not image:
        return None
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    if "passbolt" in image.lower() and not any(db in name for db in DATABASE_IMAGES):
        return "passbolt"
    for db in DATABASE_IMAGES:
        if db in name:
            return "database"
    return None


@dataclass
class _ComposeResult:
    project: str
    passbolt_service: str | None
    database_service: str | None
    image: str | None
    database_image: str | None
    environment: dict[str, str]
    database_environment: dict[str, str]
    mounts: list[tuple[PurePosixPath, Path]]
    files: list[tuple[str, Path]]
    problems: list[str]


def read_compose(compose_file: Path, root: Path, environment: Mapping[str, str]) -> _ComposeResult:
    """Read a compose file and the env files it names.

    ``environment`` is the caller's environment (compose interpolates from it and
    the ``.env`` file beside the compose file). Raises SourceError when the compose
    file cannot be read or is not YAML, or names no passbolt service.
    """
    try:
        text = compose_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"cannot read the compose file {compose_file}: {exc.strerror}") from None
    try:
        compose = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise SourceError(
            f"the compose file {compose_file} is not valid YAML{where}: {getattr(exc, 'problem', exc)}",
            hint="check it with 'docker compose config'",
        ) from None
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        raise SourceError(f"the compose file {compose_file} has no services", hint="name the right file with docker_compose_file")
    directory = compose_file.parent
    files: list[tuple[str, Path]] = [("docker-compose", compose_file)]
    problems: list[str] = []
    dotenv: dict[str, str] = {}
    if (directory / ".env").is_file():
        dotenv = parse_env_file((directory / ".env").read_text(encoding="utf-8", errors="replace"))
        files.append(("docker-env-dotenv", directory / ".env"))
    variables = {**dotenv, **environment}
    compose = _interpolate_tree(compose, variables, str(compose_file))
    project = _project_name(compose, compose_file, variables)
    services: dict[str, Any] = compose["services"]

    passbolt_service = next((name for name, s in services.items() if _image_kind(s.get("image")) == "passbolt"), None)
    if passbolt_service is None and "passbolt" in services:
        passbolt_service = "passbolt"
    if passbolt_service is None:
        raise SourceError(
            f"the compose file {compose_file} has no passbolt service (no image named passbolt/passbolt)",
            hint="name the right file with docker_compose_file in the [instance] section",
        )
    passbolt = services[passbolt_service]

    def service_environment(service: Mapping[str, Any], service_name: str) -> dict[str, str]:
        values: dict[str, str] = {}
        for index, (name, required) in enumerate(_env_file_entries(service)):
            path = (directory / name).resolve() if not Path(name).is_absolute() else under_root(root, name)
            if not path.is_file():
                if required:
                    problems.append(f"the env file {name} of service {service_name} does not exist")
                continue
            values.update(parse_env_file(path.read_text(encoding="utf-8", errors="replace")))
            role = "docker-env" if service_name == passbolt_service and index == 0 else f"docker-env-{service_name}-{index}"
            if all(existing != path for _, existing in files):
                files.append((role, path))
        values.update(_environment_of(service))
        return values

    passbolt_environment = service_environment(passbolt, passbolt_service)

    database_service = None
    host = passbolt_environment.get("DATASOURCES_DEFAULT_HOST")
    if host in services:
        database_service = host
    if database_service is None:
        database_service = next((name for name, s in services.items() if _image_kind(s.get("image")) == "database"), None)
    database_environment: dict[str, str] = {}
    database_image = None
    if database_service is not None:
        database_environment = service_environment(services[database_service], database_service)
        database_image = services[database_service].get("image")

    top_volumes: dict[str, Any] = compose.get("volumes") or {}
    top_secrets: dict[str, Any] = compose.get("secrets") or {}
    mounts: list[tuple[PurePosixPath, Path]] = []
    for volume in passbolt.get("volumes") or []:
        source, target = _volume_parts(volume)
        if source is None or target is None:
            continue
        if source.startswith((".", "/", "~")):
            host_path = under_root(root, source) if source.startswith("/") else (directory / source).resolve()
        else:
            declared = top_volumes.get(source) or {}
            name = declared.get("name") if isinstance(declared, dict) else None
            if not name:
                external = isinstance(declared, dict) and declared.get("external")
                name = source if external else f"{project}_{source}"
            host_path = under_root(root, DOCKER_VOLUMES / str(name) / "_data")
        mounts.append((PurePosixPath(target), host_path))
    for secret in passbolt.get("secrets") or []:
        secret_name = secret if isinstance(secret, str) else secret.get("source")
        target = None if isinstance(secret, str) else secret.get("target")
        declared = top_secrets.get(secret_name) or {}
        secret_file = declared.get("file") if isinstance(declared, dict) else None
        if not secret_file:
            continue
        host_path = (directory / secret_file).resolve() if not str(secret_file).startswith("/") else under_root(root, secret_file)
        container_path = PurePosixPath(target) if target and str(target).startswith("/") else PurePosixPath("/run/secrets") / str(target or secret_name)
        mounts.append((container_path, host_path))
        files.append((f"docker-secret-{secret_name}", host_path))
    return _ComposeResult(
        project=project,
        passbolt_service=passbolt_service,
        database_service=database_service,
        image=passbolt.get("image"),
        database_image=database_image,
        environment=passbolt_environment,
        database_environment=database_environment,
        mounts=mounts,
        files=files,
        problems=problems,
    )


def _volume_parts(volume: Any) -> tuple[str | None, str | None]:
    if isinstance(volume, dict):
        return (str(volume["source"]) if volume.get("source") else None, str(volume.get("target") or "") or None)
    parts = str(volume).split(":")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


# -- running containers -----------------------------------------------------------------


def docker_available(program: str = "docker") -> bool:
    """True when the docker CLI is installed."""
    try:
        execute.find_program(program)
    except DependencyError:
        return False
    return True


def inspect_containers(names: list[str] | None = None, *, program: str = "docker") -> list[dict[str, Any]]:
    """``docker inspect`` of the named containers, or of every running one when ``names`` is None.

    Raises CommandError when docker fails (the daemon is down, a name is unknown),
    SourceError when its answer is not JSON.
    """
    if names is None:
        listed = execute.run([program, "ps", "--no-trunc", "--format", "{{.Names}}"], timeout=60, what="listing containers")
        names = [line.strip() for line in listed.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
        if not names:
            return []
    answer = execute.run([program, "inspect", "--type", "container", *names], timeout=60, what="inspecting containers")
    try:
        data = json.loads(answer.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"docker inspect gave an answer that is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise SourceError("docker inspect gave an answer that is not a list of containers")
    return [item for item in data if isinstance(item, dict)]


def _container_name(data: Mapping[str, Any]) -> str:
    return str(data.get("Name", "")).lstrip("/")


def _container_environment(data: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in (data.get("Config") or {}).get("Env") or []:
        name, separator, value = str(item).partition("=")
        if separator:
            values[name] = value
    return values


def _container_labels(data: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((data.get("Config") or {}).get("Labels") or {}).items()}


def _container_mounts(data: Mapping[str, Any], root: Path) -> list[tuple[PurePosixPath, Path]]:
    mounts: list[tuple[PurePosixPath, Path]] = []
    for mount in data.get("Mounts") or []:
        source, destination = mount.get("Source"), mount.get("Destination")
        if source and destination:
            mounts.append((PurePosixPath(destination), under_root(root, source)))
    return mounts


def read_docker_setup(
    root: Path,
    *,
    compose_file: Path | None,
    container: str | None,
    database_container: str | None,
    environment: Mapping[str, str],
    program: str = "docker",
) -> DockerSetup:
    """Read a Docker deployment of passbolt from its compose file and/or its running containers.

    ``compose_file`` is a host path (already under the root). Running containers
    are asked for when the docker CLI is installed: the named ``container``, else
    those whose compose labels match the compose project, else any running
    passbolt image. Returns the DockerSetup. Raises SourceError when neither a
    compose file nor a running passbolt container is found.
    """
    problems: list[str] = []
    result = DockerSetup()
    compose: _ComposeResult | None = None
    if compose_file is not None:
        compose = read_compose(compose_file, root, environment)
        problems.extend(compose.problems)
        result = DockerSetup(
            project=compose.project,
            compose_file=compose_file,
            passbolt_service=compose.passbolt_service,
            database_service=compose.database_service,
            image=compose.image,
            database_image=compose.database_image,
            environment=dict(compose.environment),
            database_environment=dict(compose.database_environment),
            mounts=tuple(compose.mounts),
            files=tuple(compose.files),
        )
    running: list[dict[str, Any]] = []
    if container is not None or docker_available(program):
        try:
            running = inspect_containers([container] if container else None, program=program)
        except (CommandError, DependencyError) as exc:
            if container is not None:
                raise SourceError(f"cannot inspect the container {container}: {exc.message}",
                                  hint="is it running? check 'docker ps'") from None
            problems.append(f"the docker CLI did not answer, only the compose file was read: {exc.message.splitlines()[0]}")
    passbolt_data = _pick_container(running, container, result, kind="passbolt")
    if passbolt_data is not None:
        labels = _container_labels(passbolt_data)
        result = DockerSetup(
            project=labels.get("com.docker.compose.project", result.project),
            compose_file=result.compose_file,
            passbolt_service=labels.get("com.docker.compose.service", result.passbolt_service),
            database_service=result.database_service,
            passbolt_container=_container_name(passbolt_data),
            image=str((passbolt_data.get("Config") or {}).get("Image") or result.image or "") or None,
            database_image=result.database_image,
            # The running container's environment is what passbolt really uses.
            environment={**result.environment, **_container_environment(passbolt_data)},
            database_environment=result.database_environment,
            mounts=tuple(_container_mounts(passbolt_data, root)) or result.mounts,
            files=result.files,
        )
    if compose is None and passbolt_data is None:
        raise SourceError(
            "no passbolt compose file and no running passbolt container found",
            hint="name the compose file (docker_compose_file) or the container (docker_container) "
            "in the [instance] section",
        )
    database_data = _pick_database_container(running, database_container, result)
    if database_data is not None:
        result = DockerSetup(
            **{
                **result.__dict__,
                "database_container": _container_name(database_data),
                "database_image": str((database_data.get("Config") or {}).get("Image") or result.database_image or "") or None,
                "database_environment": {**result.database_environment, **_container_environment(database_data)},
            }
        )
    elif database_container is not None:
        result = DockerSetup(**{**result.__dict__, "database_container": database_container})
    elif result.database_service is not None and result.project is not None and result.passbolt_container is None:
        # Not running (or no docker CLI): compose's default container name.
        result = DockerSetup(**{**result.__dict__, "database_container": f"{result.project}-{result.database_service}-1"})
    return DockerSetup(**{**result.__dict__, "problems": tuple(problems)})


def _pick_container(
    running: list[dict[str, Any]], name: str | None, known: DockerSetup, *, kind: str
) -> dict[str, Any] | None:
    if name is not None:
        return next((c for c in running if _container_name(c) == name), None)
    for data in running:
        labels = _container_labels(data)
        if (
            known.project is not None
            and labels.get("com.docker.compose.project") == known.project
            and labels.get("com.docker.compose.service") == known.passbolt_service
        ):
            return data
    if known.project is None:
        return next((c for c in running if _image_kind((c.get("Config") or {}).get("Image")) == kind), None)
    return None


def _pick_database_container(
    running: list[dict[str, Any]], name: str | None, known: DockerSetup
) -> dict[str, Any] | None:
    if name is not None:
        return next((c for c in running if _container_name(c) == name), None)
    for data in running:
        labels = _container_labels(data)
        if known.project is not None and labels.get("com.docker.compose.project") == known.project:
            if known.database_service is not None and labels.get("com.docker.compose.service") == known.database_service:
                return data
    host = known.environment.get("DATASOURCES_DEFAULT_HOST")
    for data in running:
        labels = _container_labels(data)
        if host and (labels.get("com.docker.compose.service") == host or _container_name(data) == host):
            if _image_kind((data.get("Config") or {}).get("Image")) == "database":
                return data
    return None


def read_container_file(container: str, path: PurePosixPath, *, program: str = "docker") -> str:
    """The text of ``path`` inside ``container`` (``docker exec container cat path``).

    Raises SourceError when it cannot be read.
    """
    try:
        answer = execute.run([program, "exec", container, "cat", str(path)], timeout=60, what=f"reading {path} in {container}")
    except (CommandError, DependencyError) as exc:
        raise SourceError(f"cannot read {path} in the container {container}: {exc.message.splitlines()[0]}") from None
    return answer.stdout.decode("utf-8", "replace")


def container_query_command(
    target: DatabaseTarget, container: str, image: str | None, queries: Sequence[str], *, program: str = "docker"
) -> tuple[list[str], dict[str, str]]:
    """The ``docker exec`` command running ``queries`` with the database container's own client, and its environment.

    Rows come out one a line, columns separated by a tab, no headers. The client
    reaches the server on the image's default socket (the host name passbolt uses
    means nothing inside the database container). The password travels as ``-e
    NAME`` with no value: docker copies it from the environment returned here.
    """
    password = target.password or ""
    if target.engine == "postgresql":
        argv = [program, "exec", "-i", "-e", "PGPASSWORD", container, "psql", "-X", "-A", "-t", "-F", "\t",
                "-v", "ON_ERROR_STOP=1", f"--username={target.user}", f"--dbname={target.database}"]
        for query in queries:
            argv += ["-c", query]
        return argv, {"PGPASSWORD": password}
    client = "mysql" if image and "mysql" in image.lower() and "mariadb" not in image.lower() else "mariadb"
    argv = [program, "exec", "-i", "-e", "MYSQL_PWD", container, client, f"--user={target.user}", "--batch",
            "--skip-column-names", "-e", "; ".join(queries), str(target.database)]
    return argv, {"MYSQL_PWD": password}
