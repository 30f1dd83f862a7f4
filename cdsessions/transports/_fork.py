"""The one after-fork registry: everything a forked child must not inherit from its parent.

The child of ``os.fork()`` (pre-fork worker pools: gunicorn ``--preload``, Celery,
``multiprocessing``) is a copy of the parent with only the thread that forked. Whatever another
thread was doing at that moment is frozen mid-way: a lock it held stays held forever, a pooled
socket is shared with the parent (both would read each other's answers), and a worker, watchdog
or resolver thread the object believes alive does not exist. Every object owning such state
(a client's lock, a transport's pools, watchdog and worker threads, the resolver's cache)
registers here once it exists; right after a fork, in the child, each is told to start afresh.
The parent is never touched.

A registered object has an ``_after_fork_in_child()`` method, which must only drop state (new
locks, empty caches, no threads): it runs while the child has one thread, before ``os.fork()``
returns. Registration is weak, so it never keeps an object alive.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["StartsAfreshAfterFork", "register"]


class StartsAfreshAfterFork(Protocol):
    def _after_fork_in_child(self) -> None:
        """Forget the parent's locks, connections, threads and caches."""


_registered: weakref.WeakSet[StartsAfreshAfterFork] = weakref.WeakSet()


def register(owner: StartsAfreshAfterFork) -> None:
    """Have ``owner._after_fork_in_child()`` called in every child forked from now on."""
    _registered.add(owner)


def _after_fork_in_child() -> None:
    # Every owner is reset even if one fails: a reset skipped is a lock held forever. The first
    # failure is raised at the end, which CPython reports ("Exception ignored in ...").
    failures: list[Exception] = []
    for owner in list(_registered):
        try:
            owner._after_fork_in_child()
        except Exception as failure:
            failures.append(failure)
    if failures:
        raise failures[0]


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
