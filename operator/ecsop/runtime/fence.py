"""The fence: work that may happen only while this replica holds its shard, checked at each write.

A reconcile pass runs inside ``fenced(check)`` on its worker thread; anything
about to write (the executor before each gateway write, and the AWS clients
before every HTTP attempt, retries included) calls ``check_current()``, which
raises ``OwnershipLost`` once the check fails. Outside a fenced block (a
single replica, the resync's batched reads) it does nothing.

Generic: the check is any callable; ``ecsop.runtime.shards`` provides the one
that matters (``ShardCoordinator.still_holds``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class OwnershipLost(Exception):
    """This replica no longer holds the shard of the work it was doing: nothing more is written."""


_local = threading.local()


@contextmanager
def fenced(check: Callable[[], None]) -> Iterator[None]:
    """Run the block with ``check`` as this thread's fence (nested fences: the innermost)."""
    previous = getattr(_local, "check", None)
    _local.check = check
    try:
        yield
    finally:
        _local.check = previous


def check_current() -> None:
    """Raise ``OwnershipLost`` if this thread's fence says so; nothing outside a fence."""
    check = getattr(_local, "check", None)
    if check is not None:
        check()
