"""The event feed over an in-memory ECS and a scripted queue.

What a user would notice: which releases an event makes ecsop look at now,
when each message is deleted (only after a pass that began after it arrived
completed), what is counted, and when ecsop stops trusting the events and
polls at the short interval again (and says so). Passes are run by hand; only
the poller's two threads run on their own, and the tests wait on what they do.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_world import ACCOUNT, CLUSTER, V1, V2, Clock, FakeEcs, release_doc
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from ecsop.aws.clients import AwsError
from ecsop.aws.event_queue import QueueInfo
from ecsop.controller.event_feed import EventSettings
from ecsop.controller.manager import Controller, ControllerSettings
from ecsop.observability.metrics import Metrics
from ecsop.runtime.event_source import PassAcks


@dataclass(frozen=True)
class Msg:
    receipt: str
    body: str


@dataclass(frozen=True)
class Batch:
    messages: tuple[Msg, ...]
    at: datetime | None


class ScriptedQueue:
    """A queue tests put messages on; ``fail`` makes the next receives raise."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[Msg] = queue.Queue()
        self.deleted: list[str] = []
        self.failing = threading.Event()
        self.receives = 0
        self.at = datetime(2026, 11, 23, 12, 0, 3, tzinfo=UTC)
        self._lock = threading.Lock()
        self._n = 0

    def put(self, body: str) -> str:
        with self._lock:
            self._n += 1
            receipt = f"r{self._n}"
        self.inbox.put(Msg(receipt, body))
        return receipt

    def describe(self) -> QueueInfo:
        return QueueInfo("arn:aws:sqs:us-east-1:1:q", 30, 0, "")

    def receive(self, wait_seconds: int) -> Batch:
        self.receives += 1
        if self.failing.is_set():
            time.sleep(0.01)
            raise AwsError("AWS.SimpleQueueService.NonExistentQueue", "gone", "ReceiveMessage")
        try:
            first = self.inbox.get(timeout=0.02)
        except queue.Empty:
            return Batch((), self.at)
        found = [first]
        while len(found) < 10:
            try:
                found.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return Batch(tuple(found), self.at)

    def delete(self, receipts: Sequence[str]) -> list[str]:
        with self._lock:
            self.deleted.extend(receipts)
        return []


def event(detail_type: str, service: str, detail: dict[str, Any], cluster: str = CLUSTER) -> str:
    task = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/{cluster}/0123456789abcdef"
    service_arn = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/{cluster}/{service}"
    resources = [task] if detail_type == "ECS Task State Change" else [service_arn]
    return json.dumps(
        {
            "version": "0",
            "id": "e1",
            "detail-type": detail_type,
            "source": "aws.ecs",
            "account": ACCOUNT,
            "time": "2026-11-23T12:00:01Z",
            "region": "us-east-1",
            "resources": resources,
            "detail": detail,
        }
    )


def task_event(service: str, last: str, desired: str, cluster: str = CLUSTER) -> str:
    return event(
        "ECS Task State Change",
        service,
        {
            "clusterArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{cluster}",
            "group": f"service:{service}",
            "startedBy": "ecs-svc/1",
            "lastStatus": last,
            "desiredStatus": desired,
        },
        cluster,
    )


def deployment_event(service: str, name: str = "SERVICE_DEPLOYMENT_COMPLETED") -> str:
    return event(
        "ECS Deployment State Change",
        service,
        {"eventType": "INFO", "eventName": name, "deploymentId": "ecs-svc/1"},
    )


class Fed:
    """A Controller with an event queue, over FakeEcs; passes run by hand."""

    def __init__(self, tmp_path: Path, silence: float = 60.0) -> None:
        self.specs = tmp_path / "specs"
        self.specs.mkdir()
        self.ecs = FakeEcs(Clock())
        self.registry = CollectorRegistry()
        self.source = ScriptedQueue()
        settings = ControllerSettings(
            specs=self.specs,
            default_region="us-east-1",
            active_poll_seconds=30,
            resync_seconds=300,
            events=EventSettings(
                "https://sqs.us-east-1.amazonaws.com/1/q",
                fallback_poll_seconds=5,
                fallback_resync_seconds=30,
                silence_seconds=silence,
            ),
        )
        self.controller = Controller(
            settings,
            lambda region, role: self.ecs,
            Metrics(self.registry),
            event_source=self.source,
        )
        self.feed = self.controller.events

    def release(self, name: str, app: str = V1) -> None:
        self.ecs.services.get(name) or self.ecs.add_service(name)
        (self.specs / f"{name}.yaml").write_text(yaml.safe_dump(release_doc(name, app)))
        self.controller.reload_specs()

    def queued(self) -> set[str]:
        """The releases waiting for a pass, taken off the work queue."""
        found = set()
        while (name := self.controller.queue.get(timeout=0)) is not None:
            found.add(name)
            self.controller.queue.done(name)
        return found

    def sample(self, metric: str, **labels: str) -> float:
        return self.registry.get_sample_value(metric, labels) or 0.0


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Fed]:
    world = Fed(tmp_path)
    world.release("shop")
    world.release("cart")
    world.controller.reconcile("shop")
    world.controller.reconcile("cart")
    world.queued()
    world.feed.start()
    yield world
    world.feed.stop()


