"""The exception tree and the exit-code table of strongroom.

Every error strongroom raises on purpose is a :class:`StrongroomError`. The CLI
catches that family alone, prints its message (which says what is wrong and what
to do) and exits with the error's code. Anything else is a bug: the CLI prints a
traceback hint and exits with :data:`ExitCode.INTERNAL`.

Third-party errors (database drivers, storage libraries, crypto) are translated
at the boundary where they occur, so callers only ever catch this family::

    StrongroomError                      exit 1
    ├── UsageError                       exit 2   the command line is wrong
    ├── ConfigError                      exit 3   the configuration file is wrong
    ├── DependencyError                  exit 4   a program or package is missing
    ├── CommandError                     exit 5   an external program failed
    ├── SourceError                      exit 6   the passbolt instance cannot be read
    │   └── DatabaseError                exit 6   the database is down, refuses, fails
    ├── StorageError                     exit 7   the storage failed (transient unless said)
    │   ├── ObjectNotFound               exit 7   the object does not exist
    │   ├── PermanentStorageError        exit 7   retrying will not help (denied, bad bucket)
    │   └── NoSpaceError                 exit 7   the storage is full
    ├── RepositoryError                  exit 8   the repository is missing or unusable
    │   ├── IntegrityError               exit 8   an object is damaged, forged or missing
    │   └── LockedError                  exit 9   another run holds the repository lock
    ├── IdentityError                    exit 10  no identity, or not one that opens this data
    ├── CheckFailed                      exit 11  a check found a problem (discover, drill, verify)
    └── StaleError                       exit 12  status: the last backup or drill is too old
    (interrupted by a signal)            exit 130

The table is :class:`ExitCode`; ``strongroom --help`` prints it and
``README.md`` repeats it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit statuses. One table for every verb."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    DEPENDENCY = 4
    COMMAND = 5
    SOURCE = 6
    STORAGE = 7
    REPOSITORY = 8
    LOCKED = 9
    IDENTITY = 10
    CHECK_FAILED = 11
    STALE = 12
    INTERNAL = 70
    INTERRUPTED = 130


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "failure not covered below",
    ExitCode.USAGE: "the command line is wrong",
    ExitCode.CONFIG: "the configuration file is missing or wrong",
    ExitCode.DEPENDENCY: "a required program or package is not installed",
    ExitCode.COMMAND: "an external program (dumper, database server, gpg, ...) failed",
    ExitCode.SOURCE: "the passbolt instance or its database cannot be read",
    ExitCode.STORAGE: "the storage failed (full, unreachable, denied)",
    ExitCode.REPOSITORY: "the repository is missing, damaged or forged",
    ExitCode.LOCKED: "another strongroom run holds the repository lock",
    ExitCode.IDENTITY: "no identity was given, or it cannot open this repository",
    ExitCode.CHECK_FAILED: "a check failed (discover, drill or verify found a problem)",
    ExitCode.STALE: "status: the last backup or drill is older than allowed",
    ExitCode.INTERNAL: "internal error (a bug: please report it)",
    ExitCode.INTERRUPTED: "interrupted by a signal",
}


def exit_code_table() -> str:
    """Return the exit-code table as aligned text lines, for help screens."""
    return "\n".join(f"  {int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items())


class StrongroomError(Exception):
    """Base of every error strongroom raises on purpose.

    The message says what is wrong; ``hint`` says what to do about it. Neither may
    contain a secret: callers mask them before raising (see :mod:`strongroom.execute`).
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(StrongroomError):
    """The command line is wrong (an option missing or contradicting another)."""

    exit_code = ExitCode.USAGE


class ConfigError(StrongroomError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = ExitCode.CONFIG


class DependencyError(StrongroomError):
    """A program or package strongroom needs is not installed."""

    exit_code = ExitCode.DEPENDENCY


class CommandError(StrongroomError):
    """An external program exited non-zero, timed out or could not start.

    ``returncode`` is the exit status (negative: killed by that signal; None: did not
    start or timed out); ``stderr_tail`` the last lines it printed, masked.
    """

    exit_code = ExitCode.COMMAND

    def __init__(
        self,
        message: str,
        *,
        program: str = "",
        returncode: int | None = None,
        stderr_tail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.program = program
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class SourceError(StrongroomError):
    """The passbolt instance cannot be found or read."""

    exit_code = ExitCode.SOURCE


class DatabaseError(SourceError):
    """The database is unreachable, refuses the credentials, or a query or dump failed."""


class StorageError(StrongroomError):
    """The storage failed. Without a more precise subclass it is transient: a retry may help."""

    exit_code = ExitCode.STORAGE
    transient = True


class ObjectNotFound(StorageError):
    """The named object does not exist in the storage."""

    transient = False


class PermanentStorageError(StorageError):
    """The storage refused in a way retrying cannot fix (permission, missing bucket)."""

    transient = False


class NoSpaceError(PermanentStorageError):
    """The storage is full (ENOSPC, quota)."""


class RepositoryError(StrongroomError):
    """The repository is missing, not initialised, of an unknown version, or unusable."""

    exit_code = ExitCode.REPOSITORY


class IntegrityError(RepositoryError):
    """An object is damaged, truncated, forged, or missing where it must exist."""


class LockedError(RepositoryError):
    """Another live run holds the repository lock."""

    exit_code = ExitCode.LOCKED


class IdentityError(StrongroomError):
    """No identity was given, or the one given cannot open this repository's data."""

    exit_code = ExitCode.IDENTITY


class CheckFailed(StrongroomError):
    """A check found a problem: discovery errors, a failed drill check, verify damage."""

    exit_code = ExitCode.CHECK_FAILED


class StaleError(StrongroomError):
    """The last backup or drill is older than the configured limit."""

    exit_code = ExitCode.STALE
