"""One module per verb. Each defines NAME, HELP, add_arguments(parser) and execute(args, context).

COMMANDS lists the verbs that work, in the order ``--help`` shows them. A verb
appears here only once it works.
"""

from __future__ import annotations

from types import ModuleType

from strongroom.cli.commands import backup, demo, discover, drill, init, prune, restore, sandbox, show, snapshots, status, verify

COMMANDS: tuple[ModuleType, ...] = (init, discover, backup, snapshots, show, restore, drill, verify, prune, status, demo, sandbox)
