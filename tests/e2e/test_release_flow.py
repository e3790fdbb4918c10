"""The release flow end to end: the daemon as a process, the sandbox as AWS, specs in git.

Staging proves an image, production promotes the same image after an
approval and inside a change window; a worker waits for the API it depends
on; an image that is not in ECR is refused before anything is registered.
Time is the simulator's; nothing here sleeps long.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import (
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
from ecsop.decision.memory import TAG_APPROVAL, ApprovalRecord, proves
from ecsop.spec.model import fingerprint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DENY_ALL_DAY = {"kind": "deny", "schedule": "0 0 * * *", "durationMinutes": 1440, "timeZone": "UTC"}


def flow_scenario(clock_speed: float = 20.0) -> dict[str, Any]:
    """The e2e scenario, plus a staging ``shop`` and a production ``worker``."""
    config = scenario(clock_speed)
    shop = config["clusters"]["prod"]["services"]["shop"]
    staging = copy.deepcopy(shop)
    staging["taskDefinition"]["family"] = "shop-staging"
    worker = copy.deepcopy(shop)
    worker["taskDefinition"]["family"] = "worker"
    config["clusters"]["staging"] = {"services": {"shop": staging}}
    config["clusters"]["prod"]["services"]["worker"] = worker
    return config


def doc(name: str, service: str, image: str, cluster: str = "prod", **spec: Any) -> dict[str, Any]:
    rollout = spec.pop("rollout", {})
    document = release_doc(name, service, image, **rollout)
    document["spec"].update(cluster=cluster, **spec)
    return document


def staging(image: str) -> dict[str, Any]:
    return doc("shop-staging", "shop", image, cluster="staging")


def prod(image: str, **spec: Any) -> dict[str, Any]:
    return doc("shop-prod", "shop", image, promotion={"from": ["shop-staging"]}, **spec)


class Flow:
    """One sandbox, one spec repository, daemons started on demand."""

    def __init__(self, tmp_path: Path, clock_speed: float = 20.0) -> None:
        self.tmp = tmp_path
        self.box = Sandbox(tmp_path, flow_scenario(clock_speed))
        self.repo = SpecRepo(tmp_path / "specs")
        self.daemons: list[Daemon] = []

    def start(self) -> Daemon:
        daemon = Daemon(self.tmp, self.box, self.repo.path)
        self.daemons.append(daemon)
        return daemon

    def updates(self, cluster: str, service: str) -> list[dict[str, Any]]:
        return [
            call
            for call in self.box.call_log("UpdateService")
            if call["request"].get("cluster") == cluster
            and call["request"].get("service") == service
        ]

    def image(self, cluster: str, service: str) -> str:
        ecs = self.box.ecs
        arn = ecs.describe_services(cluster=cluster, services=[service])["services"][0][
            "taskDefinition"
        ]
        td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        return str(next(c["image"] for c in td["containerDefinitions"] if c["name"] == "app"))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.box.aws_env()}
        return subprocess.run(
            [sys.executable, "-m", "ecsop", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.proc.poll() is None:
                daemon.stop()
        self.box.stop()


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    world = Flow(tmp_path)
    yield world
    world.close()


def reason(daemon: Daemon, name: str) -> str:
    return str(daemon.release(name).get("reason", ""))


def synced_on(daemon: Daemon, name: str, image: str) -> bool:
    """Synced on ``image``: deployed, baked, recorded as last-good (as the daemon reports it)."""
    status = daemon.release(name)
    wanted = fingerprint({"app": image})
    return (
        status.get("phase") == "Synced"
        and status.get("desiredFingerprint") == wanted
        and status.get("runningFingerprint") == wanted
    )


# --- promotion -----------------------------------------------------------------------------


def test_promotion_holds_until_staging_proves_the_digest(flow: Flow) -> None:
    flow.repo.commit({"shop.yaml": [staging(GOOD_V1), prod(GOOD_V1)]}, "adopt both")
    daemon = flow.start()
    wait_for(lambda: reason(daemon, "shop-prod") == "InSync", 30, "prod adopted")

    flow.repo.commit({"shop.yaml": [staging(GOOD_V1), prod(GOOD_V2)]}, "prod wants v2")
    wait_for(lambda: reason(daemon, "shop-prod") == "PromotionBlocked", 30, "promotion blocked")
    message = daemon.release("shop-prod")["message"]
    assert "not yet proven by shop-staging" in message, message
    assert f"app@sha256:{GOOD_V2.split('@sha256:')[1][:12]}" in message
    assert not flow.updates("prod", "shop"), "nothing deployed while unproven"
    metrics = daemon.get("/metrics")
    assert 'ecsop_release_held{reason="PromotionBlocked",release="shop-prod"} 1.0' in metrics

    flow.repo.commit({"shop.yaml": [staging(GOOD_V2), prod(GOOD_V2)]}, "staging v2")
    wait_for(lambda: synced_on(daemon, "shop-prod", GOOD_V2), 60, "prod on v2")
    (staging_update,) = flow.updates("staging", "shop")
    (prod_update,) = flow.updates("prod", "shop")
    assert staging_update["seq"] < prod_update["seq"]
    assert prod_update["sim"] >= staging_update["sim"] + 30, "staging baked (30 s) first"
    proven = flow.box.ecs.describe_task_definition(
        taskDefinition=staging_update["request"]["taskDefinition"], include=["TAGS"]
    )
    tags = {t["key"]: t["value"] for t in proven["tags"]}
    assert proves(tags, "shop-staging", proven["taskDefinition"]["taskDefinitionArn"])
    assert flow.box.call_log("ListTagsForResource"), "the proof postdates the cached revision"


def test_a_proof_outlives_restarts_and_staging_moving_on_and_promote_writes_it(
    flow: Flow,
) -> None:
    flow.repo.commit({"shop.yaml": [staging(GOOD_V1), prod(GOOD_V1)]}, "adopt both")
    daemon = flow.start()
    wait_for(lambda: reason(daemon, "shop-prod") == "InSync", 30, "adopted")
    refused = flow.cli("promote", "shop-staging", "shop-prod", "--specs", str(flow.repo.path))
    assert refused.returncode == 1 and "not proven by shop-staging" in refused.stderr, refused

    for image in (GOOD_V2, GOOD_V3):  # staging proves v2, then moves on to v3
        flow.repo.commit({"shop.yaml": [staging(image), prod(GOOD_V1)]}, "staging")
        wait_for(
            lambda image=image: synced_on(daemon, "shop-staging", image),
            60,
            f"staging proved {image}",
        )
    daemon.kill()  # kill -9: everything that matters is in AWS

    flow.repo.commit({"shop.yaml": [staging(GOOD_V3), prod(GOOD_V2)]}, "prod takes v2")
    daemon = flow.start()
    wait_for(lambda: synced_on(daemon, "shop-prod", GOOD_V2), 60, "prod on v2")

    promoted = flow.cli("promote", "shop-staging", "shop-prod", "--specs", str(flow.repo.path))
    assert promoted.returncode == 0, promoted.stderr
    assert f"-    app: {GOOD_V2}" in promoted.stdout and f"+    app: {GOOD_V3}" in promoted.stdout
    text = (flow.repo.path / "shop.yaml").read_text()
    assert text.count(GOOD_V3) == 2 and GOOD_V2 not in text
    flow.repo.git("commit", "-qam", "promote v3 to prod")
    wait_for(lambda: synced_on(daemon, "shop-prod", GOOD_V3), 60, "prod on v3")


# --- ordering ------------------------------------------------------------------------------


def test_a_worker_deploys_after_the_api_it_depends_on(flow: Flow) -> None:
    def specs(image: str) -> list[dict[str, Any]]:
        return [doc("api", "shop", image), doc("worker", "worker", image, dependsOn=["api"])]

    flow.repo.commit({"app.yaml": specs(GOOD_V1)}, "adopt")
    daemon = flow.start()
    wait_for(lambda: reason(daemon, "worker") == "InSync", 30, "adopted")
    flow.repo.commit({"app.yaml": specs(GOOD_V2)}, "both to v2 at once")
    wait_for(lambda: reason(daemon, "worker") == "WaitingForDependency", 30, "worker waits")
    assert "api (" in daemon.release("worker")["message"]
    wait_for(lambda: synced_on(daemon, "worker", GOOD_V2), 60, "worker on v2")
    assert flow.image("prod", "worker") == GOOD_V2
    (api,) = flow.updates("prod", "shop")
    (worker,) = flow.updates("prod", "worker")
    assert api["seq"] < worker["seq"], "the call log shows the API first"
    assert worker["sim"] >= api["sim"] + 30, "the worker waited for the API's bake"


# --- approval ------------------------------------------------------------------------------


def test_a_release_waits_for_the_approval_of_its_exact_fingerprint(flow: Flow) -> None:
    def spec(image: str) -> dict[str, Any]:
        return doc("shop", "shop", image, rollout={"approval": "manual"})

    flow.repo.commit({"shop.yaml": spec(GOOD_V1)}, "adopt")
    daemon = flow.start()
    wait_for(lambda: reason(daemon, "shop") == "InSync", 30, "adopted")
    flow.repo.commit({"shop.yaml": spec(GOOD_V2)}, "v2")
    wait_for(lambda: reason(daemon, "shop") == "AwaitingApproval", 30, "awaiting approval")
    assert "ecsop approve shop" in daemon.release("shop")["message"]
    assert not flow.updates("prod", "shop")

    approved = flow.cli("approve", "shop", "--specs", str(flow.repo.path), "--url", daemon.url)
    assert approved.returncode == 0, approved.stderr
    assert fingerprint({"app": GOOD_V2}) in approved.stdout
    wait_for(lambda: synced_on(daemon, "shop", GOOD_V2), 60, "deployed")
    record = ApprovalRecord.read(flow.box.tags("shop"))
    assert record is not None and record.fingerprint == fingerprint({"app": GOOD_V2})
    assert record.by.startswith("arn:aws:") and record.at.endswith("Z")

    flow.repo.commit({"shop.yaml": spec(GOOD_V3)}, "v3 needs its own approval")
    wait_for(lambda: reason(daemon, "shop") == "AwaitingApproval", 30, "awaiting again")
    assert len(flow.updates("prod", "shop")) == 1
    assert TAG_APPROVAL in flow.box.tags("shop")


# --- deploy windows ------------------------------------------------------------------------


def test_a_deny_window_holds_a_deploy_but_not_a_rollback(tmp_path: Path) -> None:
    flow = Flow(tmp_path, clock_speed=0)  # the simulation moves only when told
    try:
        flow.repo.commit(
            {"app.yaml": [doc("shop", "shop", GOOD_V1), doc("other", "worker", GOOD_V1)]}, "adopt"
        )
        daemon = flow.start()
        wait_for(lambda: reason(daemon, "other") == "InSync", 30, "adopted")
        flow.repo.commit(
            {"app.yaml": [doc("shop", "shop", CRASH), doc("other", "worker", GOOD_V1)]}, "crash"
        )
        wait_for(lambda: len(flow.updates("prod", "shop")) == 1, 30, "the crash deployed")

        policy = {
            "apiVersion": "ecsop.dev/v1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "freeze"},
            "spec": {"selector": {}, "deployWindows": [DENY_ALL_DAY]},
        }
        flow.repo.commit(
            {
                "ecsop-policy.yaml": policy,
                "app.yaml": [doc("shop", "shop", CRASH), doc("other", "worker", GOOD_V2)],
            },
            "freeze, and other wants v2",
        )
        wait_for(lambda: reason(daemon, "other") == "OutsideDeployWindow", 30, "other held")
        assert "deny window '0 0 * * *' (1440 min, UTC)" in daemon.release("other")["message"]

        def rolled_back() -> bool:
            flow.box.control("POST", "clock", {"advance": 3})
            return len(flow.updates("prod", "shop")) == 2

        wait_for(rolled_back, 60, "the crash rolled back inside the deny window")
        assert flow.updates("prod", "shop")[1]["request"]["taskDefinition"].endswith(":1")
        assert not flow.updates("prod", "worker"), "the deploy stayed held"

        (flow.repo.path / "ecsop-policy.yaml").unlink()
        flow.repo.git("commit", "-qam", "freeze over")
        wait_for(lambda: flow.updates("prod", "worker"), 30, "other deploys once it opens")
    finally:
        flow.close()


# --- pre-flight ----------------------------------------------------------------------------


def test_a_digest_missing_from_ecr_is_refused_before_anything_is_registered(flow: Flow) -> None:
    flow.repo.commit({"shop.yaml": doc("shop", "shop", GOOD_V1)}, "adopt")
    daemon = flow.start()
    wait_for(lambda: reason(daemon, "shop") == "InSync", 30, "adopted")
    flow.box.control("POST", "ecr", {"remove": [GOOD_V2]})
    flow.repo.commit({"shop.yaml": doc("shop", "shop", GOOD_V2)}, "v2, never pushed")
    wait_for(lambda: reason(daemon, "shop") == "ImageNotFound", 30, "image not found")
    status = daemon.release("shop")
    assert status["phase"] == "Degraded" and GOOD_V2 in status["message"]
    assert flow.box.call_log("BatchGetImage")
    assert not flow.box.call_log("RegisterTaskDefinition")
    assert not flow.updates("prod", "shop")

    planned = flow.cli("plan", "--specs", str(flow.repo.path))
    assert planned.returncode == 1, planned.stdout
    assert "shop: Degraded: held: not registering or deploying: ECR does not hold" in planned.stdout

    flow.box.control("POST", "ecr", {"add": [GOOD_V2]})  # pushed after all
    wait_for(lambda: synced_on(daemon, "shop", GOOD_V2), 60, "deployed once pushed")