def wait(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    ("body", "woken", "deleted_at_once"),
    [
        pytest.param(
            task_event("shop", "STOPPING", "STOPPED"), {"shop"}, False, id="task-stopping"
        ),
        pytest.param(task_event("shop", "STOPPED", "STOPPED"), {"shop"}, False, id="task-stopped"),
        pytest.param(task_event("shop", "PENDING", "RUNNING"), set(), True, id="task-starting"),
        pytest.param(deployment_event("cart"), {"cart"}, False, id="deployment-completed"),
        pytest.param(
            event(
                "ECS Service Action",
                "shop",
                {"eventType": "INFO", "eventName": "SERVICE_STEADY_STATE"},
            ),
            {"shop"},
            False,
            id="steady-state",
        ),
        pytest.param(deployment_event("unmanaged"), set(), True, id="another-service"),
        pytest.param(
            task_event("shop", "STOPPED", "STOPPED", cluster="staging"),
            set(),
            True,
            id="same-name-other-cluster",
        ),
        pytest.param("{not json", set(), True, id="malformed"),
        pytest.param(
            json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
            set(),
            True,
            id="not-ecs",
        ),
    ],
)
def test_an_event_wakes_the_release_it_is_about_if_it_is_news(
    fed: Fed, body: str, woken: set[str], deleted_at_once: bool
) -> None:
    receipt = fed.source.put(body)
    if deleted_at_once:
        wait(lambda: receipt in fed.source.deleted, "the message deleted")
        assert fed.queued() == set()
        return
    name = wait(fed.queued, "a release queued")
    assert name == woken
    time.sleep(0.05)
    assert receipt not in fed.source.deleted, "deleted before its release was looked at"
    fed.controller.reconcile(next(iter(woken)))
    wait(lambda: receipt in fed.source.deleted, "the message deleted after the pass")


def test_a_message_waits_for_a_pass_that_began_after_it(fed: Fed) -> None:
    """A pass in flight when the event arrives observed too early: the next one deletes it."""
    arrived = threading.Event()
    original = fed.ecs.describe_services

    def slow_describe(cluster: str, names: Sequence[str]) -> Any:
        found = original(cluster, names)
        receipt.append(fed.source.put(task_event("shop", "STOPPED", "STOPPED")))
        wait(lambda: fed.feed.acks.waiting, "the event to be routed")
        arrived.set()
        return found

    receipt: list[str] = []
    fed.ecs.describe_services = slow_describe  # type: ignore[method-assign]
    fed.controller.reconcile("shop")  # observes, then the event arrives
    assert arrived.is_set()
    time.sleep(0.05)
    assert receipt[0] not in fed.source.deleted
    fed.ecs.describe_services = original  # type: ignore[method-assign]
    fed.controller.reconcile("shop")
    wait(lambda: receipt[0] in fed.source.deleted, "deleted after the next pass")


def test_a_failed_pass_keeps_its_messages_for_the_next(fed: Fed) -> None:
    receipt = fed.source.put(task_event("shop", "STOPPED", "STOPPED"))
    wait(fed.queued, "shop queued")
    fed.ecs.describe_error = AwsError("ThrottlingException", "slow down", "DescribeServices")
    with pytest.raises(AwsError):
        fed.controller.reconcile("shop")
    time.sleep(0.05)
    assert receipt not in fed.source.deleted
    fed.ecs.describe_error = None
    fed.controller.reconcile("shop")
    wait(lambda: receipt in fed.source.deleted, "deleted after the pass that worked")


def test_an_event_does_not_cut_short_a_release_backing_off_after_errors(fed: Fed) -> None:
    for _ in range(12):  # shop keeps failing: its backoff has grown to seconds
        fed.controller.queue.add_rate_limited("shop")
    time.sleep(0.02)
    fed.queued()  # the first, 5 ms retry went by
    fed.source.put(task_event("shop", "STOPPED", "STOPPED"))
    wait(lambda: fed.feed.acks.waiting, "routed")
    assert "shop" not in fed.queued()


def test_events_are_counted_by_type_and_release(fed: Fed) -> None:
    fed.source.put(task_event("shop", "STOPPED", "STOPPED"))
    fed.source.put(task_event("shop", "RUNNING", "RUNNING"))
    fed.source.put(deployment_event("cart"))
    fed.source.put("garbage")
    wait(lambda: fed.sample("ecsop_events_received_total", type="malformed"), "counted")
    wait(lambda: fed.sample("ecsop_events_received_total", type="task") == 2, "tasks counted")
    assert fed.sample("ecsop_events_received_total", type="deployment") == 1
    assert fed.sample("ecsop_events_matched_total", release="shop", woke="true") == 1
    assert fed.sample("ecsop_events_matched_total", release="shop", woke="false") == 1
    assert fed.sample("ecsop_events_matched_total", release="cart", woke="true") == 1
    # The events happened at 12:00:01; the queue answered at 12:00:03 (its Date).
    assert fed.sample("ecsop_event_age_seconds_sum") == pytest.approx(6.0)
    assert fed.sample("ecsop_event_age_seconds_count") == 3


