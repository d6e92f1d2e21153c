#!/usr/bin/env python3
"""A stand-in ``docker`` CLI for tests: answers ps/inspect from a fixture file, runs ``exec`` locally.

The fixture (JSON, path in STANDIN_DOCKER_FIXTURE) holds ``containers``: a list of
``docker inspect`` objects; ``exec_env``: per container name, variables added to
exec'd commands; and ``client_options``: per container name, options inserted right
after the program name of MariaDB/MySQL clients (their dumpers know no variable for
the server's address). Together they let a client inside "the container" reach the
test's server the way the image's default socket would.
Every call is appended to STANDIN_DOCKER_LOG as one JSON line (argv and which
variables were passed with ``-e``), so tests check the arguments built.
"""

import json
import os
import sys


def main(argv: list[str]) -> int:
    with open(os.environ["STANDIN_DOCKER_FIXTURE"], encoding="utf-8") as handle:
        fixture = json.load(handle)
    log = os.environ.get("STANDIN_DOCKER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"argv": argv}) + "\n")
    containers = {c["Name"].lstrip("/"): c for c in fixture.get("containers", [])}
    if not argv:
        return 2
    if argv[0] == "ps":
        for name, data in containers.items():
            if data.get("State", {}).get("Running", True):
                print(name)
        return 0
    if argv[0] == "inspect":
        names = [a for a in argv[1:] if not a.startswith("--") and a != "container"]
        missing = [n for n in names if n not in containers]
        if missing:
            print(f"Error: No such container: {missing[0]}", file=sys.stderr)
            return 1
        print(json.dumps([containers[n] for n in names]))
        return 0
    if argv[0] == "exec":
        index = 1
        environment = {}
        while index < len(argv) and argv[index].startswith("-"):
            option = argv[index]
            if option in ("-e", "--env"):
                name = argv[index + 1]
                if "=" in name:
                    raise SystemExit("stand-in docker: a value was given with -e (a secret would be in argv)")
                if name in os.environ:
                    environment[name] = os.environ[name]
                index += 2
            elif option in ("-t", "--tty"):
                raise SystemExit("stand-in docker: -t would corrupt output")
            else:
                index += 1
        container = argv[index]
        if container not in containers:
            print(f"Error: No such container: {container}", file=sys.stderr)
            return 1
        command = argv[index + 1 :]
        if os.path.basename(command[0]).startswith(("mariadb", "mysql")):
            command[1:1] = fixture.get("client_options", {}).get(container, [])
        child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **fixture.get("exec_env", {}).get(container, {}), **environment}
        os.execvpe(command[0], command, child_env)
    print(f"stand-in docker: unsupported command {argv[0]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
