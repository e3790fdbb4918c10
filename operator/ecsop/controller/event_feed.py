"""The controller's event feed: ECS events from an SQS queue wake the releases they are about.

With ``--events-queue``, EventBridge delivers ECS's task, service action and
deployment events to an SQS queue (``helm-free-deploy/events``). This module
connects the generic parts for the controller:

- the poller (``ecsop.runtime.event_source``) long-polls the queue; each
  message is read (``ecsop.aws.ecs_events``), counted, routed to its release
  (``event_routing``) and, if it is news worth a look, the release's waiting
  observation is dropped and the release queued at once;
- the message is deleted once a pass of that release that began after it
  arrived has completed (``PassAcks``, around every pass); messages about
  other services, malformed ones, and news not worth a look are deleted at once;
  one worth a look about a release another replica owns goes back to the queue
  (whether the owner has seen it is the owner's to judge) until the owner
  receives it.
  Nothing is lost if the queue loses, repeats or reorders messages: an event
  only says "look now", the decision still comes from a fresh observation;
- the cadence (``ecsop.runtime.cadence``): while events flow a rollout is
  looked at every ``--active-poll-interval`` (30 s by default with a queue)
  and everything every ``--resync-interval`` (300 s); when the queue cannot be
  read, or a change ecsop made (an UpdateService) goes unreported for
  ``--events-silence-timeout``, ecsop says so (log, ``ecsop_events_flowing``,
  ``ecsop_events_fallbacks_total``, ``/status``) and polls at the fallback
  intervals until events flow again.

Without a queue the feed only holds the cadence, which then changes nothing.
Callers: ``ecsop.controller.manager`` (passes, requeues, resync interval) and
``ecsop.controller.daemon`` (the queue, ``/status``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from ecsop.aws import ecs_events
from ecsop.aws.ecs_events import EventKind
from ecsop.aws.event_queue import QueueInfo
from ecsop.aws.service_cache import ServiceCache
from ecsop.controller import event_routing
from ecsop.controller.event_routing import EventRouter
from ecsop.controller.specset import SpecKeeper
from ecsop.observability.event_metrics import EventMetrics
from ecsop.observability.metrics import Metrics
from ecsop.runtime.cadence import Cadence, CadenceSettings, CadenceState, Fallback
from ecsop.runtime.event_source import EventPoller, Message, PassAcks, Source
from ecsop.runtime.workqueue import RateLimitingQueue

log = structlog.get_logger("ecsop.controller.events")


@dataclass(frozen=True)
class EventSettings:
    """``--events-queue`` and what to do when its events stop."""

    queue_url: str
    """The SQS queue EventBridge delivers ECS's events to."""
    fallback_poll_seconds: float = 5.0
    """How often a rollout is looked at while events do not flow."""
    fallback_resync_seconds: float = 30.0
    """How often everything is resynced while events do not flow."""
    silence_seconds: float = 60.0
    """How long a change ecsop made may go unreported before events are not trusted."""


class EventQueue(Source, Protocol):
    """The queue the feed reads (``ecsop.aws.event_queue.EventQueue``)."""

    def describe(self) -> QueueInfo: ...


class Pass(Protocol):
    """What the feed reads of a pass (``reconciler.PassResult``)."""

    @property
    def applied(self) -> Any: ...

    @property
    def observation(self) -> Any: ...


def cadence_settings(
    events: EventSettings | None, active_poll_seconds: float, resync_seconds: float
) -> CadenceSettings:
    """The cadence of a controller: with a queue, the given intervals are the long ones."""
    if events is None:
        return CadenceSettings(
            events=False, fallback_poll=active_poll_seconds, fallback_resync=resync_seconds
        )
    return CadenceSettings(
        events=True,
        events_poll=active_poll_seconds,
        events_resync=resync_seconds,
        fallback_poll=events.fallback_poll_seconds,
        fallback_resync=events.fallback_resync_seconds,
        silence_seconds=events.silence_seconds,
    )


