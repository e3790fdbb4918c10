"""Waking keys from a message queue, and deleting each message once its key has been looked at.

An event only says "look now": the key it names is put on the work queue and
the next pass observes afresh. So a message is worth keeping exactly until a
pass of its key that *began after the message arrived* has completed (that
pass's observation is at least as new as the event); then it is deleted. A
pass that fails keeps its messages for the next one; a daemon killed before
deleting leaves them to be delivered again (the queue's visibility timeout),
which only causes one more look. A message naming no key, or nothing worth a
look, is deleted at once.

- ``PassAcks``: the receipts waiting for each key's next pass, and the ones
  whose pass is done (to delete);
- ``EventPoller``: one thread long-polls the source and routes each message
  (``route``: to a key to wake, or to nothing), another deletes what is done.
  Receiving failures back off and are reported to the ``Cadence``.

Knows nothing of SQS, ECS or releases: a source receives batches of messages
with a receipt and a body, keys are strings.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from ecsop.runtime.cadence import Cadence

log = structlog.get_logger("ecsop.runtime.event_source")


class Message(Protocol):
    @property
    def receipt(self) -> str: ...

    @property
    def body(self) -> str: ...


class Batch(Protocol):
    @property
    def messages(self) -> Sequence[Message]: ...

    @property
    def at(self) -> datetime | None:
        """The source's own clock when it handed the batch over."""
        ...


class Source(Protocol):
    def receive(self, wait_seconds: int) -> Batch: ...

    def delete(self, receipts: Sequence[str]) -> list[str]:
        """Delete these deliveries; return the receipts refused."""
        ...


Route = Callable[[Message, "datetime | None"], "str | None"]
"""A message (and when it was received, by the source's clock) -> the key to wake, or None."""


@dataclass(frozen=True)
class PollerSettings:
    wait_seconds: int = 20
    """Long-poll wait of each receive (SQS's maximum is 20)."""
    backoff_initial: float = 0.5
    """Seconds before retrying a failed receive; doubles with each failure in a row."""
    backoff_max: float = 30.0
    """Cap on that wait."""


class PassAcks:
    """Receipts waiting for their key's next pass, then waiting to be deleted."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._waiting: dict[str, list[str]] = defaultdict(list)
        self._done: list[str] = []
        self._closed = False

    def add(self, key: str, receipt: str) -> None:
        """``receipt`` is to be deleted after ``key``'s next pass (one not begun yet)."""
        with self._cond:
            self._waiting[key].append(receipt)

    def release(self, receipts: Sequence[str]) -> None:
        """Delete these without waiting for any pass."""
        if receipts:
            with self._cond:
                self._done.extend(receipts)
                self._cond.notify_all()

    @contextmanager
    def pass_of(self, key: str) -> Iterator[None]:
        """Around one pass of ``key``: receipts that arrived before it began are released
        if it completes, and wait for the next pass if it raises."""
        with self._cond:
            taken = self._waiting.pop(key, [])
        try:
            yield
        except BaseException:
            if taken:
                with self._cond:
                    self._waiting[key][:0] = taken
            raise
        self.release(taken)

    def abandon(self, key: str) -> None:
        """Another process acts on ``key`` (another replica owns it): its receipts are
        dropped here, not deleted, so the queue delivers them again after its visibility
        timeout, to whichever process receives them then."""
        with self._cond:
            self._waiting.pop(key, None)

    def take_done(self, timeout: float) -> list[str]:
        """The receipts to delete now, waiting up to ``timeout`` seconds for some."""
        with self._cond:
            if not self._done and not self._closed:
                self._cond.wait(timeout)
            done, self._done = self._done, []
            return done

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Receipts waiting for a pass."""
        with self._cond:
            return sum(len(r) for r in self._waiting.values())


class EventPoller:
    def __init__(
        self,
        source: Source,
        route: Route,
        wake: Callable[[str], None],
        acks: PassAcks,
        cadence: Cadence,
        settings: PollerSettings | None = None,
        *,
        on_loop_error: Callable[[str], None] = lambda loop: None,
    ) -> None:
        self._source = source
        self._route = route
        self._wake = wake
        self._acks = acks
        self._cadence = cadence
        self._settings = settings or PollerSettings()
        self._on_loop_error = on_loop_error
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in (
            (self._receive_forever, "events-receive"),
            (self._delete_forever, "events-delete"),
        ):
            thread = threading.Thread(target=target, name=f"ecsop-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = 2.0) -> None:
        """Stop receiving; delete what is done. A receive in its long poll is not waited
        for: what it brings is delivered again after the queue's visibility timeout."""
        self._stop.set()
        self._acks.close()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _receive_forever(self) -> None:
        backoff = self._settings.backoff_initial
        while not self._stop.is_set():
            try:
                batch = self._source.receive(self._settings.wait_seconds)
            except Exception as error:  # unreachable, denied, throttled: back off, say so
                self._cadence.failed(str(error))
                log.debug("receive failed", error=str(error), retry_in=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._settings.backoff_max)
                continue
            backoff = self._settings.backoff_initial
            self._cadence.received()
            if self._stop.is_set():
                return  # stopping: leave them for the queue to deliver again
            try:
                self._handle(batch)
            except Exception:  # a bug in routing must not stop the events
                log.exception("handling received events failed")
                self._on_loop_error("events")
            self._cadence.check()

    def _handle(self, batch: Batch) -> None:
        now: list[str] = []
        for message in batch.messages:
            try:
                key = self._route(message, batch.at)
            except Exception:
                log.exception("routing an event failed; deleting it")
                self._on_loop_error("events")
                key = None
            if key is None:
                now.append(message.receipt)
                continue
            self._acks.add(key, message.receipt)  # before the wake: its pass must see it
            self._wake(key)
        self._acks.release(now)

    def _delete_forever(self) -> None:
        while True:
            receipts = self._acks.take_done(timeout=1.0)
            if receipts:
                try:
                    refused = self._source.delete(receipts)
                except Exception as error:  # they come back after the visibility timeout
                    log.warning("could not delete events", count=len(receipts), error=str(error))
                else:
                    if refused:
                        log.debug("deliveries refused (delivered again since)", count=len(refused))
            elif self._stop.is_set():
                return
