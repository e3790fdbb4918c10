"""The requests a serving task answers, as numbers: counts and latencies over time.

An image with ``errorRate`` or ``latencyMs`` is *instrumented*: each task of it
answers ``requestsPerSecond`` requests per simulated second from the moment it
is RUNNING until it is told to stop, ``errorRate`` of them with 500.  Counts are
deterministic: after ``t`` seconds of serving a task has answered
``floor(rps * t)`` requests, ``floor(rps * errorRate * t)`` of them errors, so
every reader (the Prometheus endpoint, the per-minute CloudWatch metrics) sees
the same, ever-increasing totals.

Latency is log-normal with its 99th percentile at ``latencyMs`` and its median
at a quarter of it (sigma = ln 4 / z(0.99) ~= 0.596); a histogram bucket holds
``floor(total * CDF(le))`` requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

DEFAULT_LATENCY_MS = 50.0
"""p99 of an instrumented image that sets only ``errorRate``."""
MEDIAN_FRACTION = 0.25
"""Median latency as a fraction of the p99."""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""``http_request_duration_seconds`` bucket bounds (prometheus_client's defaults)."""

_Z99 = NormalDist().inv_cdf(0.99)
_EPSILON = 1e-9


@dataclass(frozen=True)
class Traffic:
    """How an instrumented task serves."""

    error_rate: float
    latency_ms: float
    requests_per_second: float

    @property
    def sigma(self) -> float:
        return math.log(1 / MEDIAN_FRACTION) / _Z99

    @property
    def median_seconds(self) -> float:
        return self.latency_ms * MEDIAN_FRACTION / 1000.0

    def counts(self, serving_seconds: float) -> tuple[int, int]:
        """(requests, errors) answered after ``serving_seconds`` of serving."""
        served = max(0.0, serving_seconds)
        total = math.floor(self.requests_per_second * served + _EPSILON)
        errors = math.floor(self.requests_per_second * self.error_rate * served + _EPSILON)
        return total, min(errors, total)

    def cdf(self, seconds: float) -> float:
        """The fraction of requests answered within ``seconds``."""
        if seconds <= 0:
            return 0.0
        z = (math.log(seconds) - math.log(self.median_seconds)) / self.sigma
        return NormalDist().cdf(z)

    def buckets(self, total: int) -> list[tuple[float, int]]:
        """Cumulative (upper bound, count) for ``total`` requests, ``+Inf`` excluded."""
        return [(le, math.floor(total * self.cdf(le) + _EPSILON)) for le in BUCKETS]

    def mean_seconds(self) -> float:
        return self.median_seconds * math.exp(self.sigma**2 / 2)
