"""Restore drills: the safeguards and checks a drill (and a restore) runs on a snapshot.

- :mod:`strongroom.drill.sqlguard`: a streaming filter that lets through only the
  statement kinds a database dump contains (the dump is untrusted input);
- :mod:`strongroom.drill.checks`: the named checks that prove a restored database and
  its files are complete and belong together.
"""
