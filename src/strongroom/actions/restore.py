"""``restore --to DIR``: extract every component of a snapshot into a folder.

Files get their recorded modes (owners are reported, applied only with
``apply_owners``); database dumps come out as plain ``.sql`` files, byte-identical
to what the dumper produced, or with their single-row INSERTs merged into
multi-row INSERTs (``merge_inserts``), which loads several times faster.
Components go only to paths under DIR derived from their names: a name that would
leave DIR is refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.errors import IdentityError, IntegrityError, UsageError
from strongroom.progress import Reporter
from strongroom.repository.repository import ONLY_WRITER_KEY, Repository


@dataclass(frozen=True)
class RestoredItem:
    """One restored component."""

    name: str
    kind: str
    path: str
    size: int
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass
class RestoreResult:
    """What ``restore`` wrote."""

    snapshot: str
    target: str
    items: list[RestoredItem] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"snapshot": self.snapshot, "target": self.target, "seconds": round(self.seconds, 3),
                "components": [dict(i.__dict__) for i in self.items]}


def _destination(target: Path, name: str) -> Path:
    path = (target / name).resolve()
    if target.resolve() not in path.parents:
        raise IntegrityError(f"the component name {name!r} would leave the restore folder: refused")
    return path


def run(
    repository: Repository,
    reference: str,
    target: Path,
    *,
    merge_inserts: bool = False,
    apply_owners: bool = False,
    reporter: Reporter | None = None,
) -> RestoreResult:
    """Restore snapshot ``reference`` into the folder ``target`` (created; must be empty if it exists).

    Raises UsageError (target not empty), IdentityError (only the writer key, wrong
    identity), IntegrityError (damaged data), StorageError.
    """
    started = time.monotonic()
    if not repository.identities:
        raise IdentityError(ONLY_WRITER_KEY, hint="give --identity FILE: an age identity, an SSH private key, "
                            "or the passphrase identity made by init")
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} is not empty: restore never overwrites", hint="name a new or empty folder")
    snapshot = repository.load_snapshot(reference)
    # A wrong identity fails here, before anything is written.
    repository.check_identity()
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    index = repository.file_index(snapshot)  # dumps locate their records without it
    result = RestoreResult(snapshot.name, str(target))
    for component in snapshot.components:
        name = str(component["name"])
        destination = _destination(target, name)
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if reporter:
            reporter.phase(f"restoring {name}", total=int(component["size"]))
        kind = str(component["kind"])
        if kind == "mariadb-dump" and merge_inserts:
            raw = destination.with_name(f".{destination.name}.raw")
            repository.restore_component(snapshot, name, raw, index=None if "list" in component else index)
            _merge(raw, destination)
            raw.unlink()
        else:
            repository.restore_component(snapshot, name, destination, index=None if "list" in component else index)
        mode = component.get("mode")
        if kind == "file":
            os.chmod(destination, int(mode))
            mtime = float(component.get("mtime", 0) or 0)
            if mtime:
                os.utime(destination, (mtime, mtime))
            if apply_owners:
                os.chown(destination, int(component.get("uid", 0)), int(component.get("gid", 0)))
        if reporter:
            reporter.advance(int(component["size"]))
        result.items.append(
            RestoredItem(name, kind, str(destination), destination.stat().st_size,
                         int(mode) if mode is not None else None, component.get("uid"), component.get("gid"))
        )
    if reporter:
        reporter.done()
    result.seconds = time.monotonic() - started
    return result


def _merge(source: Path, destination: Path) -> None:
    from strongroom.source.sqlmerge import merge_inserts

    def chunks() -> Any:
        with open(source, "rb") as stream:
            while block := stream.read(4 << 20):
                yield block

    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as output:
        for piece in merge_inserts(chunks()):
            output.write(piece)
