"""A careless operator and a hostile environment, against the real daemon (issues 21 and 24).

Each test is one finding of a hostile test run: the daemon as a process, the
specs in a real git repository, the sandbox as AWS.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsop.spec.model import fingerprint

from .conftest import (
    CRASH,
    GOOD_V1,
    GOOD_V2,
    GOOD_V3,
    Daemon,
    Sandbox,
    SpecRepo,
    release_doc,
    scenario,
    wait_for,
)

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]
ACCOUNT_ROLE = "arn:aws:iam::123456789012:role"


def hostile_scenario() -> dict[str, Any]:
    """The e2e scenario plus two services sharing the task definition family ``web``
    (staging and production: other environment, other task role), and a worker with
    48 tags of its own."""
    config = scenario()
    services = config["clusters"]["prod"]["services"]
    base = services["shop"]
    for name, env in (("web-staging", "staging"), ("web-prod", "prod")):
        service = copy.deepcopy(base)
        definition = service["taskDefinition"]
        definition["family"] = "web"
        definition["taskRoleArn"] = f"{ACCOUNT_ROLE}/web-{env}"
        definition["containerDefinitions"][0]["environment"] = [{"name": "ENV", "value": env}]
        services[name] = service
    crowded = copy.deepcopy(services["shop-breaker"])
    crowded["taskDefinition"]["family"] = "crowded"
    crowded["tags"] = {f"team-{i:02d}": "x" for i in range(48)}
    services["crowded"] = crowded
    packed = copy.deepcopy(crowded)
    packed["taskDefinition"]["family"] = "packed"
    packed["tags"] = {f"team-{i:02d}": "x" for i in range(49)}
    services["packed"] = packed
    return config


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, hostile_scenario())
    yield box
    box.stop()


def synced(daemon: Daemon, name: str) -> bool:
    return daemon.release(name).get("phase") == "Synced"


def task_definition(sandbox: Sandbox, service: str) -> dict[str, Any]:
    arn = sandbox.service(service)["taskDefinition"]
    found = sandbox.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**found["taskDefinition"], "tags": {t["key"]: t["value"] for t in found["tags"]}}


def web(name: str, image: str, **spec: Any) -> dict[str, Any]:
    doc = release_doc(name, name, image, bakeSeconds=5)
    doc["spec"].update(spec)
    return doc


def test_production_never_runs_the_revision_staging_registered(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """#1: same family, same images: production gets its own environment and role."""
    repo.commit(
        {"stg.yaml": web("web-staging", GOOD_V1), "prd.yaml": web("web-prod", GOOD_V1)}, "a"
    )
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "web-prod") and synced(daemon, "web-staging"), 30, "adopted")
    repo.commit({"stg.yaml": web("web-staging", GOOD_V2)}, "staging v2")
    wait_for(
        lambda: synced(daemon, "web-staging") and sandbox.steady_on("web-staging", GOOD_V2),
        40,
        "stg",
    )
    staging = task_definition(sandbox, "web-staging")
    repo.commit({"prd.yaml": web("web-prod", GOOD_V2)}, "prod v2")
    wait_for(
        lambda: synced(daemon, "web-prod") and sandbox.steady_on("web-prod", GOOD_V2), 40, "prod"
    )
    prod = task_definition(sandbox, "web-prod")
    assert prod["taskDefinitionArn"] != staging["taskDefinitionArn"]
    assert prod["containerDefinitions"][0]["environment"] == [{"name": "ENV", "value": "prod"}]
    assert prod["taskRoleArn"].endswith("/web-prod")
    assert prod["tags"]["ecsop:release"] == "web-prod"


