"""A prune followed by a repack in a child process, for the kill test: keep the last N
snapshots, no grace period, repack packs more than 30 % dead.

Usage: python repack_child.py CONFIG_JSON IDENTITY_FILE KEEP_LAST
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from strongroom.config.schema import RepositoryConfig
from strongroom.repository import prune, repack
from strongroom.repository.keys import WriterKey, load_identities
from strongroom.repository.repository import Repository
from strongroom.repository.retention import Policy
from strongroom.storage.layers import open_backend


def main() -> int:
    config = RepositoryConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    prune.CLOCK_MARGIN_SECONDS = 0.0  # one machine, one clock, no concurrent backup in this test
    repository = Repository.open(
        open_backend(config.url), config, writer_key=WriterKey.load(config.writer_key),
        identities=load_identities(Path(sys.argv[2])),
    )
    print("opened", flush=True)
    plan = prune.make_plan(repository, Policy(last=int(sys.argv[3])), grace_seconds=0)
    prune.execute_plan(repository, plan, grace_seconds=0, step=lambda name: print("prune", name, flush=True))
    result = repack.execute_plan(repository, threshold_percent=30.0, step=lambda name: print("repack", name, flush=True))
    print("finished", result.chunks_copied, len(result.marked_packs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
