"""Prepare the benchmark data: three daily dumps of a sandbox passbolt database.

Starts a throwaway MariaDB server, creates a sandbox instance of the given size,
dumps it (day 1) with strongroom's own dumper (one row per line), then applies a
day of changes in SQL and dumps again (day 2), and once more (day 3). Each day:

- about 1 % of the secrets are rewritten with fresh OpenPGP messages encrypted to
  their user's key (a password change re-encrypts every copy of a secret);
- about 0.5 % rows are added to each of secrets, resources, permissions and
  action_logs (copies of random rows under new random UUIDs, new timestamps, and a
  fresh message for new secrets);
- about 0.1 % of secrets, permissions and action_logs rows are deleted and 0.1 % of
  resources soft-deleted.

Ids are random UUIDs, so the changes are scattered through the dump as in real life.
Finally it measures the physical limit of storing a day: the zstd level 3 size of
exactly the lines of day N that day N-1 lacks. Everything goes to ``benchmarks/work/``
(git-ignored); ``prepare.json`` there describes the result for ``run.py``.

Usage::

    .venv/bin/python benchmarks/prepare.py --size 100MB
    .venv/bin/python benchmarks/prepare.py --size 1GB
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import re
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pysequoia
import zstandard

from strongroom.dbserver import DatabaseTarget, connect, server_version, start_server
from strongroom.sandbox import create_sandbox
from strongroom.source.dump import open_dump

WORK = Path(__file__).resolve().parent / "work"
DAYS = 3
REWRITE_FRACTION = 0.01
ADD_FRACTION = 0.005
DELETE_FRACTION = 0.001
CHANGED_TABLES = ("secrets", "resources", "permissions", "action_logs")
BLOCK = 1 << 20


def parse_size(text: str) -> int:
    """The number of bytes ``text`` names (``100MB``, ``1GB``, ``1.5GB``, ``500000``). Raises ValueError."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)[bB]?\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 100MB or 1GB)")
    factor = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)


def dump_to_file(target: DatabaseTarget, version: str, path: Path) -> dict[str, Any]:
    """Dump ``target`` into ``path`` with strongroom's dumper; return its size, lines and seconds."""
    started = time.monotonic()
    lines = 0
    with open_dump(target, server_version=version, count_rows=False) as dump, open(path, "wb") as output:
        while block := dump.stream.read(BLOCK):
            output.write(block)
            lines += block.count(b"\n")
        result = dump.finish()
    return {"path": path.name, "bytes": result.bytes, "lines": lines, "seconds": round(time.monotonic() - started, 2)}


