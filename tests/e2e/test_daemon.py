"""The daemon as a process against the sandbox endpoint, specs in a real git repo."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import ServiceMemory
from ecsop.spec.model import fingerprint

from .conftest import (
    CRASH,
    GOOD_V1,
    GOOD_V2,
    GOOD_V3,
    PULL_ERROR,
    SIDECAR,
    Daemon,
    Sandbox,
    SpecRepo,
    release_doc,
    scenario,
    wait_for,
)

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]


def synced(daemon: Daemon, name: str) -> bool:
    return daemon.release(name).get("phase") == "Synced"


def last_good_runs(sandbox: Sandbox, service: str, image: str) -> bool:
    svc = sandbox.service(service)
    tags = {t["key"]: t["value"] for t in svc.get("tags", [])}
    return (
        sandbox.steady_on(service, image) and tags.get("ecsop:last-good") == svc["taskDefinition"]
    )


def test_deploy_rollback_revert_and_redeploy(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt shop")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 20, "shop adopted and synced")
    assert sandbox.tags("shop")["ecsop:last-good"] == sandbox.service("shop")["taskDefinition"]

    # A commit changing the digest deploys it, and it becomes last-good after bake.
    commit = repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2)}, "shop v2")
    wait_for(lambda: last_good_runs(sandbox, "shop", GOOD_V2), 30, "v2 deployed and baked")
    td = sandbox.ecs.describe_task_definition(
        taskDefinition=sandbox.service("shop")["taskDefinition"], include=["TAGS"]
    )
    containers = {c["name"]: c for c in td["taskDefinition"]["containerDefinitions"]}
    assert containers["sidecar"]["image"] == SIDECAR
    assert containers["app"]["secrets"][0]["name"] == "DB_PASSWORD"
    tags = {t["key"]: t["value"] for t in td["tags"]}
    assert tags["team"] == "shop"
    assert tags["ecsop:release"] == "shop"
    assert tags["ecsop:fingerprint"] == fingerprint({"app": GOOD_V2})
    assert tags["ecsop:commit"] == commit
    v2_arn = sandbox.service("shop")["taskDefinition"]
    # The deploy's log line names the deployment it started, as ECS lists it.
    deploys = [e for e in daemon.logs() if e.get("action") == "Deploy"]
    assert [e["deployment"] for e in deploys] == [sandbox.service("shop")["deployments"][0]["id"]]

    # A crash-looping digest is rolled back to last-good and then left alone.
    repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH)}, "shop crash")
    wait_for(
        lambda: sandbox.failed("shop") == fingerprint({"app": CRASH}),
        30,
        "failure recorded",
    )
    wait_for(lambda: sandbox.steady_on("shop", GOOD_V2), 30, "rolled back to v2")
    assert sandbox.service("shop")["taskDefinition"] == v2_arn
    status = wait_for(
        lambda: daemon.release("shop") if daemon.release("shop")["phase"] == "Degraded" else None,
        10,
        "Degraded status",
    )
    assert status["lastRollout"]["outcome"] == "rolled_back"
    assert status["lastRollout"]["reason"] == "failed_tasks"
    assert sandbox.failed_reason("shop") == "failed_tasks"

    updates, registers = sandbox.calls("UpdateService"), sandbox.calls("RegisterTaskDefinition")
    time.sleep(3.5)  # over a minute of simulated time at 20x
    assert (sandbox.calls("UpdateService"), sandbox.calls("RegisterTaskDefinition")) == (
        updates,
        registers,
    ), "a failed release must not be retried"

    # Reverting the commit leaves the service on last-good, with no new revision.
    revisions = sandbox.revisions("shop")
    repo.git("revert", "--no-edit", "HEAD")
    wait_for(lambda: synced(daemon, "shop"), 20, "synced after revert")
    time.sleep(1)
    assert sandbox.calls("RegisterTaskDefinition") == registers
    assert sandbox.calls("UpdateService") == updates
    assert sandbox.revisions("shop") == revisions
    assert sandbox.service("shop")["taskDefinition"] == v2_arn

    # A healthy commit after that deploys.
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V3)}, "shop v3")
    wait_for(lambda: last_good_runs(sandbox, "shop", GOOD_V3), 30, "v3 deployed and baked")
    assert daemon.stop() == 0


def test_kill_9_mid_rollout_converges_without_duplicates(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    slow = GOOD_V2
    sandbox.control("POST", "images", {slow: {"behavior": "slow", "startSeconds": 120}})
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 20, "adopted")
    repo.commit({"shop.yaml": release_doc("shop", "shop", slow)}, "slow v2")
    wait_for(lambda: len(sandbox.service("shop")["deployments"]) > 1, 10, "rollout started")
    daemon.kill()
    registers = sandbox.calls("RegisterTaskDefinition")
    restarted = start_daemon()
    wait_for(lambda: last_good_runs(sandbox, "shop", slow), 60, "rollout finished after restart")
    assert sandbox.calls("RegisterTaskDefinition") == registers == 1
    assert sandbox.revisions("shop") == 2
    assert sandbox.calls("UpdateService") == 1
    assert restarted.stop() == 0


def test_ecs_circuit_breaker_rollback_is_recorded_not_fought(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    repo.commit(
        {"shop.yaml": release_doc("breaker", "shop-breaker", GOOD_V1, maxFailedTasks=50)}, "a"
    )
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "breaker"), 20, "adopted")
    original = sandbox.service("shop-breaker")["taskDefinition"]
    repo.commit(
        {"shop.yaml": release_doc("breaker", "shop-breaker", PULL_ERROR, maxFailedTasks=50)}, "b"
    )
    wait_for(
        lambda: sandbox.failed_reason("shop-breaker") == "ecs_rollback",
        40,
        "ECS rollback recorded",
    )
    wait_for(lambda: sandbox.steady_on("shop-breaker", GOOD_V1), 40, "ECS rolled back")
    assert sandbox.service("shop-breaker")["taskDefinition"] == original
    assert sandbox.calls("UpdateService") == 1, "ecsop deployed once and let ECS roll back"
    wait_for(lambda: daemon.release("breaker")["phase"] == "Degraded", 10, "Degraded")


def test_broken_spec_does_not_stop_the_others(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    broken = release_doc("breaker", "shop-breaker", "shop:latest")
    ghost = release_doc("ghost", "shop", GOOD_V2)
    ghost["spec"]["cluster"] = "nowhere"
    repo.commit(
        {
            "shop.yaml": release_doc("shop", "shop", GOOD_V2),
            "broken.yaml": broken,
            "garbage.yaml": "spec: [unclosed\n",
            "ghost.yaml": ghost,
        },
        "mixed",
    )
    daemon = start_daemon()
    wait_for(lambda: last_good_runs(sandbox, "shop", GOOD_V2), 30, "good release deployed")
    status = wait_for(lambda: daemon.release("breaker"), 10, "broken release in status")
    assert status["phase"] == "Invalid"
    assert "not pinned by digest" in status["message"]
    metrics = daemon.get("/metrics")
    assert "ecsop_spec_errors 2.0" in metrics
    # An AWS error on one release is reported on it, with AWS's own code.
    ghost_status = wait_for(lambda: daemon.release("ghost"), 10, "ghost release in status")
    assert ghost_status["phase"] == "Degraded"
    assert "ClusterNotFoundException" in ghost_status["reason"] + ghost_status["message"]


def test_service_changed_by_hand_is_put_back(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop"), 20, "adopted")
    manual = sandbox.register_by_hand("shop", GOOD_V3)
    sandbox.ecs.update_service(cluster="prod", service="shop", taskDefinition=manual)
    wait_for(lambda: any(e.get("reason") == "SelfHeal" for e in daemon.logs()), 30, "drift noticed")
    wait_for(lambda: last_good_runs(sandbox, "shop", GOOD_V1), 40, "put back to the spec")
    assert sandbox.service("shop")["taskDefinition"] != manual
    assert sandbox.calls("RegisterTaskDefinition") == 1, "only the manual revision was registered"


def test_twenty_percent_throttling_still_converges(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, scenario(throttle=0.2))
    repo = SpecRepo(tmp_path / "specs")
    try:
        repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2)}, "v2")
        daemon = Daemon(tmp_path, box, repo.path)
        try:
            wait_for(lambda: last_good_runs(box, "shop", GOOD_V2), 60, "converged under throttling")
            metrics = daemon.get("/metrics")
            assert 'code="ThrottlingException"' in metrics
        finally:
            daemon.stop()
    finally:
        box.stop()


def test_release_rolled_back_by_ecs_while_daemon_was_down_is_not_redeployed(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    doc = release_doc("breaker", "shop-breaker", GOOD_V1, maxFailedTasks=50)
    repo.commit({"shop.yaml": doc}, "adopt")
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "breaker"), 20, "adopted")
    original = sandbox.service("shop-breaker")["taskDefinition"]
    crash = release_doc("breaker", "shop-breaker", PULL_ERROR, maxFailedTasks=50)
    repo.commit({"shop.yaml": crash}, "crash")
    wait_for(
        lambda: sandbox.memory("shop-breaker").deploying, 20, "deployed"
    )
    daemon.kill()
    # While ecsop is down, ECS's circuit breaker fails the rollout and rolls back.
    wait_for(
        lambda: (
            sandbox.steady_on("shop-breaker", GOOD_V1)
            and sandbox.service("shop-breaker")["taskDefinition"] == original
        ),
        60,
        "ECS rolled back by itself",
    )
    assert sandbox.calls("UpdateService") == 1
    restarted = start_daemon()
    wait_for(
        lambda: (
            sandbox.failed("shop-breaker")
            == fingerprint({"app": PULL_ERROR})
        ),
        20,
        "failure recorded after restart",
    )
    time.sleep(2)
    assert sandbox.calls("UpdateService") == 1, "the failed release must not be deployed again"
    assert restarted.release("breaker")["phase"] == "Degraded"


def test_a_restart_after_kill_9_reads_no_revision_it_proved(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """Issue 22: a fresh process described every running revision before any release was
    Synced. It now trusts the fingerprint it recorded on the service with last-good, for a
    steady service on last-good only; a service changed while it was down is described,
    and put back, as before."""
    repo.commit(
        {
            "shop.yaml": release_doc("shop", "shop", GOOD_V1),
            "breaker.yaml": release_doc("breaker", "shop-breaker", GOOD_V1),
        },
        "adopt",
    )
    # shop-breaker was proven by an earlier ecsop, whose memory has no fingerprint record.
    breaker = sandbox.service("shop-breaker")
    earlier = ServiceMemory(release="breaker").proven(
        breaker["serviceArn"], "breaker", breaker["taskDefinition"], fingerprint=None
    )
    sandbox.ecs.tag_resource(
        resourceArn=breaker["serviceArn"],
        tags=[{"key": k, "value": v} for k, v in earlier.tags().items()],
    )
    daemon = start_daemon()
    wait_for(lambda: synced(daemon, "shop") and synced(daemon, "breaker"), 20, "adopted")
    v1 = Fingerprint(fingerprint({"app": GOOD_V1}))
    wait_for(
        lambda: sandbox.memory("shop-breaker").last_good_carries(
            breaker["serviceArn"], "breaker", v1
        ),
        20,
        "the earlier memory's record written",
    )
    assert sandbox.memory("shop-breaker").last_good == breaker["taskDefinition"]
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V2)}, "shop v2")
    wait_for(lambda: last_good_runs(sandbox, "shop", GOOD_V2), 40, "v2 deployed and baked")
    daemon.kill()

    # /status's deployment history reads revisions on demand; only the passes count here.
    restarted = start_daemon("--status-history", "0", caller="restarted")
    wait_for(lambda: synced(restarted, "shop") and synced(restarted, "breaker"), 20, "Synced")
    described = [
        c for c in sandbox.call_log("DescribeTaskDefinition") if c["caller"] == "restarted"
    ]
    assert described == [], "a restart describes no revision it proved"
    status = restarted.release("shop")
    assert status["runningImages"] == {"app": GOOD_V2}
    assert status["runningFingerprint"] == fingerprint({"app": GOOD_V2})
    restarted.kill()

    # While ecsop is down, someone points the service at a revision of their own.
    manual = sandbox.register_by_hand("shop-breaker", GOOD_V3)
    sandbox.ecs.update_service(cluster="prod", service="shop-breaker", taskDefinition=manual)
    wait_for(lambda: sandbox.steady_on("shop-breaker", GOOD_V3), 40, "hand edit rolled out")
    third = start_daemon(caller="third")
    wait_for(lambda: last_good_runs(sandbox, "shop-breaker", GOOD_V1), 60, "put back")
    assert any(
        c["caller"] == "third" and c["request"].get("taskDefinition") == manual
        for c in sandbox.call_log("DescribeTaskDefinition")
    ), "the revision it did not prove is described"
    # And a commit after the restart deploys as ever.
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V3)}, "shop v3")
    wait_for(lambda: last_good_runs(sandbox, "shop", GOOD_V3), 40, "v3 deployed and baked")
    assert third.stop() == 0
