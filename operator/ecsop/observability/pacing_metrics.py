"""Metrics of ecsop's API budget: calls that waited for it, and the resync interval it allows.

``ecsop_resync_interval_seconds`` is the interval the daemon keeps between
the starts of two resyncs; above ``ecsop_resync_interval_configured_seconds``
it was stretched, because observing every release at ``--resync-interval``
would spend more DescribeServices than ecsop's budget allows (alert
``EcsopResyncStretched``). The wait counters show where calls queued for the
budget (``ecsop.aws.budget``), the deferred counter which deploys gave their
worker back instead of queueing (their passes come back when the token
exists, so a deploy is late, never lost: no alert); labels are AWS service
and operation names, a bounded set.

The daemon builds one on its registry and hands ``waited`` to the budget
and ``resync`` to the controller.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ecsop.observability.metrics import Counter, Gauge


class PacingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.resync_interval = Gauge(
            "ecsop_resync_interval_seconds",
            "Seconds between the starts of two resyncs: --resync-interval, or longer when "
            "observing every release within the AWS API budget takes longer.",
            registry=registry,
        )
        self.resync_configured = Gauge(
            "ecsop_resync_interval_configured_seconds",
            "The resync interval asked for (--resync-interval).",
            registry=registry,
        )
        self.budget_delayed = Counter(
            "ecsop_aws_budget_delayed_calls_total",
            "AWS API attempts that waited for ecsop's API budget (--api-budget) before being sent.",
            ["service", "operation"],
            registry=registry,
        )
        self.budget_wait = Counter(
            "ecsop_aws_budget_wait_seconds_total",
            "Seconds AWS API attempts waited for ecsop's API budget before being sent.",
            ["service", "operation"],
            registry=registry,
        )

        self.budget_deferred = Counter(
            "ecsop_aws_budget_deferred_calls_total",
            "Deploy calls not sent because they would have waited longer than a worker may "
            "for ecsop's API budget; the release's pass comes back when the token exists.",
            ["service", "operation"],
            registry=registry,
        )

    def resync(self, effective: float, configured: float) -> None:
        self.resync_interval.set(effective)
        self.resync_configured.set(configured)

    def waited(self, service: str, operation: str, seconds: float) -> None:
        self.budget_delayed.labels(service, operation).inc()
        self.budget_wait.labels(service, operation).inc(seconds)

    def deferred(self, service: str, operation: str) -> None:
        self.budget_deferred.labels(service, operation).inc()
