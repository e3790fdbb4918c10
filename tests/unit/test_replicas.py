"""The controller as one of several replicas: the gate, the fence, the writer, take-over resets.

Two Controllers share one in-memory ECS (``controller_world.FakeEcs``) and one
in-memory lease table (``lease_world``) on a manual clock, as two replicas
share AWS. Passes are driven one by one, lease rounds too.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from controller_world import V1, V2, Clock, FakeEcs, release_doc
from lease_world import Clock as LeaseClock
from lease_world import Link, Table
from prometheus_client import CollectorRegistry

from ecsop.cli.coordination import MAX_SHARDS
from ecsop.controller.executor import WriteLog
from ecsop.controller.manager import Controller, ControllerSettings
from ecsop.controller.ownership import ShardedOwnership
from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn
from ecsop.decision.memory import TAG_STATE, ServiceMemory
from ecsop.decision.reasons import Failure, Phase
from ecsop.observability.metrics import Metrics
from ecsop.runtime.lease import LeaseSettings
from ecsop.runtime.shards import ShardCoordinator, ShardListener

S = LeaseSettings()


class Hooks(ShardListener):
    def __init__(self) -> None:
        self.controller: Controller | None = None

    def acquiring(self, shard: int) -> None:
        assert self.controller is not None
        self.controller.shard_acquiring(shard)

    def lost(self, shard: int, why: str) -> None:
        assert self.controller is not None
        self.controller.shard_lost(shard, why)


class Replica:
    def __init__(self, name: str, specs: Path, ecs: FakeEcs, table: Table, clock: LeaseClock):
        self.link = Link(table)
        hooks = Hooks()
        self.coordinator = ShardCoordinator(
            self.link,
            1,
            name,
            f"http://{name}",
            S,
            hooks,
            clock=clock,
            rng=random.Random(name),
            drain_seconds=0.0,
        )
        self.controller = Controller(
            ControllerSettings(specs=specs, default_region="us-east-1"),
            lambda region, role: ecs,
            Metrics(CollectorRegistry()),
            clock=ecs.clock,
            ownership=ShardedOwnership(self.coordinator),
        )
        hooks.controller = self.controller
        self.controller.reload_specs()


class Pair:
    def __init__(self, tmp_path: Path) -> None:
        self.specs = tmp_path / "specs"
        self.specs.mkdir()
        self.ecs = FakeEcs(Clock())
        self.ecs.add_service("shop")
        self.write(V1)
        self.table = Table()
        self.clock = LeaseClock()
        self.a = Replica("a", self.specs, self.ecs, self.table, self.clock)
        self.b = Replica("b", self.specs, self.ecs, self.table, self.clock)

    def write(self, app: str) -> None:
        (self.specs / "shop.yaml").write_text(yaml.safe_dump(release_doc("shop", app)))
        for replica in getattr(self, "a", None), getattr(self, "b", None):
            if replica is not None:
                replica.controller.reload_specs()

    def rounds(self, count: int, *replicas: Replica) -> None:
        for _ in range(count):
            for replica in replicas:
                replica.coordinator.round()
            self.clock.now += S.retry_period_seconds

    def memory(self) -> ServiceMemory:
        return ServiceMemory.read(self.ecs.tags("shop"))


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


def test_only_the_holder_reconciles_and_its_writer_names_replica_shard_and_token(
    pair: Pair,
) -> None:
    pair.rounds(2, pair.a)  # a alone: it takes the one shard
    assert pair.b.controller.reconcile("shop") is None
    assert pair.ecs.calls == [] and pair.b.controller.statuses.get("shop") is None
    pair.a.controller.reconcile("shop")
    assert pair.a.controller.statuses.get("shop") is not None
    assert pair.memory().writer == "a@0.1"


def test_a_take_over_resumes_from_aws_and_a_return_is_not_another_instance(
    pair: Pair,
) -> None:
    pair.rounds(2, pair.a)
    pair.a.controller.reconcile("shop")  # adopts: a wrote the memory
    assert pair.a.controller.write_log.written(pair.ecs.services["shop"].arn)
    # a stops renewing (paused); b takes the shard a lease later and writes.
    pair.rounds(int(S.lease_seconds / S.retry_period_seconds) + 2, pair.b)
    assert pair.b.coordinator.held() == [0] and pair.a.coordinator.holding(0) is None
    pair.write(V2)
    pair.b.controller.reconcile("shop")
    assert pair.memory().writer == "b@0.2" and pair.ecs.calls.count("UpdateService") == 1
    # b dies; a comes back, sees its stale item, takes the shard again with token 3.
    pair.rounds(int(S.lease_seconds / S.retry_period_seconds) + 2, pair.a)
    assert pair.a.coordinator.held() == [0]
    assert not pair.a.controller.write_log.written(pair.ecs.services["shop"].arn), "reset"
    pair.ecs.complete("shop")
    pair.ecs.clock.advance(120)
    pair.a.controller.reconcile("shop")
    status = pair.a.controller.statuses.get("shop")
    assert status is not None and status.reason != "AnotherInstanceActing", status
    assert pair.memory().writer == "a@0.3"


def test_a_late_write_of_an_earlier_tenure_is_not_another_instance(pair: Pair) -> None:
    pair.rounds(2, pair.a)
    pair.a.controller.reconcile("shop")
    service = pair.ecs.services["shop"]
    # A write the previous tenure (token 0) had in flight lands after ours.
    late = ServiceMemory.read(service.tags).stamped("shop", "b@0.0", service_arn=service.arn)
    pair.ecs.tag_service(service.arn, late.tags())
    pair.a.controller.reconcile("shop")
    status = pair.a.controller.statuses.get("shop")
    assert status is not None and status.reason != "AnotherInstanceActing"
    # Another instance (no tenure of ours: a single-replica ecsop by mistake) still is.
    shop = pair.ecs.services["shop"]
    other = ServiceMemory.read(shop.tags).stamped("shop", "f00dcafe", service_arn=shop.arn)
    pair.ecs.tag_service(service.arn, other.tags())
    pair.a.controller.reconcile("shop")
    status = pair.a.controller.statuses.get("shop")
    assert status is not None and status.reason == "AnotherInstanceActing"


def test_a_pass_that_loses_its_shard_midway_starts_no_write(pair: Pair, monkeypatch: Any) -> None:
    pair.rounds(2, pair.a)
    pair.a.controller.reconcile("shop")
    pair.write(V2)
    original = pair.ecs.find_revision

    def slow_lookup(clone: Any) -> Any:
        pair.clock.now += S.renew_deadline_seconds + 0.1  # paused past the renew deadline
        return original(clone)

    monkeypatch.setattr(pair.ecs, "find_revision", slow_lookup)
    with structlog.testing.capture_logs() as logs:
        assert pair.a.controller.reconcile("shop") is None
    assert "RegisterTaskDefinition" not in pair.ecs.calls
    assert "UpdateService" not in pair.ecs.calls
    assert any(e["event"].startswith("stopped a pass") for e in logs)


def test_losing_a_shard_drops_its_releases_status_and_series(pair: Pair) -> None:
    pair.rounds(2, pair.a)
    pair.a.controller.reconcile("shop")
    metrics = pair.a.controller.metrics
    assert metrics.registry.get_sample_value(
        "ecsop_release_phase", {"release": "shop", "phase": Phase.SYNCED.value}
    )
    pair.a.link.down = True
    pair.rounds(int(S.renew_deadline_seconds / S.retry_period_seconds) + 1, pair.a)
    assert pair.a.controller.statuses.get("shop") is None
    assert (
        metrics.registry.get_sample_value(
            "ecsop_release_phase", {"release": "shop", "phase": Phase.SYNCED.value}
        )
        is None
    )


def test_write_log_forgets_by_release() -> None:
    log = WriteLog(predecessor=lambda writer: writer.endswith(".1"))
    log.succeeded("arn:1", "shop")
    log.succeeded("arn:2", "cart")
    log.failed("arn:3", ServiceMemory(release="shop"))
    assert log.written("arn:1") and not log.written("arn:1", "x@0.1")
    assert log.forget_releases({"shop"}) == 2
    assert not log.written("arn:1") and log.unwritten("arn:3") is None
    assert log.written("arn:2")


def test_the_state_tag_holds_the_longest_writer() -> None:
    """--replica-id is at most 48 characters, --shards at most MAX_SHARDS: with the longest
    of everything (a five-digit shard, a 13-digit lease token), it fits."""
    assert MAX_SHARDS - 1 < 2**16
    writer = f"{'r' * 48}@{2**16}.{2**40}"
    arn = TaskDefinitionArn("arn:aws:ecs:us-east-1:1:task-definition/f:1")
    memory = (
        ServiceMemory()
        .proven(
            "arn:aws:ecs:us-east-1:1:service/c/s", "x" * 63, arn, fingerprint=Fingerprint("d" * 16)
        )
        .rolling_out(Fingerprint("f" * 16))
        .failed_with(Fingerprint("e" * 16), max(Failure, key=lambda f: len(f.value)))
        .stamped("x" * 63, writer, service_arn="arn:aws:ecs:us-east-1:1:service/c/s")
    )
    assert "lgf=" in memory.tags()[TAG_STATE]
    assert len(memory.tags()[TAG_STATE]) <= 256
