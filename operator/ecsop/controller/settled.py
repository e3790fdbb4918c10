"""Releases a resync finds exactly as their last pass left them: no pass again.

At 10,000 releases the passes of a resync were most of ecsop's own CPU (a pass
per release, each deciding ``InSync`` again and re-recording the same status
and metrics). A pass is a pure function of its inputs (``ecsop.decision``):
the spec as loaded, the commit, the service as DescribeServices reports it
(its ecsop memory is in its tags), and what this process wrote to it. When
the last pass of a release found it in sync (``Wait`` ``InSync``, nothing to
look at before the next resync) and a resync's batched answer says exactly
what that pass saw, with no write and no invalidation since, the pass would
decide the same ``Wait`` and record the same status; the resync does not queue
it, and says so in ``ecsop_resync_unchanged_total``.

Only the resync consults this. A spec change, an ECS event, an active poll, a
retry, a shard taken over and every other trigger queues a pass as before;
any write or invalidation of the service (``ServiceCache`` generations) and
any pass that did not end in sync forget what was kept. A fresh process
keeps nothing, so its first resync passes every release.

Callers: ``ecsop.controller.manager.Controller`` (records after each pass,
asks while queueing a resync's batches).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ecsop.decision.actions import Action, Wait
from ecsop.decision.ecs_state import ServiceState
from ecsop.decision.reasons import Phase, Reason
from ecsop.spec.loader import LoadedRelease


@dataclass(frozen=True, slots=True)
class Settled:
    """What a pass that ended in sync saw: all its decision depended on."""

    loaded: LoadedRelease
    commit: str | None
    service: ServiceState
    generation: int
    """The service cache's generation the pass observed under (``ServiceCache``)."""

    def holds_for(self, loaded: LoadedRelease, commit: str | None) -> bool:
        """Whether the spec side is still what that pass saw."""
        return (loaded is self.loaded or loaded == self.loaded) and commit == self.commit


def in_sync(action: Action) -> bool:
    """A pass's outcome that a later, identical observation would only repeat."""
    return (
        type(action) is Wait
        and action.phase is Phase.SYNCED
        and action.reason is Reason.IN_SYNC
        and action.requeue_after is None
    )


class SettledReleases:
    """Per release name, what its last pass saw, kept only if that pass ended in sync."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled: dict[str, Settled] = {}

    def passing(self, name: str) -> None:
        """A pass starts: until it ends in sync, nothing is known to hold."""
        with self._lock:
            self._settled.pop(name, None)

    def passed(self, name: str, settled: Settled) -> None:
        with self._lock:
            self._settled[name] = settled

    def get(self, name: str) -> Settled | None:
        with self._lock:
            return self._settled.get(name)

    forget = passing
    """The release left, or its pass failed: nothing kept."""