def test_a_revert_keeps_the_configuration_registered_since(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """#2: a hand-registered revision (more memory, a new variable) survives a revert."""
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1, bakeSeconds=5)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 30, "adopted")
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2, bakeSeconds=5)}, "v2")
    wait_for(lambda: synced(daemon, "shop") and sandbox.steady_on("shop", GOOD_V2), 40, "v2")
    current = task_definition(sandbox, "shop")
    containers = copy.deepcopy(current["containerDefinitions"])
    containers[0]["memory"] = 512
    containers[0]["environment"] = [{"name": "FEATURE", "value": "on"}]
    changed = sandbox.ecs.register_task_definition(
        family="shop", containerDefinitions=containers, cpu="256", memory="1024"
    )["taskDefinition"]["taskDefinitionArn"]
    sandbox.ecs.update_service(cluster="prod", service="shop", taskDefinition=changed)
    wait_for(
        lambda: synced(daemon, "shop") and sandbox.memory("shop").last_good == changed,
        60,
        "the hand-registered revision proven and adopted",
    )
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1, bakeSeconds=5)}, "revert")
    wait_for(lambda: synced(daemon, "shop") and sandbox.steady_on("shop", GOOD_V1), 40, "reverted")
    reverted = task_definition(sandbox, "shop")
    assert reverted["containerDefinitions"][0]["memory"] == 512
    assert reverted["containerDefinitions"][0]["environment"] == [
        {"name": "FEATURE", "value": "on"}
    ]
    assert reverted["taskDefinitionArn"] != changed and not reverted["taskDefinitionArn"].endswith(
        ":1"
    )


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param("apiVersion: [unclosed\n", id="yaml-syntax-error"),
        pytest.param("", id="emptied"),
    ],
)
def test_a_spec_broken_mid_rollout_still_rolls_back(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon, breakage: str
) -> None:
    """#5: the last valid spec keeps being watched whatever happened to the file."""
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 30, "adopted")
    repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH)}, "crash")
    wait_for(lambda: sandbox.memory("shop").deploying, 20, "deploying")
    repo.commit({"shop.yaml": breakage}, "broken")
    wait_for(lambda: sandbox.failed("shop") == fingerprint({"app": CRASH}), 40, "rolled back")
    wait_for(lambda: sandbox.steady_on("shop", GOOD_V1), 40, "back on v1")
    # The daemon's next pass (one active poll) is the first to see the service steady.
    wait_for(
        lambda: daemon.release("shop")["phase"] in ("Invalid", "Degraded"), 10, "failure shown"
    )
    assert daemon.release("shop")["lastRollout"]["outcome"] == "rolled_back"


def test_a_service_full_of_tags_is_still_rolled_back(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """#6: 48 user tags leave exactly room for ecsop's two; the bad release is rolled back."""
    repo.commit({"c.yaml": release_doc("crowded", "crowded", GOOD_V1)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "crowded"), 30, "adopted")
    assert len(sandbox.tags("crowded")) == 50
    repo.commit({"c.yaml": release_doc("crowded", "crowded", CRASH)}, "crash")
    wait_for(lambda: sandbox.failed("crowded") == fingerprint({"app": CRASH}), 40, "rolled back")
    wait_for(lambda: sandbox.steady_on("crowded", GOOD_V1), 40, "back on v1")
    # With 49 user tags ecsop cannot remember a rollout, so it starts none, loudly.
    repo.commit({"p.yaml": release_doc("packed", "packed", GOOD_V2)}, "packed v2")
    wait_for(lambda: daemon.release("packed").get("reason") == "MemoryUnavailable", 20, "refused")
    assert "remove 1" in daemon.release("packed")["message"]
    assert sandbox.steady_on("packed", GOOD_V1)
    assert not any(k.startswith("ecsop:") for k in sandbox.tags("packed"))


def test_two_daemons_on_one_directory_never_both_keep_acting(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """#9: two replicas by mistake used to deploy every change twice.

    Now a daemon that finds the other's write after its own refuses (Degraded,
    loudly): at most the first change can race, every later one is deployed once,
    and no fingerprint gets two revisions.
    """
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "v1")
    first = start_daemon(caller="first")
    second = start_daemon(caller="second")
    wait_for(lambda: synced(first, "shop") or synced(second, "shop"), 30, "adopted")
    counts = []
    for image in (GOOD_V2, GOOD_V3, GOOD_V1):
        before = len(sandbox.call_log("UpdateService"))
        repo.commit({"shop.yaml": release_doc("shop", "shop", image, bakeSeconds=5)}, image)
        wait_for(lambda image=image: sandbox.steady_on("shop", image), 40, f"{image} out")
        time.sleep(1)  # a few active polls of both daemons
        counts.append(len(sandbox.call_log("UpdateService")) - before)
    # Without coordination the two can race once per service, before either has seen
    # the other's write; never again after.
    assert sorted(counts)[:2] == [1, 1] and max(counts) <= 2, counts
    images = [
        sandbox.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"][
            "containerDefinitions"
        ][0]["image"]
        for arn in sandbox.ecs.list_task_definitions(familyPrefix="shop")["taskDefinitionArns"]
    ]
    # The sandbox's v1, then one each for v2, v3 and the return to v1 (the
    # sandbox's v1 carries no ecsop release tag, so it is not reused). A racing
    # first change registers twice: RegisterTaskDefinition has no condition two
    # uncoordinated processes could share. Never a duplicate after that.
    raced = sum(count - 1 for count in counts)
    assert sum(images.count(i) for i in (GOOD_V1, GOOD_V2, GOOD_V3)) <= 4 + raced, (
        counts,
        images,
    )
    writers = {c["caller"] for c in sandbox.call_log("TagResource")}
    if max(counts) == 2 or writers == {"first", "second"}:
        reasons = [d.release("shop").get("reason") for d in (first, second)]
        assert reasons.count("AnotherInstanceActing") == 1, reasons


