"""A prune in a child process, for the kill test: keep the last N snapshots, no grace period.

Usage: python prune_child.py CONFIG_JSON KEEP_LAST
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from strongroom.config.schema import RepositoryConfig
from strongroom.repository import prune
from strongroom.repository.keys import WriterKey
from strongroom.repository.repository import Repository
from strongroom.repository.retention import Policy
from strongroom.storage.layers import open_backend


def main() -> int:
    config = RepositoryConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    prune.CLOCK_MARGIN_SECONDS = 0.0  # one machine, one clock, no concurrent backup in this test
    repository = Repository.open(open_backend(config.url), config, writer_key=WriterKey.load(config.writer_key))
    print("opened", flush=True)
    plan = prune.make_plan(repository, Policy(last=int(sys.argv[2])), grace_seconds=0)
    result = prune.execute_plan(repository, plan, grace_seconds=0, step=lambda name: print("step", name, flush=True))
    print("done", len(result.removed_snapshots), result.deleted.count(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
