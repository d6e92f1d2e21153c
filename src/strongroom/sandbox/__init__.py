"""A realistic generated passbolt instance: database, files in an install layout, and a manifest.

Used by the demo, the tests and the benchmarks. The OpenPGP keys and messages are real
(:mod:`strongroom.sandbox.openpgp`).
"""
