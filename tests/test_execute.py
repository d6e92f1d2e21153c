"""The subprocess runner: argv only, secrets masked and kept out of argv, clear failures."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from strongroom import execute
from strongroom.errors import CommandError, DependencyError


def test_run_returns_output_and_status() -> None:
    result = execute.run([sys.executable, "-c", "import sys; sys.stdout.write('out'); sys.stderr.write('err')"])
    assert result.returncode == 0
    assert result.stdout == b"out"
    assert result.stderr == "err"


def test_failure_names_program_status_and_masked_stderr_tail() -> None:
    secret = "hunter2-very-secret"
    script = "import os, sys; print('line1', file=sys.stderr); print('password', os.environ['SECRET'], 'rejected', file=sys.stderr); sys.exit(3)"
    with pytest.raises(CommandError) as caught:
        execute.run([sys.executable, "-c", script], env={"SECRET": secret}, secrets=[secret], what="dumping the database")
    error = caught.value
    assert error.returncode == 3
    assert "dumping the database failed" in str(error)
    assert "exited with status 3" in str(error)
    assert "rejected" in error.stderr_tail
    assert secret not in str(error)
    assert execute.MASK in error.stderr_tail


def test_secret_in_argv_is_refused() -> None:
    with pytest.raises(CommandError, match="secret would appear"):
        execute.run(["echo", "--password=topsecret-value"], secrets=["topsecret-value"])


@pytest.mark.parametrize(
    "argument",
    ["--password=secret", "-psecret", "secret", "mysql://user:secret@db/passbolt", "a,secret,b", "--x='secret'"],
)
def test_short_secret_as_a_value_is_refused(argument: str) -> None:
    with pytest.raises(CommandError, match="secret would appear"):
        execute.run(["echo", argument], secrets=["secret"])


def test_short_secret_inside_an_unrelated_word_is_allowed() -> None:
    """A short password such as "secret" must not stop a command because a folder name contains it."""
    argv = ["echo", "--defaults-extra-file=/tmp/strongroom-secret-ab12/client.cnf", "secretive", "topsecrets"]
    assert execute.run(argv, secrets=["secret"]).returncode == 0


def test_long_secret_is_refused_anywhere() -> None:
    with pytest.raises(CommandError, match="secret would appear"):
        execute.run(["echo", "-xprefix-Zq8vR2mT9wLk4-suffix"], secrets=["Zq8vR2mT9wLk4"])


def test_registered_secret_is_masked_everywhere() -> None:
    execute.register_secret("registered-secret-42")
    assert execute.mask("x registered-secret-42 y") == f"x {execute.MASK} y"
    with pytest.raises(CommandError):
        execute.run(["echo", "registered-secret-42"])


def test_missing_program_names_the_package() -> None:
    with pytest.raises(DependencyError) as caught:
        execute.run(["mariadb-install-db-does-not-exist"])
    assert "not installed" in str(caught.value)
    with pytest.raises(DependencyError, match="install mariadb-server"):
        execute.find_program("mariadbd", search_path="/nonexistent")


def test_timeout_is_reported() -> None:
    with pytest.raises(CommandError, match="did not finish in time"):
        execute.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)


def test_killed_program_names_the_signal() -> None:
    with execute.start([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]) as running:
        with pytest.raises(CommandError, match="killed by SIGKILL"):
            running.wait()


def test_start_streams_stdout_and_collects_stderr() -> None:
    script = "import sys\nfor i in range(1000): print(i)\nprint('done', file=sys.stderr)"
    with execute.start([sys.executable, "-c", script]) as running:
        lines = running.stdout.read().splitlines()
        assert running.wait() == 0
    assert len(lines) == 1000
    assert "done" in running.stderr_text()


def test_secret_file_is_private_and_removed() -> None:
    with execute.secret_file("[client]\npassword=abcdefgh\n", name="my.cnf") as path:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.read_text().endswith("password=abcdefgh\n")
    assert not path.exists()
    assert not path.parent.exists()


def test_environment_passes_secrets_without_argv() -> None:
    result = execute.run(
        [sys.executable, "-c", "import os; print(len(os.environ['PGPASSWORD']))"],
        env={"PGPASSWORD": "env-secret-1"},
        secrets=["env-secret-1"],
    )
    assert result.stdout.strip() == b"12"
