"""Fixtures of the notification tests: local receivers, events, a fast-retrying notifier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ecsop.notify.config import Delivery, NotificationConfig
from ecsop.notify.delivery import Notifier, Provider
from ecsop.notify.events import Event, EventType, Revision, event_id
from ecsop.notify.metrics import NotifyMetrics
from ecsop.notify.routing import Router
from receivers import FakeGitHub, Receiver

SHA = "0123456789abcdef0123456789abcdef01234567"
V1 = "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:" + "1" * 64
CRASH = "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:" + "c" * 64

FAST = Delivery(
    workers=2,
    # Not shorter: a local POST slower than this on a loaded machine would be retried, and
    # the tests count deliveries exactly. The test of a hanging receiver sets its own.
    timeout_seconds=5,
    max_attempts=3,
    initial_backoff_seconds=0.05,
    max_backoff_seconds=0.2,
    max_retry_after_seconds=5,
)
"""Delivery settings for tests: short timeouts and backoffs (retries take milliseconds)."""


def event(kind: EventType = EventType.DEPLOY_ROLLED_BACK, **changes: Any) -> Event:
    base = Event(
        id=event_id(kind, "shop", "crash-fp", "failed_tasks", "ecs-svc/2"),
        type=kind,
        time=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        release="shop",
        labels={"team": "shop"},
        region="us-east-1",
        cluster="prod",
        service="shop",
        phase="RollingBack",
        reason="RollingBack",
        message="rolling back crash-fp to shop:1: failed_tasks: 3 failed tasks",
        commit=SHA,
        deployment="ecs-svc/2",
        source=Revision(
            "arn:aws:ecs:us-east-1:111122223333:task-definition/shop:2", "cf", {"app": CRASH}
        ),
        target=Revision(
            "arn:aws:ecs:us-east-1:111122223333:task-definition/shop:1", "v1", {"app": V1}
        ),
        failure="failed_tasks",
        detail="3 failed tasks (maxFailedTasks 1)",
        stop_reason="EssentialContainerExited: container app exit code 1",
        rolled_back_by="ecsop",
    )
    return replace(base, **changes)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()
    yield box
    box.close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    api = FakeGitHub()
    yield api
    api.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def notifier_for(registry: CollectorRegistry) -> Iterator[Callable[..., Notifier]]:
    """Start a notifier over ``providers`` (every event to every provider); closed after."""
    started: list[Notifier] = []

    def build(
        *providers: Provider, settings: Delivery = FAST, metrics: CollectorRegistry | None = None
    ) -> Notifier:
        notifier = Notifier(
            list(providers),
            Router([], [p.name for p in providers]),
            settings,
            NotifyMetrics(metrics or registry),
        )
        notifier.start()
        started.append(notifier)
        return notifier

    yield build
    for notifier in started:
        notifier.close(0)


def config(**document: Any) -> NotificationConfig:
    base = {"apiVersion": "ecsop.dev/v1", "kind": "NotificationConfig", **document}
    return NotificationConfig.model_validate(base, context={"environ": {"TOKEN": "t0ken"}})