def test_a_deploy_nobody_reports_makes_ecsop_poll_again_and_say_so(tmp_path: Path) -> None:
    world = Fed(tmp_path, silence=0.2)
    world.release("shop")
    world.controller.reconcile("shop")
    world.feed.start()
    try:
        world.release("shop", V2)
        with capture_logs() as logs:
            assert world.controller.reconcile("shop") == 30  # deployed; events will say more
            time.sleep(0.25)
            world.feed.cadence.check()
            # The rollout scheduled 30 s out is looked at on the short poll from now.
            assert world.controller.queue.waiting == 1
            assert world.controller.reconcile("shop") == 5  # nobody said: the short poll
        assert world.sample("ecsop_events_flowing") == 0
        assert world.sample("ecsop_events_fallbacks_total", reason="silent") == 1
        warning = next(e for e in logs if e["log_level"] == "warning")
        assert warning["reason"] == "silent"
        assert "no event about shop arrived within 0.2s" in warning["detail"]
        status = world.feed.status()["events"]
        assert status["flowing"] is False and status["activePollSeconds"] == 5
        assert status["resyncSeconds"] == 30
        # An event about it arrives after all: events flow again.
        world.source.put(deployment_event("shop", "SERVICE_DEPLOYMENT_IN_PROGRESS"))
        wait(lambda: world.sample("ecsop_events_flowing") == 1, "flowing again")
        assert world.controller.reconcile("shop") == 30
    finally:
        world.feed.stop()


def test_an_unreachable_queue_makes_ecsop_poll_again_until_it_answers(fed: Fed) -> None:
    fed.source.failing.set()
    wait(lambda: fed.sample("ecsop_events_flowing") == 0, "fallen back", timeout=10)
    assert fed.sample("ecsop_events_fallbacks_total", reason="unreachable") == 1
    assert "NonExistentQueue" in fed.feed.status()["events"]["detail"]
    assert fed.feed.resync_seconds() == 30
    fed.source.failing.clear()
    wait(lambda: fed.sample("ecsop_events_flowing") == 1, "flowing again", timeout=10)
    assert fed.feed.resync_seconds() == 300


def test_a_release_waiting_for_its_deploy_window_is_not_polled_when_events_stop(
    fed: Fed,
) -> None:
    """A deploy window's opening is a time, not a rollout to poll: with events down, a
    freeze of 1,000 held releases would otherwise run a pass each every fallback poll."""
    fed.source.failing.set()
    wait(lambda: fed.sample("ecsop_events_flowing") == 0, "fallen back", timeout=10)
    fallback = fed.feed.cadence.settings.fallback_poll
    assert fed.feed.requeue_after("rollout", 3600.0) == fallback
    assert fed.feed.requeue_after("held", 3600.0, timer=True) == 3600.0
    fed.source.failing.clear()


def test_without_a_queue_no_event_metric_exists(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    (tmp_path / "specs").mkdir()
    controller = Controller(
        ControllerSettings(specs=tmp_path / "specs", default_region="us-east-1"),
        lambda region, role: FakeEcs(Clock()),
        Metrics(registry),
    )
    assert controller.events.status() == {}
    assert controller.events.requeue_after("shop", 5.0) == 5.0
    assert not any(family.name.startswith("ecsop_event") for family in registry.collect())


def test_pass_acks_release_only_what_arrived_before_a_completed_pass() -> None:
    acks = PassAcks()
    acks.add("shop", "before")
    with acks.pass_of("shop"):
        acks.add("shop", "during")
    assert acks.take_done(0) == ["before"]
    with pytest.raises(RuntimeError), acks.pass_of("shop"):
        raise RuntimeError("AWS failed")
    assert acks.take_done(0) == []
    assert acks.waiting == 1
    with acks.pass_of("shop"):
        pass
    assert acks.take_done(0) == ["during"]


def test_age_is_never_negative(fed: Fed) -> None:
    fed.source.at = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC) - timedelta(seconds=5)
    fed.source.put(task_event("shop", "STOPPED", "STOPPED"))
    wait(lambda: fed.sample("ecsop_event_age_seconds_count"), "observed")
    assert fed.sample("ecsop_event_age_seconds_sum") == 0


def test_a_queue_that_does_not_answer_delays_nothing_else(tmp_path: Path) -> None:
    """The SQS endpoint blackholed (no VPC endpoint, a firewall): GetQueueAttributes hangs
    through its retries. The controller starts at once, and the daemon's next step
    (the replica's leases) with it; the events say they do not flow once they fail."""
    world = Fed(tmp_path)
    world.release("shop")
    hung = threading.Event()

    def describe() -> QueueInfo:
        hung.wait(10)
        raise AwsError("RequestTimeout", "no answer", "GetQueueAttributes")

    world.source.describe = describe  # type: ignore[method-assign]
    started = threading.Thread(target=world.controller.start, daemon=True)
    try:
        started.start()
        started.join(2.0)
        assert not started.is_alive(), "the controller waited for the event queue to answer"
    finally:
        hung.set()
        started.join(5.0)
        world.controller.stop()
