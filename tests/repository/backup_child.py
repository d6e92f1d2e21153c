"""A backup run in a child process, for the kill and concurrency tests.

Usage: python backup_child.py CONFIG_JSON ROWS SEED
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from repository_helpers import synthetic_dump  # noqa: E402

from strongroom.config.schema import RepositoryConfig  # noqa: E402
from strongroom.errors import StrongroomError  # noqa: E402
from strongroom.repository.keys import WriterKey  # noqa: E402
from strongroom.repository.repository import Repository  # noqa: E402
from strongroom.storage.layers import open_backend  # noqa: E402


def main() -> int:
    config = RepositoryConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    lines = synthetic_dump(int(sys.argv[2]), seed=int(sys.argv[3]))
    repository = Repository.open(open_backend(config.url), config, writer_key=WriterKey.load(config.writer_key))
    try:
        with repository.begin_snapshot() as writer:
            print("started", flush=True)
            writer.add_record_stream("database.sql", io.BytesIO(b"".join(lines)))
            writer.add_file("etc/key.asc", b"key" * 1000)
            info = writer.commit({"seed": sys.argv[3]})
    except StrongroomError as error:
        print(type(error).__name__, error.message, flush=True)
        return int(error.exit_code)
    print("committed", info.name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
