"""The ``demo`` action: on a fresh machine, show strongroom's whole loop on a sandbox passbolt.

It starts a throwaway database server, creates a sandbox passbolt instance in it,
initialises a repository in a local folder with a newly generated recipient
identity, backs up, changes a few rows as a day of use would, backs up again (to
show that only the changed rows are stored), lists the snapshots, drills the
latest in a second throwaway server (every check of ``strongroom drill``), shows
``strongroom status`` and restores the latest into a folder. Everything
it makes stays in one folder; the throwaway server stops when the demo ends.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage

from strongroom.actions import backup as backup_action
from strongroom.actions import drill as drill_action
from strongroom.actions import init as init_action
from strongroom.actions import restore as restore_action
from strongroom.actions import status as status_action
from strongroom.actions.repository_access import open_repository
from strongroom.actions.snapshots import SnapshotsResult, list_snapshots
from strongroom.config.loading import load_config
from strongroom.dbserver import start_server
from strongroom.dbserver.connection import connect
from strongroom.errors import UsageError
from strongroom.progress import LogReporter, Reporter
from strongroom.sandbox.create import create_sandbox

MARKER = ".strongroom-demo"


@dataclass(frozen=True)
class DemoOptions:
    """Where the demo works and what it builds."""

    directory: Path
    engine: str = "mariadb"
    layout: str = "debian"
    size: int = 5_000_000
    seed: int = 1


@dataclass
class DemoResult:
    """What the demo made and showed."""

    directory: Path
    paths: dict[str, str] = field(default_factory=dict)
    backups: list[dict[str, Any]] = field(default_factory=list)
    snapshots: SnapshotsResult | None = None
    drill: drill_action.DrillResult | None = None
    status: status_action.StatusResult | None = None
    restored_dump_bytes: int = 0
    restored_files: int = 0
    changed_rows: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "directory": str(self.directory),
            "paths": self.paths,
            "backups": self.backups,
            "snapshots": self.snapshots.to_dict() if self.snapshots else None,
            "drill": self.drill.to_dict() if self.drill else None,
            "status": self.status.to_dict() if self.status else None,
            "restored_dump_bytes": self.restored_dump_bytes,
            "restored_files": self.restored_files,
            "changed_rows": self.changed_rows,
            "seconds": round(self.seconds, 3),
            "clean_up": f"rm -rf {self.directory}",
        }


def _prepare_directory(directory: Path) -> None:
    """Create ``directory``; a previous demo's folder is replaced, anything else refused."""
    if directory.exists():
        if (directory / MARKER).exists():
            shutil.rmtree(directory)
        elif any(directory.iterdir()):
            raise UsageError(
                f"{directory} exists and is not a strongroom demo folder",
                hint="name another folder with --directory, or remove it",
            )
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    (directory / MARKER).write_text("made by 'strongroom demo'; safe to remove\n")


def _a_day_of_use(target: Any, engine: str) -> int:
    """Change a few secrets and log some actions, as a day of passbolt use would. Returns rows changed."""
    connection = connect(target)
    try:
        cursor = connection.cursor()
        limit_clause = "LIMIT 25"
        if engine == "postgresql":
            cursor.execute(
                "UPDATE secrets SET modified = modified + interval '1 day' "
                "WHERE id IN (SELECT id FROM secrets ORDER BY id " + limit_clause + ")"
            )
        else:
            cursor.execute("UPDATE secrets SET modified = modified + INTERVAL 1 DAY ORDER BY id " + limit_clause)
        changed = int(cursor.rowcount)
        cursor.close()
        connection.commit()
    finally:
        connection.close()
    return changed


