"""How fast a drill loads a dump, against the plain client loading the same merged dump.

Issue 7's target: a drill loads a MariaDB dump "merged into multi-row INSERTs (loading
at most 1.3x the time a plain client takes to load the same multi-row dump)". This
script takes a one-row-per-line dump (strongroom's own dumper), writes its merged form
once (``strongroom.source.sqlmerge``), starts one throwaway server, and then, round by
round on fresh databases of that server, times:

- **plain**: the ``mariadb`` client reading the merged file as its stdin;
- **drill**: the drill's path on the raw dump (``load_dump_file``: dump guard with the
  INSERT merger in the same pass, then the client through a pipe);
- with ``--two-pass``, also the path drills took before: guard, then ``sqlmerge`` as a
  second generator, then the client.

For PostgreSQL (``--engine postgresql``) there is nothing to merge: plain is ``psql``
reading the raw dump, drill is the guard in front of it.

Without ``--dump`` it first creates a sandbox instance of ``--size`` on a throwaway
server and dumps it into ``benchmarks/work/drill_load/`` (a few minutes for 200 MB).
It prints one line per measurement, then the medians and the ratio (MB/s are of
the one-row-per-line dump for every path; "Python CPU" is this process's own CPU
time during the load: the guard and the merger, zero for the plain client).

Usage::

    .venv/bin/python benchmarks/drill_load.py --engine mariadb --size 210MB
    .venv/bin/python benchmarks/drill_load.py --engine mariadb --dump dump.sql --rounds 5 --two-pass
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from strongroom.actions.database_restore import load_dump_file
from strongroom.dbserver import DatabaseTarget, ThrowawayServer, connect, server_version, start_server
from strongroom.dbserver.load import load_dump
from strongroom.drill.sqlguard import guard_dump
from strongroom.sandbox import create_sandbox
from strongroom.source.dump import open_dump
from strongroom.source.sqlmerge import merge_inserts

WORK = Path(__file__).resolve().parent / "work" / "drill_load"
BLOCK = 1 << 20


def parse_size(text: str) -> int:
    """The number of bytes ``text`` names (``200MB``, ``1GB``). Raises ValueError."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)[bB]?\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 200MB)")
    return int(float(match.group(1)) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()])


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while block := stream.read(BLOCK):
            yield block


def create_dump(engine: str, size: int, path: Path) -> None:
    """Create a sandbox of ``size`` on a throwaway ``engine`` server and dump it into ``path``."""
    with start_server(engine) as server:
        sandbox = create_sandbox(
            database_target=server.target, root=path.parent / f"sandbox-{engine}", size=size, seed=1,
            manifest_path=path.parent / f"manifest-{engine}.json", replace=True,
        )
        connection = connect(sandbox.target)
        try:
            version = server_version(connection)
        finally:
            connection.close()
        with open_dump(sandbox.target, server_version=version, count_rows=False) as dump, path.open("wb") as output:
            while block := dump.stream.read(BLOCK):
                output.write(block)
            dump.finish()


def write_merged(dump: Path, merged: Path) -> None:
    """Write the merged (multi-row INSERT) form of ``dump`` into ``merged``."""
    with merged.open("wb") as output:
        for piece in merge_inserts(_chunks(dump)):
            output.write(piece)


def _timed(server: ThrowawayServer, name: str, load: Callable[[DatabaseTarget], object]) -> tuple[float, float]:
    """Load into a fresh database ``name``; return (wall seconds, this process's CPU seconds), then drop it."""
    target = server.create_database(name)
    started = time.monotonic()
    cpu = time.process_time()
    load(target)
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu
    connection = server.connect()
    try:
        if server.engine == "postgresql":
            connection.autocommit = True  # type: ignore[attr-defined]  # DROP DATABASE refuses transactions
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE {name}")
        cursor.close()
        connection.commit()
    finally:
        connection.close()
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("mariadb", "postgresql"), default="mariadb")
    parser.add_argument("--dump", type=Path, help="a dump of that engine (default: create one)")
    parser.add_argument("--size", default="210MB", help="sandbox size when creating the dump (default 210MB)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each path (default 3)")
    parser.add_argument("--two-pass", action="store_true", help="also time guard then sqlmerge (the old path)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args(argv)
    engine = options.engine
    dialect = "mariadb" if engine == "mariadb" else "postgresql"
    WORK.mkdir(parents=True, exist_ok=True)
    dump = options.dump
    if dump is None:
        dump = WORK / f"{engine}.sql"
        if not dump.exists():
            print(f"creating a {options.size} sandbox dump in {dump} ...", flush=True)
            create_dump(engine, parse_size(options.size), dump)
    plain_input = dump
    if engine == "mariadb":
        plain_input = WORK / f"{dump.stem}.merged.sql"
        write_merged(dump, plain_input)
    size = dump.stat().st_size
    print(f"dump {dump} {size / 1e6:.0f} MB; plain client input {plain_input.stat().st_size / 1e6:.0f} MB", flush=True)

    paths: dict[str, Callable[[DatabaseTarget, Path], object]] = {
        "plain": lambda target, bin_dir: load_dump(target, plain_input, bin_dir=bin_dir),
        "drill": lambda target, bin_dir: load_dump_file(dump, dialect, target, bin_dir=bin_dir),
    }
    if options.two_pass and engine == "mariadb":
        paths["two-pass"] = lambda target, bin_dir: load_dump(
            target, merge_inserts(guard_dump(_chunks(dump), dialect, database=target.database)), bin_dir=bin_dir
        )
    started = time.monotonic()
    results: dict[str, list[float]] = {name: [] for name in paths}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in paths}
    with start_server(engine) as server:
        start_seconds = time.monotonic() - started
        print(f"server started in {start_seconds:.2f} s ({server.timings})", flush=True)
        for round_number in range(options.rounds):
            for name, load in paths.items():
                seconds, cpu = _timed(
                    server, f"bench_{name.replace('-', '_')}_{round_number}",
                    lambda target, load=load: load(target, server.bin_dir),  # type: ignore[misc]
                )
                results[name].append(seconds)
                cpu_seconds[name].append(cpu)
                print(
                    f"round {round_number + 1} {name:9s} {seconds:7.2f} s  {size / seconds / 1e6:6.1f} MB/s"
                    f"  (Python CPU {cpu:5.2f} s)",
                    flush=True,
                )
    medians = {name: statistics.median(values) for name, values in results.items()}
    print()
    print(f"{'path':10s} {'median s':>9s} {'MB/s':>7s} {'ratio':>6s} {'Python CPU s':>13s}")
    for name, median in medians.items():
        cpu = statistics.median(cpu_seconds[name])
        print(f"{name:10s} {median:9.2f} {size / median / 1e6:7.1f} {median / medians['plain']:6.2f} {cpu:13.2f}")
    if options.json is not None:
        record: dict[str, Any] = {
            "engine": engine, "dump_bytes": size, "server_start_seconds": round(start_seconds, 2),
            "results": results, "python_cpu_seconds": cpu_seconds, "medians": medians, "ratio": medians["drill"] / medians["plain"],
        }
        options.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
