"""A realistic generated passbolt instance: database, files in an install layout, and a manifest.

Used by the demo, the tests and the benchmarks::

    from strongroom.sandbox import create_sandbox

    sandbox = create_sandbox(database_target="mariadb://root:pw@127.0.0.1:3306", root="/srv/sandbox")

The OpenPGP keys and messages are real (:mod:`strongroom.sandbox.openpgp`); the
content is deterministic from a seed (:mod:`strongroom.sandbox.generate`); the files
follow passbolt's install layouts (:mod:`strongroom.sandbox.layouts`, whose docstring
is the reference for paths, owners and modes).
"""

from strongroom.sandbox.create import Sandbox, create_sandbox, default_manifest_path
from strongroom.sandbox.layouts import LAYOUTS

__all__ = ["LAYOUTS", "Sandbox", "create_sandbox", "default_manifest_path"]
