"""The ``ecsop run`` flags of the event feed (``--events-queue`` and its fallback).

Declared here rather than in ``app`` so the verb's module stays one place per
concept; ``run.add`` calls ``add`` and ``run.handle`` calls ``settings``.
With a queue, the active poll and the resync default to long intervals
(``POLL_WITH_EVENTS``, ``RESYNC_WITH_EVENTS``): the events say when to look.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ecsop.cli import options
from ecsop.controller.event_feed import EventSettings

POLL = 5.0
POLL_WITH_EVENTS = 30.0
RESYNC = 30.0
RESYNC_WITH_EVENTS = 300.0
SILENCE = 60.0

Interval = Callable[[float | None, float], float]
"""(the flag's value or None, its default in seconds on AWS) -> the interval to use."""


def add(run: argparse.ArgumentParser) -> None:
    events = options.group(run, "events (EventBridge through SQS)")
    options.add(
        events,
        "--events-queue",
        env="ECSOP_EVENTS_QUEUE",
        metavar="SQS_URL",
        show_default="none: poll only",
        help="SQS queue an EventBridge rule delivers ECS's task, service action and deployment "
        "events to (helm-free-deploy/events sets it up): a release is looked at as soon as ECS "
        "reports news about its service, so the active poll and the resync can be long",
    )
    options.add(
        events,
        "--fallback-poll-interval",
        env="ECSOP_FALLBACK_POLL_INTERVAL",
        kind=float,
        metavar="SECONDS",
        show_default=f"{POLL:g}, divided by the clock speed with --sandbox",
        help="with --events-queue: how often a rollout is looked at while events do not flow",
    )
    options.add(
        events,
        "--fallback-resync-interval",
        env="ECSOP_FALLBACK_RESYNC_INTERVAL",
        kind=float,
        metavar="SECONDS",
        show_default=f"{RESYNC:g}, divided by the clock speed with --sandbox",
        help="with --events-queue: the resync interval while events do not flow",
    )
    options.add(
        events,
        "--events-silence-timeout",
        env="ECSOP_EVENTS_SILENCE_TIMEOUT",
        kind=float,
        metavar="SECONDS",
        show_default=f"{SILENCE:g}, divided by the clock speed with --sandbox",
        help="with --events-queue: when no event reports a deployment ecsop started within "
        "this long, events are not trusted and the fallback intervals apply until they flow "
        "again",
    )


def poll_default(args: argparse.Namespace) -> float:
    """``--active-poll-interval``'s default: long with a queue."""
    return POLL_WITH_EVENTS if args.events_queue else POLL


def resync_default(args: argparse.Namespace) -> float:
    """``--resync-interval``'s default: long with a queue."""
    return RESYNC_WITH_EVENTS if args.events_queue else RESYNC


def settings(args: argparse.Namespace, interval: Interval) -> EventSettings | None:
    queue: Any = args.events_queue
    if not queue:
        return None
    return EventSettings(
        queue_url=str(queue),
        fallback_poll_seconds=interval(args.fallback_poll_interval, POLL),
        fallback_resync_seconds=interval(args.fallback_resync_interval, RESYNC),
        silence_seconds=interval(args.events_silence_timeout, SILENCE),
    )