def test_a_spec_deleted_mid_rollout_is_rolled_back_then_let_go(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """#10: removing the file finishes the rollout in flight, then removes ecsop's tags."""
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 30, "adopted")
    repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH)}, "crash")
    wait_for(lambda: sandbox.memory("shop").deploying, 20, "deploying")
    repo.remove("shop.yaml", "gone")
    wait_for(lambda: sandbox.steady_on("shop", GOOD_V1), 60, "rolled back")
    wait_for(lambda: not any(k.startswith("ecsop:") for k in sandbox.tags("shop")), 30, "let go")
    assert daemon.release("shop") == {}


def test_a_hand_update_mid_rollout_is_not_a_failed_release(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """#16: someone else's deployment replacing ours is not a rollback of ours."""
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 30, "adopted")
    base = task_definition(sandbox, "shop")
    hand = sandbox.ecs.register_task_definition(
        family="shop",
        containerDefinitions=base["containerDefinitions"],
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2)}, "v2")
    wait_for(lambda: sandbox.memory("shop").deploying, 20, "deploying")
    sandbox.ecs.update_service(cluster="prod", service="shop", taskDefinition=hand)
    wait_for(lambda: synced(daemon, "shop") and sandbox.steady_on("shop", GOOD_V2), 60, "v2")
    assert not sandbox.failed("shop")
    metrics = daemon.get("/metrics")
    assert 'ecsop_rollbacks_total{reason="ecs_rollback",release="shop"} 0.0' in metrics


# --- issue 24: crash loops ECS does not count ---------------------------------------------