class DayChanges:
    """Applies one day of passbolt-like changes to the sandbox database."""

    def __init__(self, connection: Any, rng: random.Random, day: int) -> None:
        self.connection = connection
        self.rng = rng
        self.now = dt.datetime(2025, 6, 1, 9, 0, 0) + dt.timedelta(days=day)
        self.columns: dict[str, list[str]] = {}
        self.certificates: dict[str, pysequoia.Cert] = {}
        self.encrypted = 0

    def _query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())

    def _table_columns(self, table: str) -> list[str]:
        if table not in self.columns:
            rows = self._query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = %s ORDER BY ordinal_position",
                (table,),
            )
            self.columns[table] = [str(row[0]) for row in rows]
        return self.columns[table]

    def _load_certificates(self) -> None:
        for user_id, armored in self._query("SELECT user_id, armored_key FROM gpgkeys WHERE deleted = 0"):
            self.certificates[str(user_id)] = pysequoia.Cert.from_bytes(str(armored).encode("ascii"))

    def _message(self, user_id: str) -> str:
        """A fresh armored message to ``user_id``'s key, with a JSON secret like passbolt's."""
        certificate = self.certificates.get(user_id) or next(iter(self.certificates.values()))
        password = "".join(self.rng.choice("abcdefghijkmnopqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789!#%&*+-=?@") for _ in range(18))
        plaintext = json.dumps({"password": password, "description": f"rotated on {self.now:%Y-%m-%d}"})
        self.encrypted += 1
        return pysequoia.encrypt(plaintext.encode("utf-8"), [certificate]).decode("ascii")

    def apply(self) -> dict[str, int]:
        """Rewrite, add and delete rows; commit. Returns how many rows of each kind changed."""
        self._load_certificates()
        summary: dict[str, int] = {}
        secrets = self._query("SELECT id, user_id FROM secrets")
        rewritten = self.rng.sample(secrets, max(1, int(len(secrets) * REWRITE_FRACTION)))
        with self.connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE secrets SET data = %s, modified = %s WHERE id = %s",
                [(self._message(str(user_id)), self.now, secret_id) for secret_id, user_id in rewritten],
            )
        summary["secrets rewritten"] = len(rewritten)
        for table in CHANGED_TABLES:
            summary[f"{table} added"] = self._add_copies(table)
        for table in CHANGED_TABLES:
            summary[f"{table} deleted"] = self._delete(table)
        self.connection.commit()
        return summary

    def _add_copies(self, table: str) -> int:
        """Insert copies of random rows of ``table`` under new random UUIDs. Returns the count."""
        columns = self._table_columns(table)
        ids = [row[0] for row in self._query(f"SELECT id FROM `{table}`")]
        count = max(1, int(len(ids) * ADD_FRACTION))
        chosen = self.rng.sample(ids, count)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(chosen), 1000):
            batch = chosen[start : start + 1000]
            marks = ",".join(["%s"] * len(batch))
            rows += self._query(f"SELECT * FROM `{table}` WHERE id IN ({marks})", tuple(batch))
        new_rows = []
        for row in rows:
            values = dict(zip(columns, row))
            values["id"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            for name in ("created", "modified"):
                if name in values:
                    values[name] = self.now + dt.timedelta(seconds=self.rng.randrange(36000))
            if table == "secrets":
                values["data"] = self._message(str(values["user_id"]))
            if table == "resources" and values.get("name"):
                values["name"] = f"{values['name']} ({self.now:%b %d})"
            new_rows.append(tuple(values[name] for name in columns))
        names = ",".join(f"`{name}`" for name in columns)
        marks = ",".join(["%s"] * len(columns))
        with self.connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO `{table}` ({names}) VALUES ({marks})", new_rows)
        return len(new_rows)

    def _delete(self, table: str) -> int:
        """Delete (resources: soft-delete) a random 0.1 % of ``table``. Returns the count."""
        ids = [row[0] for row in self._query(f"SELECT id FROM `{table}`")]
        chosen = self.rng.sample(ids, max(1, int(len(ids) * DELETE_FRACTION)))
        with self.connection.cursor() as cursor:
            if table == "resources":
                cursor.executemany("UPDATE resources SET deleted = 1, modified = %s WHERE id = %s", [(self.now, i) for i in chosen])
            else:
                cursor.executemany(f"DELETE FROM `{table}` WHERE id = %s", [(i,) for i in chosen])
        return len(chosen)


def changed_lines(previous: Path, current: Path) -> dict[str, Any]:
    """The lines of ``current`` that ``previous`` lacks: count, bytes, and their zstd -3 size."""
    seen: set[int] = set()
    with open(previous, "rb") as stream:
        for line in stream:
            seen.add(hash(line))
    compressor = zstandard.ZstdCompressor(level=3)
    count = raw = 0
    chunks: list[bytes] = []
    with open(current, "rb") as stream:
        for line in stream:
            if hash(line) not in seen:
                count += 1
                raw += len(line)
                chunks.append(line)
    compressed = len(compressor.compress(b"".join(chunks)))
    return {"lines": count, "bytes": raw, "zstd3_bytes": compressed}


def main(argv: list[str] | None = None) -> int:
    """Build the sandbox, the three dumps and prepare.json. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GB", help="sandbox row data size (default 1GB; develop with 100MB)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the sandbox and the changes")
    parser.add_argument("--work", type=Path, default=WORK, help="where the dumps go (default benchmarks/work)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    size = parse_size(options.size)
    work: Path = options.work
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("day*.sql"):
        old.unlink()
    shutil.rmtree(work / "sandbox", ignore_errors=True)
    started = time.monotonic()
    report: dict[str, Any] = {"size": size, "seed": options.seed, "days": []}
    with start_server("mariadb") as server:
        step = time.monotonic()
        sandbox = create_sandbox(
            database_target=server.target, root=work / "sandbox" / "root", size=size, seed=options.seed,
            manifest_path=work / "sandbox" / "manifest.json",
        )
        report["sandbox_seconds"] = round(time.monotonic() - step, 1)
        report["row_counts"] = sandbox.row_counts
        logging.info("sandbox created in %.0f s", report["sandbox_seconds"])
        connection = connect(sandbox.target)
        try:
            version = server_version(connection)
            report["server_version"] = version
            rng = random.Random(options.seed * 1000 + 7)
            for day in range(1, DAYS + 1):
                entry: dict[str, Any] = {"day": day}
                if day > 1:
                    step = time.monotonic()
                    changes = DayChanges(connection, rng, day)
                    entry["changes"] = changes.apply()
                    entry["changes_seconds"] = round(time.monotonic() - step, 1)
                    logging.info("day %d: changes %s in %.0f s", day, entry["changes"], entry["changes_seconds"])
                entry["dump"] = dump_to_file(sandbox.target, version, work / f"day{day}.sql")
                logging.info("day %d: dump %s", day, entry["dump"])
                report["days"].append(entry)
        finally:
            connection.close()
    for day in range(2, DAYS + 1):
        limit = changed_lines(work / f"day{day - 1}.sql", work / f"day{day}.sql")
        report["days"][day - 1]["changed"] = limit
        logging.info("day %d: changed lines %s", day, limit)
    report["seconds"] = round(time.monotonic() - started, 1)
    (work / "prepare.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "row_counts"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
