"""The performance benchmark: cdsessions against the official SDK and a bare-urllib3 floor.

Run it with ``nox -s bench`` (or ``python -m bench.run``); see ``bench/run.py``. Nothing here is
imported by the library, and only ``bench.clients`` imports a client: the worker processes that
measure the official SDK run in an environment without cdsessions.
"""