def test_a_crash_loop_ecs_does_not_count_is_rolled_back_within_one_poll(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """A worker (no load balancer, no health check, breaker on) exits 5 s after RUNNING.

    ECS's failedTasks stays 0 and its breaker never trips (the sandbox follows what
    users observe); ecsop counts the deployment's stopped tasks itself and rolls back
    within one active poll (5 simulated seconds) of the second exit (maxFailedTasks 1).
    """
    repo.commit({"w.yaml": release_doc("worker", "shop-breaker", GOOD_V1)}, "v1")
    # A resync every 600 simulated seconds: only the active poll can explain the rollback.
    daemon = start_daemon("--resync-interval", "30")
    wait_for(lambda: synced(daemon, "worker"), 30, "adopted")
    repo.commit({"w.yaml": release_doc("worker", "shop-breaker", CRASH)}, "crash")
    wait_for(
        lambda: sandbox.failed("shop-breaker") == fingerprint({"app": CRASH}), 40, "rolled back"
    )
    deploy, rollback = sandbox.call_log("UpdateService")[-2:]
    stopped = sorted(
        task["stoppedAt"].timestamp()
        for task in _stopped_tasks(sandbox, "shop-breaker", deploy["request"]["taskDefinition"])
        if task.get("stopCode") == "EssentialContainerExited"
    )
    assert len(stopped) >= 2
    # One poll (5 s) plus the pass's own calls: at clock x20, two real seconds of a
    # loaded machine are 40 simulated seconds. The next resync would be 600 s.
    assert rollback["sim"] - stopped[1] <= 5.0 + 40.0, (rollback["sim"], stopped)
    rollout = daemon.release("worker")["lastRollout"]
    assert rollout["reason"] == "failed_tasks"
    assert "exited with code 1 after reaching RUNNING" in rollout["detail"]
    assert "ECS reports failedTasks 0" in rollout["detail"]
    assert not any(
        d.get("rolloutState") == "FAILED" for d in sandbox.service("shop-breaker")["deployments"]
    ), "ECS's breaker never tripped"


def test_a_healthy_rollout_with_scale_in_is_not_rolled_back(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """Tasks stopped by scale-in and by the rolling replacement say nothing about the revision."""
    sandbox.ecs.update_service(cluster="prod", service="shop-breaker", desiredCount=4)
    wait_for(lambda: sandbox.service("shop-breaker")["runningCount"] == 4, 30, "scaled up")
    repo.commit({"w.yaml": release_doc("worker", "shop-breaker", GOOD_V1)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "worker"), 30, "adopted")
    repo.commit({"w.yaml": release_doc("worker", "shop-breaker", GOOD_V2)}, "v2")
    wait_for(lambda: sandbox.memory("shop-breaker").deploying, 20, "deploying")
    sandbox.ecs.update_service(cluster="prod", service="shop-breaker", desiredCount=2)
    wait_for(
        lambda: synced(daemon, "worker") and sandbox.steady_on("shop-breaker", GOOD_V2), 60, "v2"
    )
    assert not sandbox.failed("shop-breaker")
    assert len(sandbox.call_log("UpdateService")) == 3  # two scalings and one deploy


def _stopped_tasks(sandbox: Sandbox, service: str, task_definition: str) -> list[dict[str, Any]]:
    arns = sandbox.ecs.list_tasks(cluster="prod", serviceName=service, desiredStatus="STOPPED")[
        "taskArns"
    ]
    if not arns:
        return []
    tasks = sandbox.ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"]
    return [t for t in tasks if t["taskDefinitionArn"] == task_definition]


def test_answers_lost_after_the_write_never_register_or_deploy_twice(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """AWS carries out the call, the answer never arrives (a dropped connection).

    Every RegisterTaskDefinition and half of the UpdateService and TagResource
    calls are lost after the write: each retry must find what the lost answer
    did instead of doing it again. One revision per fingerprint, one ECS
    deployment per change, and the crash is still rolled back and remembered.
    """
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "v1")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 30, "adopted")
    lost = {"lostAnswerRate": 1.0}
    half = {"lostAnswerRate": 0.5}
    operations = {"RegisterTaskDefinition": lost, "UpdateService": half, "TagResource": half}
    sandbox.control("POST", "faults", {"operations": operations})
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2, bakeSeconds=5)}, "v2")
    wait_for(lambda: synced(daemon, "shop") and sandbox.steady_on("shop", GOOD_V2), 60, "v2")
    repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH, bakeSeconds=5)}, "crash")
    wait_for(lambda: sandbox.failed("shop") == fingerprint({"app": CRASH}), 60, "rolled back")
    wait_for(lambda: sandbox.steady_on("shop", GOOD_V2), 60, "back on v2")
    lost_calls = {
        row["operation"]: row["lostAnswers"]
        for row in sandbox.control("GET", "calls")["calls"]
        if row.get("lostAnswers")
    }
    assert lost_calls.get("RegisterTaskDefinition", 0) >= 2, lost_calls  # the fault bit
    assert sandbox.revisions("shop") == 3, "v1, v2 and the crash: each registered once"
    arn = sandbox.service("shop")["serviceArn"]
    started = sandbox.ecs.list_service_deployments(cluster="prod", service=arn)[
        "serviceDeployments"
    ]
    # The adopted v1, v2, the crash, and the rollback to v2: never a second one of a change.
    assert len(started) == 4, [d.get("targetServiceRevisionArn") for d in started]
