"""How often to look: long intervals while events flow, the short ones while they do not.

A controller fed by an event queue can poll rarely, because the events say
when to look; but only while they arrive. ``Cadence`` holds that judgement:

- **flowing** (the start, with a queue): a rollout is looked at every
  ``events_poll`` seconds, everything every ``events_resync`` seconds;
- **not flowing**, for one of two reasons, each said once when it starts:
  ``unreachable`` (receiving from the queue failed ``failures_before_fallback``
  times in a row) or ``silent`` (a change this controller made, which the
  source must report, went unreported for ``silence_seconds``: ``expect``, then
  ``heard``). Then the short intervals (``fallback_poll``, ``fallback_resync``)
  apply, as if there were no queue.

Events flow again once a receive succeeds (clears ``unreachable``) and an
event about any key arrives (clears ``silent``). Without a queue
(``CadenceSettings.events`` False) nothing here changes a requeue.

Knows nothing about ECS or SQS: keys are strings, time is monotonic seconds.
Callers: ``ecsop.controller`` (requeues, resync interval, expectations) and
``ecsop.runtime.event_source`` (receives, what was heard).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Fallback(StrEnum):
    """Why events are not trusted (the ``reason`` of ``ecsop_events_fallbacks_total``)."""

    UNREACHABLE = "unreachable"
    """Receiving from the queue keeps failing."""
    SILENT = "silent"
    """A change ecsop made was not reported by any event in time."""


@dataclass(frozen=True)
class CadenceSettings:
    events: bool = False
    """An event queue feeds the controller; False: poll at the fallback intervals only."""
    events_poll: float = 30.0
    """Seconds between looks at a rollout while events flow (the decision's requeue)."""
    events_resync: float = 300.0
    """Seconds between full resyncs while events flow."""
    fallback_poll: float = 5.0
    """Seconds between looks at a rollout while they do not (or without a queue)."""
    fallback_resync: float = 30.0
    """Seconds between full resyncs while they do not (or without a queue)."""
    silence_seconds: float = 60.0
    """How long a change may go unreported before events are no longer trusted."""
    failures_before_fallback: int = 3
    """Consecutive failed receives that make the queue unreachable."""


@dataclass(frozen=True)
class CadenceState:
    flowing: bool
    reasons: tuple[Fallback, ...]
    detail: str
    """What happened, in words (the last fallback's cause, or "events flowing")."""
    since: float
    """Monotonic seconds of the last change."""


Listener = Callable[[CadenceState, Fallback | None], None]
"""Told of each change: the new state, and the fallback that began (None: recovered)."""


class Cadence:
    def __init__(
        self,
        settings: CadenceSettings,
        *,
        on_change: Listener = lambda state, began: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._on_change = on_change
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._reasons: set[Fallback] = set()
        self._detail = "events flowing" if settings.events else "no event queue"
        self._since = monotonic()
        self._failures = 0
        self._expected: dict[str, float] = {}
        """Key -> when a change that must be reported was made (oldest kept)."""

    # -- what to do ---------------------------------------------------------------
    @property
    def flowing(self) -> bool:
        """Events are trusted now (an overdue expectation is noticed by asking)."""
        self.check()
        with self._lock:
            return self.settings.events and not self._reasons

    def requeue_after(self, seconds: float | None) -> float | None:
        """A pass's "look again in" (computed with ``events_poll``), as it applies now."""
        if seconds is None or not self.settings.events or self.flowing:
            return seconds
        return min(seconds, self.settings.fallback_poll)

    def resync_seconds(self) -> float:
        if self.settings.events and self.flowing:
            return self.settings.events_resync
        return self.settings.fallback_resync

    def state(self) -> CadenceState:
        self.check()
        with self._lock:
            return self._state()

    # -- what happened --------------------------------------------------------------
    def expect(self, key: str) -> None:
        """A change was made to ``key``'s world: an event about it must follow."""
        if not self.settings.events:
            return
        with self._lock:
            self._expected.setdefault(key, self._monotonic())

    def heard(self, key: str) -> None:
        """An event about ``key`` arrived: its expectation is met, and events flow."""
        with self._lock:
            self._expected.pop(key, None)
            self._recover(Fallback.SILENT, "events arrive again")

    def received(self) -> None:
        """A receive succeeded (messages or not): the queue is reachable."""
        with self._lock:
            self._failures = 0
            self._recover(Fallback.UNREACHABLE, "the event queue answers again")

    def failed(self, why: str, *, at_once: bool = False) -> None:
        """A receive failed (``at_once``: the queue cannot be read at all, e.g. at start)."""
        if not self.settings.events:
            return
        with self._lock:
            self._failures += 1
            if at_once or self._failures >= self.settings.failures_before_fallback:
                self._fall_back(Fallback.UNREACHABLE, f"cannot receive from the event queue: {why}")

    def check(self) -> None:
        """Fall back if an expected event is overdue."""
        if not self.settings.events:
            return
        with self._lock:
            if Fallback.UNREACHABLE in self._reasons:
                self._expected.clear()  # no event can arrive: silence says nothing more
            if not self._expected:
                return
            now = self._monotonic()
            key, since = min(self._expected.items(), key=lambda item: item[1])
            if now - since < self.settings.silence_seconds:
                return
            self._expected.clear()  # the fallback now covers every one of them
            self._fall_back(
                Fallback.SILENT,
                f"no event about {key} arrived within {self.settings.silence_seconds:g}s "
                "of ecsop's change to it (is the EventBridge rule delivering its cluster's "
                "events to the queue?)",
            )

    # -- internals (lock held) --------------------------------------------------------
    def _fall_back(self, reason: Fallback, detail: str) -> None:
        if reason in self._reasons:
            return
        self._reasons.add(reason)
        self._detail = detail
        self._since = self._monotonic()
        self._on_change(self._state(), reason)

    def _recover(self, reason: Fallback, detail: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        self._since = self._monotonic()
        if not self._reasons:
            self._detail = detail
            self._on_change(self._state(), None)

    def _state(self) -> CadenceState:
        return CadenceState(
            flowing=self.settings.events and not self._reasons,
            reasons=tuple(sorted(self._reasons)),
            detail=self._detail,
            since=self._since,
        )
