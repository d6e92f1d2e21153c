"""``verify``: check the repository's integrity (see :mod:`strongroom.repository.check`)."""

from __future__ import annotations

from typing import Any

from strongroom.progress import Reporter
from strongroom.repository.check import CheckResult, check_repository
from strongroom.repository.repository import Repository


def run(repository: Repository, *, read_data: bool = False, reporter: Reporter | None = None) -> CheckResult:
    """Check ``repository``; returns what was found (the caller decides the exit status).

    Raises IdentityError (``read_data`` without an identity), StorageError.
    """
    return check_repository(repository, read_data=read_data, reporter=reporter)


def result_to_dict(result: CheckResult) -> dict[str, Any]:
    """JSON-ready form of a check result."""
    return {
        "ok": result.ok,
        "level": result.level,
        "objects_checked": result.objects_checked,
        "bytes_read": result.bytes_read,
        "snapshots": result.snapshots,
        "chunks_verified": result.chunks_verified,
        "damage": [{"object": d.object, "message": d.message, "snapshots": list(d.snapshots)} for d in result.damage],
        "chain": list(result.chain),
        "unreferenced_packs": result.unreferenced_packs,
        "unreferenced_bytes": result.unreferenced_bytes,
        "notes": list(result.notes),
    }
