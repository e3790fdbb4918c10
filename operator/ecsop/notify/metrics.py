"""Prometheus metrics of notification delivery, on the daemon's registry.

Labels are bounded: provider names come from the configuration file, event
types and drop reasons are fixed lists, attempt codes are HTTP statuses or
exception names. Every provider's drop counters exist at 0 from the start, so
``increase()`` sees the first drop and ``EcsopNotificationsDropped`` fires.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ecsop.notify.events import EventType

DROP_REASONS = ("queue_full", "rejected", "retries_exhausted", "shutdown")
"""Why a delivery was given up: the queue was full; the receiver refused it (a 4xx
other than 408/425/429, a redirect); every attempt failed or the receiver asked to
wait longer than ``maxRetryAfterSeconds``; the daemon stopped with it still queued."""
LATENCY_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0)


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "ecsop_notifications_sent_total",
            "Notifications delivered, by provider and event type.",
            ["provider", "event"],
            registry=registry,
        )
        self.dropped = Counter(
            "ecsop_notifications_dropped_total",
            "Notifications given up, by provider and reason.",
            ["provider", "reason"],
            registry=registry,
        )
        self.attempts = Counter(
            "ecsop_notification_attempts_total",
            "HTTP attempts to deliver notifications, by provider and result code.",
            ["provider", "code"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "ecsop_notification_queue_depth",
            "Notifications waiting to be delivered (retries included).",
            registry=registry,
        )
        self.latency = Histogram(
            "ecsop_notification_delivery_seconds",
            "From an event to its delivery, retries included.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def provider(self, name: str) -> None:
        """Create ``name``'s series at 0, so a first drop is an increase."""
        for reason in DROP_REASONS:
            self.dropped.labels(name, reason)
        for event in EventType:
            self.sent.labels(name, event.value)
