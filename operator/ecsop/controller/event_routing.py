"""Which release an ECS event is about, and whether it is news worth a look.

An event is routed by the service it names: a task's ``group``
(``service:<name>``) in its cluster, else its ``startedBy`` deployment (the
deployments each release's service ran when last observed); a service action
or deployment event by its service ARN. The account must match (a release
whose account the daemon does not know matches any), as must the region.

News worth a look is what can change a decision: a deployment state change
(a rollout started by someone else, or failed, or completed; not the start
of one ecsop itself made, which it knows of), a service action (the service
is steady; tasks cannot start or be placed), and the first word of a task
told to stop for a failure (a crash, a failed start or health check: ecsop's
own classification, ``decision.failures``). A task being provisioned, pulled
or started, stopped for a scale-in or a replacement, or a second event about
the same task stopping, changes no decision: it wakes nothing, is counted,
and its message is deleted at once. That keeps the workers free for the news
during a burst of rollouts, and a rollout watched by events cheaper in API
calls than the same rollout polled.

Called by ``ecsop.controller.event_feed`` from the event poller's thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from ecsop.aws.ecs_events import EcsEvent, EventKind
from ecsop.controller.specset import SpecKeeper
from ecsop.decision import failures
from ecsop.spec.loader import LoadedRelease, SpecSet

STOPPING_REMEMBERED = 10_000
"""Tasks whose stop already woke their release (a second event about it is no news)."""

Place = tuple[str, str, str]
"""(region, cluster, service) of a release's service."""


def worth_a_look(event: EcsEvent) -> bool:
    """Whether the event can change a decision, whatever came before it."""
    if event.kind is EventKind.TASK:
        return event.stopping and failures.classify_stop(event.stop).is_failure
    return event.kind in (EventKind.SERVICE_ACTION, EventKind.DEPLOYMENT)


class EventRouter:
    def __init__(self, specs: SpecKeeper) -> None:
        self._specs = specs
        self._lock = threading.Lock()
        self._built_from: SpecSet | None = None
        self._by_place: dict[Place, list[LoadedRelease]] = {}
        self._deployments: dict[str, str] = {}
        """Deployment id -> release whose service ran it when last observed."""
        self._of_release: dict[str, tuple[str, ...]] = {}
        self._started: dict[str, str] = {}
        """Release -> the deployment ecsop's own UpdateService started last."""
        self._stopping: OrderedDict[str, None] = OrderedDict()

    def observed(self, name: str, deployments: Iterable[str]) -> None:
        """A pass of ``name`` saw its service run these deployments."""
        ids = tuple(d for d in deployments if d)
        with self._lock:
            for old in self._of_release.pop(name, ()):
                if self._deployments.get(old) == name:
                    del self._deployments[old]
            self._of_release[name] = ids
            for deployment in ids:
                self._deployments[deployment] = name

    def started(self, name: str, deployment: str) -> None:
        """ecsop's UpdateService started ``deployment`` for ``name``: its start is no news."""
        with self._lock:
            self._started[name] = deployment
            self._deployments[deployment] = name

    def forget(self, name: str) -> None:
        self.observed(name, ())
        with self._lock:
            self._of_release.pop(name, None)
            self._started.pop(name, None)

    def news(self, name: str, event: EcsEvent) -> bool:
        """Whether ``event`` about ``name`` is worth a look now (the module docstring)."""
        if not worth_a_look(event):
            return False
        with self._lock:
            if event.kind is EventKind.DEPLOYMENT:
                return not (
                    event.name == "SERVICE_DEPLOYMENT_IN_PROGRESS"
                    and event.deployment
                    and self._started.get(name) == event.deployment
                )
            if event.kind is EventKind.TASK and event.task:
                if event.task in self._stopping:
                    return False
                self._stopping[event.task] = None
                while len(self._stopping) > STOPPING_REMEMBERED:
                    self._stopping.popitem(last=False)
        return True

    def release_of(self, event: EcsEvent) -> str | None:
        """The release the event is about, or None (another service, or not an ECS event)."""
        if event.kind in (EventKind.OTHER, EventKind.MALFORMED):
            return None
        if not event.service:
            with self._lock:
                return self._deployments.get(event.deployment) if event.deployment else None
        index = self._index()
        if event.cluster:
            candidates = index.get((event.region, event.cluster, event.service), [])
        else:  # an old-format service ARN names no cluster: the service name must be unique
            candidates = [
                loaded
                for (region, _, service), found in index.items()
                if region == event.region and service == event.service
                for loaded in found
            ]
        matching = [
            loaded.name
            for loaded in candidates
            if not loaded.target.account
            or not event.account
            or loaded.target.account == event.account
        ]
        if len(matching) > 1:  # a rename: the removed release is finishing, the new one owns it
            matching = [name for name in matching if not self._removed(name)]
        return matching[0] if len(matching) == 1 else None

    def _removed(self, name: str) -> bool:
        entry = self._specs.entry(name)
        return entry is None or entry.removed

    def _index(self) -> dict[Place, list[LoadedRelease]]:
        specs = self._specs.specs
        with self._lock:
            if self._built_from is not specs:
                index: dict[Place, list[LoadedRelease]] = {}
                for loaded in self._specs.watched():
                    target = loaded.target
                    index.setdefault((target.region, target.cluster, target.service), []).append(
                        loaded
                    )
                self._by_place, self._built_from = index, specs
            return self._by_place
