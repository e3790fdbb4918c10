"""Prometheus metrics of the event feed (``--events-queue``).

Apart from ``metrics`` so that a daemon without a queue exposes none of
them. Labels are bounded: the event type (five values), release names, a
yes/no, and the fallback reason (two values).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

EVENT_TYPES = ("task", "service_action", "deployment", "other", "malformed")
"""The ``type`` label values (``ecsop.aws.ecs_events.EventKind``)."""
FALLBACK_REASONS = ("unreachable", "silent")
"""The ``reason`` label values (``ecsop.runtime.cadence.Fallback``)."""
AGE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
"""Event age in seconds: ECS delivers "within seconds"; minutes mean a backlog."""


class EventMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "ecsop_events_received_total",
            "Messages received from the event queue, by event type.",
            ["type"],
            registry=registry,
        )
        self.matched = Counter(
            "ecsop_events_matched_total",
            "ECS events about a managed release's service, by release and whether "
            "they made ecsop look at once (woke).",
            ["release", "woke"],
            registry=registry,
        )
        self.age = Histogram(
            "ecsop_event_age_seconds",
            "From an event's own time to its receipt (AWS's clock at the receive).",
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "ecsop_events_fallbacks_total",
            "Times ecsop stopped trusting events and went back to the short poll, by why.",
            ["reason"],
            registry=registry,
        )
        self.flowing = Gauge(
            "ecsop_events_flowing",
            "1 while events are trusted (long poll), 0 while ecsop polls at the short interval.",
            registry=registry,
        )
        self.flowing.set(1)
        for kind in EVENT_TYPES:
            self.received.labels(kind)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)
