"""Delivery against a local receiver: retries, Retry-After, timeouts, drops, order, duplicates.

The generic webhook is the provider under test (its request shape is
``test_providers.py``'s subject); retries use millisecond backoffs, except
where the receiver's own ``Retry-After`` is what is checked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ecsop.notify.config import Delivery, WebhookProvider
from ecsop.notify.delivery import Notifier, backoff
from ecsop.notify.events import EventType
from ecsop.notify.http import retry_after
from ecsop.notify.links import Links
from ecsop.notify.webhook import Webhook
from receivers import Receiver

from .conftest import FAST, event

Build = Callable[..., Notifier]


def webhook(url: str, name: str = "hook") -> Webhook:
    return Webhook(
        WebhookProvider(name=name, type="webhook", url=SecretStr(f"{url}/hook")), Links()
    )


def sample(registry: CollectorRegistry, metric: str, **labels: str) -> float:
    return registry.get_sample_value(metric, labels) or 0.0


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_delivery_is_one_post(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    notifier_for(webhook(receiver.url)).publish(event())
    (request,) = receiver.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hook")
    wait_until(
        lambda: (
            sample(
                registry,
                "ecsop_notifications_sent_total",
                provider="hook",
                event="deploy.rolled_back",
            )
            == 1
        )
    )
    assert sample(registry, "ecsop_notification_attempts_total", provider="hook", code="200") == 1


def test_429_waits_what_retry_after_asks(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    receiver.answer((429, {"Retry-After": "1"}, b"slow down"))
    notifier_for(webhook(receiver.url)).publish(event())
    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.95, "Retry-After: 1 means at least a second"
    assert first.body == second.body
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    wait_until(
        lambda: (
            sample(
                registry,
                "ecsop_notifications_sent_total",
                provider="hook",
                event="deploy.rolled_back",
            )
            == 1
        )
    )
    assert sample(registry, "ecsop_notification_attempts_total", provider="hook", code="429") == 1


def test_500_then_success(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    receiver.answer((500, {}, b"oops"), (503, {}, b"busy"))
    notifier_for(webhook(receiver.url)).publish(event())
    receiver.wait_for(3)
    wait_until(
        lambda: (
            sample(
                registry,
                "ecsop_notifications_sent_total",
                provider="hook",
                event="deploy.rolled_back",
            )
            == 1
        )
    )
    assert (
        sample(
            registry,
            "ecsop_notifications_dropped_total",
            provider="hook",
            reason="retries_exhausted",
        )
        == 0
    )


def test_a_receiver_that_hangs_times_out_and_is_dropped_after_its_attempts(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    receiver.answer("hang", "hang", "hang")
    started = time.monotonic()
    hang_fast = FAST.model_copy(update={"timeout_seconds": 0.5})
    notifier_for(webhook(receiver.url), settings=hang_fast).publish(event())
    wait_until(
        lambda: (
            sample(
                registry,
                "ecsop_notifications_dropped_total",
                provider="hook",
                reason="retries_exhausted",
            )
            == 1
        )
    )
    assert len(receiver.received()) == FAST.max_attempts
    assert (
        sample(registry, "ecsop_notification_attempts_total", provider="hook", code="Timeout") == 3
    )
    assert time.monotonic() - started < 5, "each attempt is bounded by timeoutSeconds"


def test_a_hanging_receiver_does_not_hold_publish_or_other_receivers(
    notifier_for: Build, registry: CollectorRegistry
) -> None:
    slow, fast = Receiver(), Receiver()
    try:
        slow.answer("hang", "hang", "hang")
        # Each attempt on the slow one hangs 5 s: bounds far below that prove nobody
        # waited for it, and stay true on a loaded machine.
        notifier = notifier_for(
            webhook(slow.url, "slow"),
            webhook(fast.url, "fast"),
            settings=FAST.model_copy(update={"timeout_seconds": 5}),
        )
        began = time.monotonic()
        notifier.publish(event())
        assert time.monotonic() - began < 1, "publish never waits for a receiver"
        fast.wait_for(1, timeout=3)
    finally:
        slow.close()
        fast.close()


def test_a_refusal_is_dropped_at_once(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    receiver.answer((400, {}, b"invalid_payload"))
    notifier_for(webhook(receiver.url)).publish(event())
    wait_until(
        lambda: (
            sample(
                registry, "ecsop_notifications_dropped_total", provider="hook", reason="rejected"
            )
            == 1
        )
    )
    time.sleep(0.3)
    assert len(receiver.received()) == 1


def test_a_retry_after_beyond_the_limit_gives_up(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    receiver.answer((429, {"Retry-After": "3600"}, b""))
    notifier_for(webhook(receiver.url)).publish(event())
    wait_until(
        lambda: (
            sample(
                registry,
                "ecsop_notifications_dropped_total",
                provider="hook",
                reason="retries_exhausted",
            )
            == 1
        )
    )
    assert len(receiver.received()) == 1


def test_a_full_queue_drops_and_counts(
    receiver: Receiver, notifier_for: Build, registry: CollectorRegistry
) -> None:
    receiver.answer("hang")
    notifier = notifier_for(
        webhook(receiver.url), settings=Delivery(queue_size=2, workers=1, timeout_seconds=1)
    )
    for index in range(4):
        notifier.publish(event(id=f"e{index}", release=f"r{index}"))
    assert (
        sample(registry, "ecsop_notifications_dropped_total", provider="hook", reason="queue_full")
        == 2
    )


def test_a_release_s_events_arrive_in_order_even_when_the_first_is_retried(
    receiver: Receiver, notifier_for: Build
) -> None:
    receiver.answer((500, {}, b""), (500, {}, b""))
    notifier = notifier_for(webhook(receiver.url))
    started = event(EventType.DEPLOY_STARTED, id="started")
    notifier.publish(started)
    notifier.publish(event(id="rolled-back"))
    requests = receiver.wait_for(4)
    assert [r.json()["id"] for r in requests] == ["started", "started", "started", "rolled-back"]


def test_the_same_event_is_queued_once(receiver: Receiver, notifier_for: Build) -> None:
    notifier = notifier_for(webhook(receiver.url))
    notifier.publish(event())
    notifier.publish(event())
    receiver.wait_for(1)
    time.sleep(0.3)
    assert len(receiver.received()) == 1


def test_close_delivers_what_is_queued_then_drops_the_rest(
    receiver: Receiver, registry: CollectorRegistry, notifier_for: Build
) -> None:
    gate = threading.Event()
    receiver.respond = lambda request: (gate.wait(5), (200, {}, b"ok"))[1]
    notifier = notifier_for(
        webhook(receiver.url), settings=FAST.model_copy(update={"workers": 1, "timeout_seconds": 5})
    )
    notifier.publish(event(id="a"))
    notifier.publish(event(id="b"))
    receiver.wait_for(1)
    threading.Timer(0.2, gate.set).start()
    notifier.close(grace=3)
    assert [r.json()["id"] for r in receiver.received()] == ["a", "b"]
    assert (
        sample(registry, "ecsop_notifications_dropped_total", provider="hook", reason="shutdown")
        == 0
    )


@pytest.mark.parametrize(
    ("attempts", "retry_after", "jitter", "expected"),
    [
        pytest.param(1, None, 1.0, 1.0, id="first-retry-initial-backoff"),
        pytest.param(3, None, 1.0, 4.0, id="doubles"),
        pytest.param(10, None, 1.0, 60.0, id="capped"),
        pytest.param(1, None, 0.0, 0.5, id="jitter-halves-at-most"),
        pytest.param(1, 30.0, 1.0, 30.0, id="retry-after-wins-when-longer"),
        pytest.param(10, 5.0, 1.0, 60.0, id="backoff-wins-when-longer"),
    ],
)
def test_backoff(attempts: int, retry_after: float | None, jitter: float, expected: float) -> None:
    assert backoff(attempts, retry_after, Delivery(), jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("7", 7.0, id="delta-seconds"),
        pytest.param("Wed, 21 Oct 2015 07:28:30 GMT", 30.0, id="http-date"),
        pytest.param("Wed, 21 Oct 2015 07:27:00 GMT", 0.0, id="http-date-in-the-past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert retry_after(header, now) == seconds
