"""The watchdog that cleans up after a dead owner, driven with real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.dbserver.watchdog import is_alive
from strongroom.execute import Running, start


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process leading its own process group, like a server."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _watchdog(directory: Path, grace: float = 2.0) -> Running:
    return start(
        [sys.executable, "-m", "strongroom.dbserver.watchdog", str(directory), str(grace)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        new_session=True,
    )


def _directory(tmp_path: Path) -> Path:
    directory = tmp_path / "server"
    (directory / "data").mkdir(parents=True)
    (directory / "data" / "ibdata1").write_bytes(b"x" * 1024)
    return directory


def _wait_gone(process: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return True
        time.sleep(0.02)
    return False


def test_end_of_file_stops_the_server_and_removes_the_directory(
    tmp_path: Path, victim: subprocess.Popen[bytes]
) -> None:
    directory = _directory(tmp_path)
    with _watchdog(directory) as watchdog:
        watchdog.stdin.write(f"server {victim.pid} {int(signal.SIGTERM)}\n".encode())
        watchdog.stdin.close()  # what the kernel does when the owner dies
        assert watchdog.wait(timeout=10) == 0
    assert _wait_gone(victim)
    assert victim.returncode == -signal.SIGTERM
    assert not directory.exists()


def test_release_leaves_everything_alone(tmp_path: Path, victim: subprocess.Popen[bytes]) -> None:
    directory = _directory(tmp_path)
    with _watchdog(directory) as watchdog:
        watchdog.stdin.write(f"server {victim.pid} {int(signal.SIGTERM)}\nrelease\n".encode())
        watchdog.stdin.close()
        assert watchdog.wait(timeout=10) == 0
    assert victim.poll() is None and is_alive(victim.pid)
    assert directory.exists()


def test_forgotten_process_is_not_touched(tmp_path: Path, victim: subprocess.Popen[bytes]) -> None:
    directory = _directory(tmp_path)
    with _watchdog(directory) as watchdog:
        watchdog.stdin.write(f"server {victim.pid} 15\nforget {victim.pid}\ngarbage line x\nserver nope 15\n".encode())
        watchdog.stdin.close()
        assert watchdog.wait(timeout=10) == 0
    assert victim.poll() is None
    assert not directory.exists()


def test_a_server_ignoring_its_stop_signal_is_killed_with_its_group(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    marker = tmp_path / "child-pid"
    # A shell that ignores SIGTERM, with a child of its own in the same process group.
    stubborn = subprocess.Popen(
        ["sh", "-c", f'trap "" TERM; sleep 300 & echo $! > {marker}; wait; wait'], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 5
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        child = int(marker.read_text())
        started = time.monotonic()
        with _watchdog(directory, grace=0.3) as watchdog:
            watchdog.stdin.write(f"server {stubborn.pid} {int(signal.SIGTERM)}\n".encode())
            watchdog.stdin.close()
            assert watchdog.wait(timeout=10) == 0
        assert _wait_gone(stubborn)
        assert stubborn.returncode == -signal.SIGKILL
        assert time.monotonic() - started < 5
        assert not is_alive(child)
        assert not directory.exists()
    finally:
        stubborn.kill()
        stubborn.wait()


def test_is_alive_treats_zombies_as_dead() -> None:
    process = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while is_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not is_alive(process.pid)  # exited but not yet reaped: a zombie
    process.wait()
    assert not is_alive(process.pid)


def test_unannounced_processes_naming_the_directory_are_killed(tmp_path: Path) -> None:
    directory = _directory(tmp_path)
    # Like an initdb still running, or a server started just before its owner died.
    straggler = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", f"--datadir={directory}/data"], start_new_session=True
    )
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        with _watchdog(directory) as watchdog:
            watchdog.stdin.close()
            assert watchdog.wait(timeout=10) == 0
        assert _wait_gone(straggler)
        assert straggler.returncode == -signal.SIGKILL
        assert bystander.poll() is None
        assert not directory.exists()
    finally:
        for process in (straggler, bystander):
            process.kill()
            process.wait()


def test_processes_naming_matches_paths_inside_the_directory_only(tmp_path: Path) -> None:
    from strongroom.dbserver.watchdog import processes_naming

    directory = tmp_path / "server"
    inside = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{directory}/data"])
    longer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{directory}-other/data"])
    try:
        found = processes_naming(str(directory))
        assert inside.pid in found and longer.pid not in found
    finally:
        for process in (inside, longer):
            process.kill()
            process.wait()