class EventFeed:
    def __init__(
        self,
        settings: EventSettings | None,
        cadence: CadenceSettings,
        metrics: Metrics,
        specs: SpecKeeper,
        cache: ServiceCache,
        queue: RateLimitingQueue,
        source: EventQueue | None = None,
        holds: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.settings = settings
        self._holds = holds
        """Whether this replica owns a release now (``Ownership.holds``)."""
        self.acks = PassAcks()
        self.router = EventRouter(specs)
        self._cache = cache
        self._queue = queue
        self._specs = specs
        self._source = source
        self._metrics = EventMetrics(metrics.registry) if settings is not None else None
        self._loop_errors = metrics.loop_errors
        self.cadence = Cadence(cadence, on_change=self._changed)
        self._poller: EventPoller | None = None
        self._last_event: datetime | None = None
        self._lock = threading.Lock()
        self._polled: set[str] = set()
        """Releases whose last pass asked for another look (a rollout being watched)."""

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self.settings is None or self._source is None:
            return
        # Off the caller's thread: a queue that does not answer (its retries take
        # minutes) must not hold up the daemon's start, its resync or its leases.
        threading.Thread(target=self._describe, name="ecsop-events-describe", daemon=True).start()
        self._poller = EventPoller(
            self._source,
            self._route,
            self._wake,
            self.acks,
            self.cadence,
            on_loop_error=lambda loop: self._loop_errors.labels(loop).inc(),
        )
        self._poller.start()

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.stop()

    def _describe(self) -> None:
        """Say which queue is read, or why it cannot be (then poll at the short interval)."""
        assert self.settings is not None and self._source is not None
        try:
            info = self._source.describe()
        except Exception as error:
            self.cadence.failed(str(error), at_once=True)
            return
        log.info(
            "reading ECS events",
            queue=self.settings.queue_url,
            visibility_timeout=info.visibility_timeout,
            waiting=info.waiting,
            dead_letter_queue=info.dead_letter_queue or None,
        )

    # -- around every pass -----------------------------------------------------------------
    @contextmanager
    def pass_of(self, name: str) -> Iterator[None]:
        """Around one pass: the events that asked for it are deleted once it completes."""
        with self.acks.pass_of(name):
            yield

    def not_ours(self, name: str) -> None:
        """Another replica owns ``name``: its events go back to the queue (``PassAcks.abandon``)."""
        self.acks.abandon(name)

    def passed(self, name: str, result: Pass) -> None:
        """What a completed pass teaches: its service's deployments, and whether ecsop
        started one (ECS must then report it)."""
        observation = result.observation
        if observation is not None:
            self.router.observed(name, (d.id for d in observation.service.deployments))
        applied = result.applied
        if applied is not None and applied.deployment_id and not applied.dry_run:
            self.router.started(name, applied.deployment_id)
            self.cadence.expect(name)

    def requeue_after(
        self, name: str, seconds: float | None, *, timer: bool = False
    ) -> float | None:
        """When to look at ``name`` again, as the cadence stands now.

        ``timer``: ``seconds`` is a time the pass waits for (a deploy window opening),
        not a poll of a rollout: events stopping changes nothing it waits for, so it is
        neither shortened to the fallback poll nor rescheduled when events stop.
        """
        with self._lock:
            if seconds is None or timer:
                self._polled.discard(name)
            else:
                self._polled.add(name)
        return seconds if timer else self.cadence.requeue_after(seconds)

    def resync_seconds(self) -> float:
        return self.cadence.resync_seconds()

    def forget(self, name: str) -> None:
        """The release left: drop what was kept for it."""
        self.router.forget(name)
        with self._lock:
            self._polled.discard(name)
        if self._metrics is not None:
            for woke in ("true", "false"):
                with suppress(KeyError):
                    self._metrics.matched.remove(name, woke)

    # -- events ---------------------------------------------------------------------------
    def _route(self, message: Message, received_at: datetime | None) -> str | None:
        event = ecs_events.parse(message.body)
        metrics = self._metrics
        assert metrics is not None
        metrics.received.labels(event.kind.value).inc()
        if event.time is not None and received_at is not None:
            metrics.age.observe(max(0.0, (received_at - event.time).total_seconds()))
            self._last_event = event.time
        if event.kind in (EventKind.OTHER, EventKind.MALFORMED):
            return None
        name = self.router.release_of(event)
        if name is None:
            return None
        self.cadence.heard(name)
        if not self._holds(name) and event_routing.worth_a_look(event):
            # Another replica's: whether it is news the owner has not seen is the
            # owner's to judge (remembered here, a second delivery to this replica would
            # be dropped as seen). The pass here finds it not ours: back to the queue.
            return name
        woke = self.router.news(name, event)
        metrics.matched.labels(name, "true" if woke else "false").inc()
        log.debug("event", release=name, kind=event.kind.value, what=event.name, woke=woke)
        return name if woke else None

    def _wake(self, name: str) -> None:
        """Look at ``name`` now, afresh; unless it is backing off after errors (its retry
        will look, and an event must not turn a backoff into a hammering)."""
        entry = self._specs.entry(name)
        if entry is not None and entry.loaded is not None:
            self._cache.invalidate(entry.loaded)
        if self._queue.num_requeues(name) == 0:
            self._queue.add(name)

    def _changed(self, state: CadenceState, began: Fallback | None) -> None:
        settings = self.cadence.settings
        if self._metrics is not None:
            self._metrics.flowing.set(1 if state.flowing else 0)
            if began is not None:
                self._metrics.fallbacks.labels(began.value).inc()
        if state.flowing:
            log.info(
                "events flowing again: polling rollouts every "
                f"{settings.events_poll:g}s, resyncing every {settings.events_resync:g}s",
                detail=state.detail,
            )
        elif began is not None:
            # Rollouts scheduled at the long interval are looked at on the short one now.
            with self._lock:
                polled = sorted(self._polled)
            for name in polled:
                self._queue.add_after(name, settings.fallback_poll)
            log.warning(
                "events not flowing: polling rollouts every "
                f"{settings.fallback_poll:g}s, resyncing every {settings.fallback_resync:g}s",
                reason=began.value,
                detail=state.detail,
            )

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The ``events`` part of ``/status`` (empty without a queue)."""
        if self.settings is None:
            return {}
        state = self.cadence.state()
        settings = self.cadence.settings
        return {
            "events": {
                "queue": self.settings.queue_url,
                "flowing": state.flowing,
                "reasons": [r.value for r in state.reasons],
                "detail": state.detail,
                "activePollSeconds": settings.events_poll
                if state.flowing
                else settings.fallback_poll,
                "resyncSeconds": self.cadence.resync_seconds(),
                "lastEventTime": self._last_event.isoformat() if self._last_event else None,
                "waitingForAPass": self.acks.waiting,
            }
        }
