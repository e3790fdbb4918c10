"""The controller's passes, driven one by one: status, phases, logs, the worker path.

Through ``controller_world.World`` (a Controller over an in-memory ECS, one
pass at a time on a fixed clock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from controller_world import CLUSTER, CRASH, V1, V2, World

from ecsop.aws.clients import AwsError
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import TAG_LAST_GOOD, ServiceMemory
from ecsop.decision.reasons import Phase
from ecsop.spec.model import fingerprint

# --- phases, as status reports them -----------------------------------------------------


def test_adoption_then_in_sync(world: World) -> None:
    world.adopted()
    world.reconcile()
    status = world.status()
    assert (status.phase, status.reason) == (Phase.SYNCED, "InSync")
    assert status.desired_fingerprint == status.running_fingerprint == fingerprint({"app": V1})
    assert world.ecs.calls.count("UpdateService") == 0


def test_deploy_bake_and_record_last_good(world: World) -> None:
    world.deploying(V2)
    assert world.status().reason == "Deploying"
    world.clock.advance(20)
    world.reconcile()
    assert (world.phase(), world.status().reason) == (Phase.PROGRESSING, "RolloutInProgress")
    world.ecs.complete("shop")
    world.clock.advance(30)
    world.reconcile()
    assert (world.phase(), world.status().reason) == (Phase.PROGRESSING, "Baking")
    world.clock.advance(61)
    world.reconcile()
    status = world.status()
    assert (status.phase, status.reason) == (Phase.SYNCED, "Baked")
    assert status.last_rollout.outcome == "succeeded"
    assert world.ecs.tags("shop")[TAG_LAST_GOOD] == world.ecs.services["shop"].task_definition


def test_failed_rollout_rolls_back_then_degraded(world: World) -> None:
    world.deploying(CRASH)
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    world.reconcile()
    status = world.status()
    assert (status.phase, status.reason) == (Phase.ROLLING_BACK, "RollingBack")
    assert (status.last_rollout.outcome, status.last_rollout.reason) == (
        "rolled_back",
        "failed_tasks",
    )
    failed = ServiceMemory.read(world.ecs.tags("shop")).failed
    assert failed is not None and failed.fingerprint == fingerprint({"app": CRASH})
    world.reconcile()
    assert world.phase() is Phase.ROLLING_BACK
    world.ecs.complete("shop")
    world.reconcile()
    status = world.status()
    assert (status.phase, status.reason) == (Phase.DEGRADED, "ReleaseFailed")
    assert "ecsop retry shop" in status.message
    assert world.ecs.calls.count("UpdateService") == 2


def test_a_service_managed_by_ecsop_0_1_keeps_its_rollback_target_after_its_first_write(
    world: World,
) -> None:
    """The 0.1 layout (one tag per field) is trusted when its release matches, and
    replaced by the two tags on the next write. That write used to leave out the ``lg``
    check, so the next pass no longer vouched for last-good: a failing deploy then had
    nothing to roll back to."""
    state = world.ecs.add_service("shop")
    world.ecs.tag_service(
        state.arn, {"ecsop:release": "shop", TAG_LAST_GOOD: state.task_definition}
    )
    world.write("shop", CRASH)
    world.reconcile()
    assert world.ecs.calls.count("UpdateService") == 1, "deployed on the 0.1 memory"
    assert ServiceMemory.read(world.ecs.tags("shop")).vouches_for_last_good(state.arn, "shop")
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    world.reconcile()
    assert world.status().reason == "RollingBack"
    assert world.ecs.services["shop"].task_definition == state.task_definition


@pytest.mark.parametrize(
    ("spec", "phase", "reason"),
    [
        pytest.param({"suspend": True}, Phase.SUSPENDED, "Suspended", id="suspended"),
        pytest.param({}, Phase.SYNCED, "InSync", id="synced"),
    ],
)
def test_steady_phases(world: World, spec: dict[str, Any], phase: Phase, reason: str) -> None:
    world.adopted()
    world.write("shop", V1, **spec)
    world.reconcile()
    assert (world.phase(), world.status().reason) == (phase, reason)


def test_a_broken_spec_for_a_known_release_is_invalid(world: World) -> None:
    world.adopted()
    world.write("shop", "not-a-digest")
    world.reconcile()
    status = world.status()
    assert (status.phase, status.reason) == (Phase.INVALID, "InvalidSpec")
    assert "shop.yaml" in status.message


def test_a_release_that_was_never_valid_is_invalid(world: World) -> None:
    world.write("shop", "not-a-digest")
    world.reconcile()
    assert world.phase() is Phase.INVALID
    assert world.ecs.calls == []


def test_a_missing_service_is_degraded(world: World) -> None:
    world.write("shop", V1)
    world.reconcile()
    assert (world.phase(), world.status().reason) == (Phase.DEGRADED, "ServiceNotFound")


def test_a_release_leaving_the_directory_is_forgotten(world: World) -> None:
    world.adopted()
    world.remove("shop")
    assert world.reconcile() is None
    assert world.controller.statuses.get("shop") is None


def test_conditions_follow_the_phase(world: World) -> None:
    world.deploying(CRASH)
    conditions = {c.type: c for c in world.status().conditions}
    assert [conditions[t].status for t in ("Ready", "Progressing", "Degraded")] == [
        "False",
        "True",
        "False",
    ]
    ready_since = conditions["Ready"].last_transition_time
    world.ecs.fail_tasks("shop", 2)
    world.clock.advance(10)
    world.reconcile()
    world.ecs.complete("shop")
    world.clock.advance(10)
    world.reconcile()
    conditions = {c.type: c for c in world.status().conditions}
    assert [conditions[t].status for t in ("Ready", "Progressing", "Degraded")] == [
        "False",
        "False",
        "True",
    ]
    assert conditions["Ready"].last_transition_time == ready_since
    assert conditions["Degraded"].last_transition_time == world.clock.now


# --- logs: one line per decision, not per poll --------------------------------------------


LOG_FIELDS = {"release", "cluster", "service", "fingerprint", "commit", "deployment", "action"}


def test_a_deploy_logs_one_event_with_its_context(world: World) -> None:
    world.adopted()
    world.write("shop", V2)
    with structlog.testing.capture_logs() as events:
        world.reconcile()
    assert len(events) == 1, events
    event = events[0]
    assert LOG_FIELDS | {"reason"} <= set(event)
    assert event["action"] == "Deploy"
    assert event["reason"] == "Deploying"
    assert (event["release"], event["cluster"], event["service"]) == ("shop", CLUSTER, "shop")
    assert event["fingerprint"] == fingerprint({"app": V2})
    assert event["deployment"] == world.ecs.services["shop"].primary.id  # the one started
    assert event["log_level"] == "info"


def test_polling_a_rollout_logs_only_when_the_decision_changes(world: World) -> None:
    world.deploying(V2)
    with structlog.testing.capture_logs() as first:
        world.clock.advance(5)
        world.reconcile()
    assert [(e["action"], e["reason"]) for e in first] == [("Wait", "RolloutInProgress")]
    with structlog.testing.capture_logs() as again:
        for _ in range(3):
            world.clock.advance(5)
            world.reconcile()
    assert again == []


def test_a_rollback_logs_its_failure(world: World) -> None:
    world.deploying(CRASH)
    world.ecs.fail_tasks("shop", 2)
    with structlog.testing.capture_logs() as events:
        world.reconcile()
    assert len(events) == 1
    assert (events[0]["action"], events[0]["reason"]) == ("Rollback", "RollingBack")
    assert "failed_tasks" in events[0]["event"]
    rollback = world.ecs.services["shop"].primary
    assert rollback is not None
    # The deployment the rollback started: the one to look for in the ECS console.
    assert events[0]["deployment"] == world.status().deployment_id == rollback.id


def test_a_deploy_logs_the_deployment_it_started(world: World) -> None:
    world.adopted()
    world.write("shop", V2)
    with structlog.testing.capture_logs() as events:
        world.reconcile()
    started = world.ecs.services["shop"].primary
    assert started is not None and started.task_definition.endswith(":2")
    assert [(e["action"], e["deployment"]) for e in events] == [("Deploy", started.id)]
    assert world.status().deployment_id == started.id


# --- the worker path: results, retries, queue depth -------------------------------------


@pytest.fixture
def worker(world: World) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=world.controller.loop._work, daemon=True)
    thread.start()
    yield thread
    world.controller.queue.shutdown()
    thread.join(5)
    assert not thread.is_alive()


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while datetime.now(UTC) < deadline:
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not met in time")


def test_worker_counts_reconcile_results(world: World, worker: threading.Thread) -> None:
    world.ecs.add_service("shop")
    world.write("shop", V1)  # queued by the reload; adopted: nothing more to do until resync
    wait_until(lambda: world.sample("ecsop_reconcile_total", release="shop", result="success"))
    world.write("shop", V2)  # deployed: look again after the active poll interval
    wait_until(lambda: world.sample("ecsop_reconcile_total", release="shop", result="requeue"))
    assert world.sample("ecsop_reconcile_total", release="shop", result="success") == 1
    assert world.sample("ecsop_reconcile_total", release="shop", result="requeue") == 1
    assert world.sample("ecsop_reconcile_total", release="shop", result="error") is None
    assert world.sample("ecsop_reconcile_duration_seconds_count") == 2
    assert world.sample("ecsop_workqueue_depth") == 0
    assert world.sample("ecsop_workqueue_retries_total") == 0


def test_worker_counts_errors_and_retries(world: World, worker: threading.Thread) -> None:
    world.ecs.add_service("shop")
    world.ecs.describe_error = AwsError("AccessDeniedException", "not allowed", "DescribeServices")
    world.write("shop", V1)
    wait_until(lambda: world.sample("ecsop_reconcile_total", release="shop", result="error"))
    assert world.sample("ecsop_workqueue_retries_total") >= 1  # backing off, 5 ms doubling
    status = world.status()
    assert (status.phase, status.reason) == (Phase.DEGRADED, "AccessDeniedException")
    assert world.sample("ecsop_release_phase", release="shop", phase="Degraded") == 1
    # The backoff retry (5 ms) succeeds once AWS answers again.
    world.ecs.describe_error = None
    wait_until(lambda: world.sample("ecsop_reconcile_total", release="shop", result="success"))
    assert world.phase() is Phase.SYNCED


def test_queue_depth_follows_the_queue(world: World) -> None:
    for name in ("a", "b", "c"):
        world.ecs.add_service(name)
        world.write(name, V1)
    assert world.sample("ecsop_workqueue_depth") == 3
    assert world.controller.queue.get(timeout=0) == "a"
    assert world.sample("ecsop_workqueue_depth") == 2


def test_a_resync_queues_each_batch_as_it_is_observed_and_each_release_once(world: World) -> None:
    """Issue 22: at 10,000 releases a refresh outlasts its answers' freshness unless each
    batch is reconciled as it lands; and a release queued by its batch is not queued again
    (a second pass would describe it alone)."""
    names = [f"svc{i:02d}" for i in range(12)]  # two DescribeServices: ten, then two
    for name in names:
        world.ecs.add_service(name)
        world.write(name, V1)
    while world.controller.queue.get(timeout=0) is not None:  # drain the reloads' additions
        pass
    for name in names:
        world.controller.queue.done(name)
    seen: list[tuple[int, int]] = []  # (DescribeServices so far, queue depth) per describe
    describe = world.ecs.describe_services

    def counting(cluster: str, wanted: list[str]) -> Any:
        seen.append((world.ecs.calls.count("DescribeServices"), len(world.controller.queue)))
        return describe(cluster, wanted)

    world.ecs.describe_services = counting  # type: ignore[method-assign]
    world.ecs.calls.clear()
    world.controller.resync()
    assert world.ecs.calls == ["DescribeServices", "DescribeServices"]
    assert seen == [(0, 0), (1, 10)], "the first ten were queued before the next call"
    assert len(world.controller.queue) == 12
    for name in names:
        assert world.controller.queue.get(timeout=0) in names
        world.reconcile(name)
    assert world.ecs.calls.count("DescribeServices") == 2, "each pass took its batched answer"


def test_adoption_tags_each_service_once_and_a_restart_tags_none(world: World) -> None:
    """Issue 22, #3: adopting 1,000 services made 1,111-1,207 TagResource calls; at most
    one per service, and none when the tags are already right."""
    names = [f"svc{i:02d}" for i in range(12)]
    for name in names:
        world.ecs.add_service(name)
        world.write(name, V1)
    world.ecs.calls.clear()
    for _ in range(3):  # the adopting pass, then steady resyncs
        world.controller.resync()
        for name in names:
            world.reconcile(name)
    assert [world.phase(name) for name in names] == [Phase.SYNCED] * len(names)
    assert world.ecs.calls.count("TagResource") == len(names)
    world.start()  # a restart: memory only in the tags, already right
    world.ecs.calls.clear()
    world.controller.resync()
    for name in names:
        world.reconcile(name)
    assert [world.phase(name) for name in names] == [Phase.SYNCED] * len(names)
    assert world.ecs.calls.count("TagResource") == 0
    assert world.ecs.calls.count("UpdateService") == 0


def test_a_restart_calls_proven_releases_synced_without_describing_a_revision(
    world: World,
) -> None:
    """Issue 22: a fresh process described every running revision before it could call
    any release Synced (10,000 calls at 10,000 releases). Adopting records the fingerprint
    of last-good; a restart then reads it, and describes only what it must act on."""
    names = [f"svc{i:02d}" for i in range(6)]
    for name in names:
        world.ecs.add_service(name)
        world.write(name, V1)
        world.reconcile(name)
    assert world.ecs.described, "adoption reads each running revision's images"
    world.start()
    world.ecs.described.clear()
    world.controller.resync()
    for name in names:
        world.reconcile(name)
    assert [world.phase(name) for name in names] == [Phase.SYNCED] * len(names)
    assert world.ecs.described == []
    status = world.status(names[0])
    assert status.running_fingerprint == status.desired_fingerprint == fingerprint({"app": V1})
    assert status.running_images == {"app": V1}
    # A spec change is decided on the revisions, described as before.
    world.write(names[0], V2)
    world.reconcile(names[0])
    assert world.status(names[0]).reason == "Deploying"
    assert world.ecs.described
    assert world.ecs.calls.count("UpdateService") == 1


def test_a_fleet_an_earlier_ecsop_proved_is_recorded_once_then_restarts_read_nothing(
    world: World,
) -> None:
    """Memory written before ``lgf`` existed: the first pass that reads the revision
    records it (one TagResource), and from the next restart on nothing is described."""
    names = [f"svc{i:02d}" for i in range(4)]
    for name in names:
        _proven_by_an_earlier_ecsop(world, name)
    world.ecs.calls.clear()
    for _ in range(2):
        for name in names:
            world.reconcile(name)
    assert [world.phase(name) for name in names] == [Phase.SYNCED] * len(names)
    assert world.ecs.calls.count("TagResource") == len(names), "recorded once each"
    assert world.ecs.calls.count("UpdateService") == 0
    world.start()
    world.ecs.described.clear()
    for name in names:
        world.reconcile(name)
    assert [world.phase(name) for name in names] == [Phase.SYNCED] * len(names)
    assert world.ecs.described == []


def _proven_by_an_earlier_ecsop(world: World, name: str, user_tags: int = 0) -> str:
    state = world.ecs.add_service(name, tags={f"team-{i}": "x" for i in range(user_tags)})
    earlier = ServiceMemory(release=name).proven(
        state.arn, name, state.task_definition, fingerprint=None
    )
    world.ecs.tag_service(state.arn, earlier.tags())
    world.write(name, V1)
    return state.arn


def test_a_record_whose_answer_is_lost_after_the_write_is_not_written_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: TagResource applied, its answer lost. The pass fails and is retried; the
    retry reads the record now on the service, is in sync from it, and writes nothing."""
    _proven_by_an_earlier_ecsop(world, "shop")
    applied = world.ecs.tag_service

    def lost_after_write(service_arn: str, tags: Any) -> None:
        applied(service_arn, tags)
        raise AwsError("RequestTimeout", "answer lost", "TagResource", retryable=True)

    monkeypatch.setattr(world.ecs, "tag_service", lost_after_write)
    world.ecs.calls.clear()
    with pytest.raises(AwsError):
        world.controller.reconcile("shop")
    monkeypatch.undo()
    world.ecs.described.clear()
    for _ in range(2):
        world.reconcile()
    assert (world.phase(), world.status().reason) == (Phase.SYNCED, "InSync")
    assert world.ecs.calls.count("TagResource") == 1, "only the write whose answer was lost"
    world.start()
    world.reconcile()
    assert world.ecs.described == [] and world.phase() is Phase.SYNCED


