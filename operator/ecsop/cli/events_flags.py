"""The ``ecsop run`` flags of the event feed (``--events-queue`` and its fallback).

Declared here rather than in ``app`` so the verb's module stays one place per
concept; ``app._add_run`` calls ``add`` and ``app._run`` calls ``settings``.
With a queue, the active poll and the resync default to long intervals
(``POLL_WITH_EVENTS``, ``RESYNC_WITH_EVENTS``): the events say when to look.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from ecsop.controller.event_feed import EventSettings

POLL = 5.0
POLL_WITH_EVENTS = 30.0
RESYNC = 30.0
RESYNC_WITH_EVENTS = 300.0
SILENCE = 60.0

Interval = Callable[[float | None, float], float]
"""(the flag's value or None, its default in seconds on AWS) -> the interval to use."""


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"ecsop: environment variable {name}={raw!r} is not valid") from None


def add(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--events-queue",
        metavar="SQS_URL",
        default=os.environ.get("ECSOP_EVENTS_QUEUE") or None,
        help="SQS queue an EventBridge rule delivers ECS's task, service action and deployment "
        "events to (env ECSOP_EVENTS_QUEUE; helm-free-deploy/events sets it up): a release is "
        "looked at as soon as ECS reports news about its service, so the active poll and the "
        "resync can be long",
    )
    run.add_argument(
        "--fallback-poll-interval",
        metavar="SECONDS",
        type=float,
        default=_env_float("ECSOP_FALLBACK_POLL_INTERVAL"),
        help="with --events-queue: how often a rollout is looked at while events do not flow "
        f"(env ECSOP_FALLBACK_POLL_INTERVAL; default {POLL:g}, divided by the clock speed with "
        "--sandbox)",
    )
    run.add_argument(
        "--fallback-resync-interval",
        metavar="SECONDS",
        type=float,
        default=_env_float("ECSOP_FALLBACK_RESYNC_INTERVAL"),
        help="with --events-queue: the resync interval while events do not flow "
        f"(env ECSOP_FALLBACK_RESYNC_INTERVAL; default {RESYNC:g}, divided by the clock speed "
        "with --sandbox)",
    )
    run.add_argument(
        "--events-silence-timeout",
        metavar="SECONDS",
        type=float,
        default=_env_float("ECSOP_EVENTS_SILENCE_TIMEOUT"),
        help="with --events-queue: when no event reports a deployment ecsop started within "
        "this long, events are not trusted and the fallback intervals apply until they flow "
        f"again (env ECSOP_EVENTS_SILENCE_TIMEOUT; default {SILENCE:g}, divided by the clock "
        "speed with --sandbox)",
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
