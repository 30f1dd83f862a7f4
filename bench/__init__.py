"""The performance benchmark: cdsessions against the official SDK, a bare-urllib3 floor and
the raw-socket physical limit.

Run it with ``nox -s bench`` (or ``python -m bench.run``); see ``bench/run.py``. Nothing here is
imported by the library, and only ``bench.clients`` imports a client: the worker processes that
measure the official SDK run in an environment without cdsessions.
"""