def test_a_service_at_ecs_tag_limit_takes_the_record_within_its_two_tags(world: World) -> None:
    """Attack: 48 user tags and ecsop's two, ECS's 50. The record rewrites ``ecsop:state``,
    adds no key, and the service stays at 50 tags."""
    arn = _proven_by_an_earlier_ecsop(world, "shop", user_tags=48)
    world.reconcile()
    tags = world.ecs.tags("shop")
    assert len(tags) == 50
    assert ServiceMemory.read(tags).last_good_carries(
        arn, "shop", Fingerprint(fingerprint({"app": V1}))
    )
    assert world.phase() is Phase.SYNCED


def test_a_change_deployed_while_a_batch_is_in_flight_is_deployed_once(world: World) -> None:
    """Issue 22, #1: the batched answer read before the deploy, used by a later pass,
    showed the old revision still running, and the change was deployed twice."""
    names = [f"svc{i:02d}" for i in range(12)]
    for name in names:
        world.adopted(name)
    answered, resume = threading.Event(), threading.Event()
    describe = world.ecs.describe_services

    def slow(cluster: str, wanted: list[str]) -> Any:
        found = describe(cluster, wanted)  # read now, delivered after the deploy
        if len(wanted) > 1:
            answered.set()
            assert resume.wait(5)
        return found

    world.ecs.describe_services = slow  # type: ignore[method-assign]
    refresh = threading.Thread(target=world.controller.resync)
    refresh.start()
    assert answered.wait(5)
    world.write("svc00", V2)
    world.ecs.calls.clear()
    world.reconcile("svc00")  # the change lands mid-refresh and is deployed at once
    assert world.ecs.calls.count("UpdateService") == 1
    resume.set()
    refresh.join(5)
    for _ in range(2):
        for name in names:
            world.reconcile(name)
    assert world.ecs.calls.count("UpdateService") == 1
    assert world.ecs.calls.count("RegisterTaskDefinition") <= 1
