"""A tiny guard that removes a throwaway database server when its owner dies.

Run as ``python -m strongroom.dbserver.watchdog DIRECTORY [GRACE]`` in a session of its
own, with its standard input a pipe from the owning process. The owner writes
lines to that pipe:

``server PID SIGNAL``
    watch this server: on the owner's death, send it SIGNAL (its graceful stop),
    then SIGKILL its process group if it has not stopped within GRACE seconds
    (default 5);
``forget PID``
    that server is gone already (it failed to start): do not touch that process id;
``release``
    the owner stopped the server and removed the directory itself: do nothing.

When the pipe reaches end of file without ``release`` (the owner exited, crashed or
was SIGKILLed: the kernel closes its end either way), the watchdog stops every
server it was told about, kills any other process whose arguments name DIRECTORY
(an initialisation still running, a server started an instant before the owner
died), and removes DIRECTORY. It uses only the standard library
and never writes to its inherited stdout or stderr, which may be closed by then.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import time

GRACE_SECONDS = 5.0
POLL_SECONDS = 0.05


def is_alive(pid: int) -> bool:
    """Return True when process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The state follows the command name, which is in parentheses and may hold spaces.
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def stop_server(pid: int, stop_signal: int, grace: float = GRACE_SECONDS) -> None:
    """Send ``stop_signal`` to ``pid``, wait up to ``grace`` seconds, then SIGKILL its group."""
    try:
        os.kill(pid, stop_signal)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(POLL_SECONDS)
    # The server leads its own process group (it was started in a new session):
    # kill whatever of the group is left (PostgreSQL's backends, for instance).
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(POLL_SECONDS)


def processes_naming(directory: str) -> list[int]:
    """Return the ids of live processes (other than this one) with ``directory`` in their arguments.

    The directory's name is random, so this finds exactly the programs started for
    this server: one started an instant before the owner died (not yet announced),
    or an initialisation (initdb, mariadb-install-db and its bootstrap server).
    """
    # The directory itself or a path inside it, never a longer name that merely starts the same.
    pattern = re.compile(re.escape(os.fsencode(directory.rstrip("/"))) + rb"(?:/|$)")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                arguments = handle.read().split(b"\0")
        except OSError:
            continue
        if any(pattern.search(argument) for argument in arguments) and is_alive(int(entry)):
            found.append(int(entry))
    return found


def watch(directory: str, grace: float = GRACE_SECONDS) -> int:
    """Read commands from stdin until end of file; clean up unless released. Returns 0."""
    servers: list[tuple[int, int]] = []
    released = False
    for raw in sys.stdin.buffer:
        words = raw.decode("ascii", "replace").split()
        try:
            if words[:1] == ["server"] and len(words) == 3:
                servers.append((int(words[1]), int(words[2])))
            elif words[:1] == ["forget"] and len(words) == 2:
                servers = [entry for entry in servers if entry[0] != int(words[1])]
            elif words[:1] == ["release"]:
                released = True
                servers.clear()
        except ValueError:
            continue  # a garbled line must not stop the guard
    if released:
        return 0
    for pid, stop_signal in servers:
        stop_server(pid, stop_signal, grace)
    for pid in processes_naming(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    shutil.rmtree(directory, ignore_errors=True)
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``watchdog DIRECTORY [GRACE]``. Returns the exit status."""
    if len(argv) not in (1, 2):
        return 2
    try:
        grace = float(argv[1]) if len(argv) == 2 else GRACE_SECONDS
    except ValueError:
        return 2
    # The owner's terminal and signals are not ours: a Ctrl-C meant for the owner
    # must not kill the guard before it cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return watch(argv[0], grace)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