def run(options: DemoOptions, reporter: Reporter | None = None) -> DemoResult:
    """Run the demo in ``options.directory``; return what it made.

    Raises UsageError (the folder holds something else), DependencyError (a database
    server is not installed), and whatever a step raises.
    """
    report = reporter or LogReporter()
    started = time.monotonic()
    directory = options.directory.absolute()
    _prepare_directory(directory)
    result = DemoResult(directory)
    paths = {
        "sandbox root": directory / "passbolt-root",
        "sandbox manifest": directory / "sandbox-manifest.json",
        "configuration": directory / "strongroom.toml",
        "repository": directory / "repository",
        "writer key": directory / "writer.key",
        "identity": directory / "identity.txt",
        "restored": directory / "restored",
        "drill report": directory / "drill-report.md",
    }
    result.paths = {name: str(path) for name, path in paths.items()}

    report.phase(f"starting a throwaway {options.engine} server")
    with start_server(options.engine) as server:
        report.note(f"started a throwaway {options.engine} {server.version} server (it stops when the demo ends)")

        report.phase("creating a sandbox passbolt instance")
        sandbox = create_sandbox(
            database_target=server.target,
            root=paths["sandbox root"],
            layout=options.layout,
            size=options.size,
            seed=options.seed,
            database_name="passbolt",
            manifest_path=paths["sandbox manifest"],
            reporter=report,
        )
        counts = sandbox.manifest["counts"]
        report.note(
            f"sandbox passbolt 5.12 ({options.layout} layout) with {counts['users']} users and "
            f"{sandbox.row_counts.get('secrets', 0)} secrets under {sandbox.root}"
        )

        identity = pyrage.x25519.Identity.generate()
        fd = os.open(paths["identity"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"# strongroom demo restore identity: keep real ones OFF the backup host\n{identity}\n")
        report.note(f"generated a recipient identity in {paths['identity']} (public key {identity.to_public()})")

        report.phase("initialising the repository")
        initialised = init_action.run(
            init_action.InitOptions(
                repository=str(paths["repository"]),
                recipients=(str(identity.to_public()),),
                config_path=paths["configuration"],
                writer_key=paths["writer key"],
                root=sandbox.root,
            )
        )
        report.note(f"repository at {initialised.location}; writer fingerprint {initialised.writer_fingerprint}")
        config = load_config(paths["configuration"])

        first = backup_action.run(config, backup_action.BackupOptions(), report)
        result.backups.append(first.to_dict())
        report.note(f"backup 1: snapshot {first.snapshot.short_id}, stored {first.snapshot.stored_bytes} bytes")

        result.changed_rows = _a_day_of_use(sandbox.target, options.engine)
        second = backup_action.run(config, backup_action.BackupOptions(), report)
        result.backups.append(second.to_dict())
        report.note(
            f"backup 2 after {result.changed_rows} changed rows: snapshot {second.snapshot.short_id}, "
            f"stored {second.snapshot.stored_bytes} bytes"
        )

        assert config.repository is not None
        repository = open_repository(config.repository, identity_file=paths["identity"])
        result.snapshots = list_snapshots(repository)

        report.phase("drilling the latest snapshot")
        result.drill = drill_action.run(
            config,
            drill_action.DrillOptions(identity_file=paths["identity"], config_path=paths["configuration"]),
            report,
        )
        drill_action.write_report(result.drill, paths["drill report"])
        verdict = "passed" if result.drill.passed else "FAILED: " + ", ".join(result.drill.failed_checks)
        report.note(
            f"drill {verdict} ({len(result.drill.checks)} checks, restored in {result.drill.restore_seconds:.1f} s); "
            f"report in {paths['drill report']}"
        )

        result.status = status_action.run(load_config(paths["configuration"]))
        state = "stale" if result.status.stale else "ok"
        report.note(f"status: {state} (last backup and last passed drill are minutes old)")

        report.phase("restoring the latest snapshot")
        restored = restore_action.run(repository, "latest", paths["restored"], reporter=report)
        for item in restored.items:
            if item.kind == "file":
                result.restored_files += 1
            else:
                result.restored_dump_bytes += item.size
        report.note(f"restored {result.restored_files} files and a {result.restored_dump_bytes}-byte dump into {paths['restored']}")
    report.done()
    result.seconds = time.monotonic() - started
    return result
