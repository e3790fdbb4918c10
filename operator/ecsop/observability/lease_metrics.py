"""Prometheus metrics of shard leases (several replicas, ``--coordination``).

Exported only by a replica that runs with coordination. Every replica exports
``ecsop_lease_held`` for *every* shard (1 for those it holds), so
``max by (shard) (ecsop_lease_held) == 0`` finds a shard nobody acts on, and
transitions count per shard, so flapping shows without parsing logs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

TRANSITIONS = ("acquired", "released", "lost")
"""``acquired`` (taken), ``released`` (handed over cleanly), ``lost`` (not renewed in time,
or found held by another replica: this replica stopped acting on it)."""


class LeaseMetrics:
    def __init__(self, registry: CollectorRegistry, shards: int) -> None:
        self._count = shards
        self.shards = Gauge(
            "ecsop_shards", "Shards the releases are spread over (--shards).", registry=registry
        )
        self.shards.set(shards)
        self.held = Gauge(
            "ecsop_lease_held",
            "1 for each shard this replica holds (and acts on), 0 for the others.",
            ["shard"],
            registry=registry,
        )
        self.shards_held = Gauge(
            "ecsop_shards_held", "Shards this replica holds now.", registry=registry
        )
        self.transitions = Counter(
            "ecsop_lease_transitions_total",
            "Lease transitions of this replica, by shard and kind (acquired, released, lost).",
            ["shard", "transition"],
            registry=registry,
        )
        self.renew_failures = Counter(
            "ecsop_lease_renew_failures_total",
            "Lease renewals that did not succeed (table error, or held by another replica).",
            ["shard"],
            registry=registry,
        )
        self.replicas = Gauge(
            "ecsop_replicas",
            "Live replicas this replica sees (itself included), from their heartbeats.",
            registry=registry,
        )
        self.table_up = Gauge(
            "ecsop_coordination_table_up",
            "1 when the last round read the coordination table, else 0.",
            registry=registry,
        )
        for shard in range(shards):
            label = str(shard)
            self.held.labels(label).set(0)
            self.renew_failures.labels(label)
            for kind in TRANSITIONS:
                self.transitions.labels(label, kind)

    def transition(self, shard: int, kind: str) -> None:
        self.transitions.labels(str(shard), kind).inc()
        self.held.labels(str(shard)).set(1 if kind == "acquired" else 0)

    def renew_failed(self, shard: int) -> None:
        self.renew_failures.labels(str(shard)).inc()

    def round_done(self, held: list[int], live: int, table_up: bool) -> None:
        self.shards_held.set(len(held))
        self.replicas.set(live)
        self.table_up.set(1 if table_up else 0)
        mine = set(held)
        for shard in range(self._count):
            self.held.labels(str(shard)).set(1 if shard in mine else 0)
