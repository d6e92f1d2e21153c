"""Storage: the Backend contract, the local backend, and the layers stacked on every backend.

See :mod:`strongroom.storage.backend` for the contract and
:mod:`strongroom.storage.layers` for how backends are assembled.
"""

from strongroom.storage.backend import Backend, Capabilities, Handle, ObjectInfo, ObjectType
from strongroom.storage.layers import assemble, open_backend
from strongroom.storage.local import LocalBackend

__all__ = [
    "Backend",
    "Capabilities",
    "Handle",
    "LocalBackend",
    "ObjectInfo",
    "ObjectType",
    "assemble",
    "open_backend",
]
