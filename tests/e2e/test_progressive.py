"""Blue/green, canary and linear rollouts, judged and rolled back by the real daemon (issue 14).

The sandbox runs ECS's own strategies: it moves the weights of the listener
rules in moto's ELBv2 and serves every listener as real HTTP
(``/_sandbox/listeners``), routing each request by those weights to a healthy
task that answers as its image behaves. A background client keeps requesting
the production listener for the whole test, so "no production request reached
the bad revision" is counted, not assumed.
"""

from __future__ import annotations

import copy
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsop.spec.model import fingerprint

from .conftest import (
    GOOD_V1,
    GOOD_V2,
    SIDECAR,
    Daemon,
    Sandbox,
    SpecRepo,
    digest,
    release_doc,
    wait_for,
)

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]

BROKEN = digest("broken-app")
"""Passes its ELB health checks; its application answers 500 to every request."""
ALARMING = digest("alarming-web")
GOOD_V3 = digest("v3")
LATE_CRASH = digest("late-crash")
"""Healthy long enough to take all production traffic, then crash-loops: fails in the bake."""


def web_scenario() -> dict[str, Any]:
    service = {
        "desiredCount": 2,
        "healthCheckGracePeriodSeconds": 0,
        "deploymentConfiguration": {
            "strategy": "ROLLING",
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
        "loadBalancer": {
            "containerName": "app",
            "containerPort": 8080,
            "deregistrationDelaySeconds": 5,
            "advancedConfiguration": {"testListener": True},
        },
        "taskDefinition": {
            "family": "web",
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {"name": "app", "image": GOOD_V1, "essential": True, "memory": 256},
                {"name": "sidecar", "image": SIDECAR, "essential": False, "memory": 64},
            ],
        },
    }
    guarded = copy.deepcopy(service)
    guarded["taskDefinition"]["family"] = "guarded"
    guarded["deploymentConfiguration"]["alarms"] = {
        "alarmNames": ["guarded-5xx"],
        "enable": True,
        "rollback": True,
    }
    return {
        "region": "us-east-1",
        "clockSpeed": 20,
        "seed": 5,
        "images": {
            GOOD_V1: {"behavior": "healthy", "startSeconds": 5},
            GOOD_V2: {"behavior": "healthy", "startSeconds": 5},
            GOOD_V3: {"behavior": "healthy", "startSeconds": 5},
            SIDECAR: {"behavior": "healthy", "startSeconds": 1},
            BROKEN: {"behavior": "healthy", "startSeconds": 5, "errorRate": 1.0},
            ALARMING: {"behavior": "alarm", "alarm": "{service}-5xx", "startSeconds": 5},
            LATE_CRASH: {"behavior": "crashloop", "startSeconds": 5, "crashAfterSeconds": 150},
        },
        "alarms": ["guarded-5xx"],
        "timings": {"alarmPollSeconds": 1},
        "clusters": {"prod": {"services": {"web": service, "guarded": guarded}}},
    }


@pytest.fixture
def sandbox(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """``web_scenario``; a test may set the web service's deregistration delay
    (``indirect`` parametrisation) to make draining, and so a rollback, last."""
    scenario = web_scenario()
    delay = getattr(request, "param", None)
    if delay is not None:
        web = scenario["clusters"]["prod"]["services"]["web"]
        web["loadBalancer"]["deregistrationDelaySeconds"] = delay
    box = Sandbox(tmp_path, scenario)
    yield box
    box.stop()


class ProductionClient:
    """Requests the production listener every 50 ms for the whole test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    self.statuses.append(int(response.status))
            except urllib.error.HTTPError as error:
                self.statuses.append(int(error.code))
            except OSError:
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)


def listeners(sandbox: Sandbox, service: str = "web") -> dict[str, Any]:
    found: dict[str, Any] = sandbox.control("GET", "listeners")["listeners"][f"prod/{service}"]
    return found


def answered_by(sandbox: Sandbox, image: str, listener: str, service: str = "web") -> int:
    """Requests the ``listener`` answered from tasks of ``image``'s revisions."""
    answers = listeners(sandbox, service)[listener]["answers"]
    total = 0
    for task_definition, by_status in answers.items():
        described = sandbox.ecs.describe_task_definition(taskDefinition=task_definition)
        images = [c["image"] for c in described["taskDefinition"]["containerDefinitions"]]
        if image in images:
            total += sum(by_status.values())
    return total


def spec(image: str, strategy: dict[str, Any], service: str = "web", **rollout: Any) -> Any:
    return release_doc(service, service, image, strategy=strategy, bakeSeconds=5, **rollout)


def synced_on(sandbox: Sandbox, daemon: Daemon, image: str, service: str = "web") -> bool:
    return daemon.release(service).get("phase") == "Synced" and sandbox.steady_on(service, image)


def start(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon, doc: Any, service: str = "web"
) -> Daemon:
    repo.commit({f"{service}.yaml": doc}, "adopt")
    daemon = start_daemon()
    wait_for(lambda: daemon.release(service).get("phase") == "Synced", 30, "adopted")
    return daemon


def test_blue_green_judges_green_on_test_traffic_then_moves_production(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    test_url = listeners(sandbox)["test"]["url"]
    checks = {"httpChecks": [{"url": test_url, "intervalSeconds": 1}], "passesRequired": 2}
    blue_green = {"blueGreen": {"bakeMinutes": 1, "testTraffic": checks}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, blue_green))
    repo.commit({"web.yaml": spec(GOOD_V2, blue_green)}, "v2")
    wait_for(lambda: synced_on(sandbox, daemon, GOOD_V2), 90, "v2 through every stage")
    (update,) = [
        c for c in sandbox.call_log("UpdateService") if c["request"].get("service") == "web"
    ]
    assert len(sandbox.call_log("ContinueServiceDeployment")) == 1, "ecsop let ECS go on, once"
    service = sandbox.service("web")
    assert service["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"]["enable"] is True
    assert update is not None and not sandbox.failed("web")


@pytest.mark.parametrize(
    ("shape", "weights"),
    [
        # Bakes of 3 simulated minutes (9 s real at x20): long enough for the test's
        # polls of /status to see the step, even on a loaded machine.
        ({"canary": {"percent": 25, "bakeMinutes": 3}}, {25.0}),
        ({"linear": {"stepPercent": 50, "stepBakeMinutes": 3}}, {50.0}),
    ],
    ids=["canary", "linear"],
)
def test_a_good_release_goes_through_every_step_to_synced(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: StartDaemon,
    shape: dict[str, Any],
    weights: set[float],
) -> None:
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, shape))
    repo.commit({"web.yaml": spec(GOOD_V2, shape)}, "v2")
    seen: set[float] = set()
    stages: list[Any] = []

    def synced_watching_weights() -> bool:
        rollout = daemon.release("web").get("rollout") or {}
        stages.append(rollout)
        if rollout.get("productionOnGreen") is not None:
            seen.add(float(rollout["productionOnGreen"]))
        return synced_on(sandbox, daemon, GOOD_V2)

    wait_for(synced_watching_weights, 120, "v2 through every step")
    assert weights <= seen, f"production moved step by step, seen {stages}"
    assert not sandbox.failed("web") and sandbox.revisions("web") == 2
    assert sandbox.service("web")["deploymentConfiguration"]["strategy"] == next(
        {"canary": "CANARY", "linear": "LINEAR"}[key] for key in shape
    )
    metrics = daemon.get("/metrics")
    assert 'ecsop_deployments_total{outcome="succeeded",release="web"} 1.0' in metrics


def test_a_release_failing_during_the_bake_is_rolled_back_to_blue(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    blue_green = {"blueGreen": {"bakeMinutes": 5}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, blue_green))
    repo.commit({"web.yaml": spec(LATE_CRASH, blue_green)}, "crashes late")
    stages: set[str] = set()

    def rolled_back_watching_stages() -> bool:
        stages.add(str((daemon.release("web").get("rollout") or {}).get("stage")))
        return sandbox.failed("web") == fingerprint({"app": LATE_CRASH})

    wait_for(rolled_back_watching_stages, 90, "rolled back")
    wait_for(lambda: sandbox.steady_on("web", GOOD_V1), 60, "back on v1")
    assert "BAKE_TIME" in stages, f"failed in the bake, after {stages}"
    assert len(sandbox.call_log("StopServiceDeployment")) == 1, "rolled back by ECS, to blue"
    web_updates = [
        c for c in sandbox.call_log("UpdateService") if c["request"].get("service") == "web"
    ]
    assert len(web_updates) == 1
    assert daemon.release("web")["lastRollout"]["outcome"] == "rolled_back"


def test_blue_green_rolls_a_bad_release_back_before_any_production_request_reaches_it(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    urls = listeners(sandbox)
    checks = {
        "httpChecks": [{"url": urls["test"]["url"], "intervalSeconds": 1, "failuresAllowed": 1}]
    }
    blue_green = {"blueGreen": {"bakeMinutes": 1, "testTraffic": checks}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, blue_green))
    production = ProductionClient(urls["production"]["url"])
    try:
        repo.commit({"web.yaml": spec(BROKEN, blue_green)}, "broken")
        wait_for(lambda: sandbox.failed("web") == fingerprint({"app": BROKEN}), 60, "rolled back")
        wait_for(lambda: sandbox.steady_on("web", GOOD_V1), 60, "back on v1")
    finally:
        production.stop()
    assert sandbox.failed_reason("web") == "test_traffic"
    assert answered_by(sandbox, BROKEN, "test") > 0, "green was judged on test traffic"
    assert answered_by(sandbox, BROKEN, "production") == 0, "no production request reached it"
    assert production.statuses and set(production.statuses) == {200}
    assert len(sandbox.call_log("ContinueServiceDeployment")) == 1  # the ROLLBACK through the pause
    assert daemon.release("web")["lastRollout"]["reason"] == "test_traffic"


def test_a_canary_failing_on_production_traffic_is_rolled_back_through_ecs(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    urls = listeners(sandbox)
    check = {"url": urls["production"]["url"], "intervalSeconds": 1, "failuresAllowed": 0}
    canary = {"canary": {"percent": 50, "bakeMinutes": 30}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, canary, httpChecks=[check]))
    repo.commit({"web.yaml": spec(BROKEN, canary, httpChecks=[check])}, "broken")
    wait_for(lambda: sandbox.failed("web") == fingerprint({"app": BROKEN}), 60, "rolled back")
    wait_for(lambda: sandbox.steady_on("web", GOOD_V1), 60, "back on v1")
    assert sandbox.failed_reason("web") == "http_check"
    assert len(sandbox.call_log("StopServiceDeployment")) == 1, "rolled back by ECS, at once"
    web_updates = [
        c for c in sandbox.call_log("UpdateService") if c["request"].get("service") == "web"
    ]
    assert len(web_updates) == 1, "no second deployment: blue was still there"
    served = answered_by(sandbox, BROKEN, "production")
    total = sum(sum(s.values()) for s in listeners(sandbox)["production"]["answers"].values())
    assert 0 < served < total
    restore = [e for e in daemon.logs() if e.get("release") == "web" and "restore_seconds" in e]
    assert restore and restore[0]["strategy"] == "CANARY"
    metrics = daemon.get("/metrics")
    assert 'ecsop_time_to_restore_seconds_count{release="web",strategy="CANARY"} 1.0' in metrics


def test_ecs_rolling_back_on_its_own_deployment_alarm_is_recognised_not_fought(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    linear = {"linear": {"stepPercent": 50, "stepBakeMinutes": 1}}
    daemon = start(
        sandbox, repo, start_daemon, spec(GOOD_V1, linear, service="guarded"), service="guarded"
    )
    repo.commit({"guarded.yaml": spec(ALARMING, linear, service="guarded")}, "alarming")
    wait_for(lambda: sandbox.failed("guarded") == fingerprint({"app": ALARMING}), 60, "recorded")
    wait_for(lambda: sandbox.steady_on("guarded", GOOD_V1), 60, "back on v1")
    assert sandbox.failed_reason("guarded") == "alarm"
    assert len(sandbox.call_log("StopServiceDeployment")) <= 1
    status = daemon.release("guarded")
    assert status["lastRollout"]["outcome"] == "rolled_back"


def test_kill_9_mid_shift_resumes_without_a_second_deployment(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    canary = {"canary": {"percent": 20, "bakeMinutes": 2}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, canary))
    repo.commit({"web.yaml": spec(GOOD_V2, canary)}, "v2")
    wait_for(
        lambda: (daemon.release("web").get("rollout") or {}).get("productionOnGreen") == 20.0,
        60,
        "canary at 20%",
    )
    daemon.kill()
    restarted = start_daemon()
    wait_for(lambda: synced_on(sandbox, restarted, GOOD_V2), 120, "finished by the new daemon")
    web_updates = [
        c for c in sandbox.call_log("UpdateService") if c["request"].get("service") == "web"
    ]
    assert len(web_updates) == 1
    assert sandbox.revisions("web") == 2
    assert not sandbox.failed("web")


def test_a_revert_during_a_shift_sends_production_back_at_once(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    canary = {"canary": {"percent": 30, "bakeMinutes": 30}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, canary))
    repo.commit({"web.yaml": spec(GOOD_V2, canary)}, "v2")
    wait_for(
        lambda: (daemon.release("web").get("rollout") or {}).get("productionOnGreen") == 30.0,
        60,
        "canary at 30%",
    )
    repo.commit({"web.yaml": spec(GOOD_V1, canary)}, "revert")
    wait_for(lambda: synced_on(sandbox, daemon, GOOD_V1), 60, "back on v1")
    assert len(sandbox.call_log("StopServiceDeployment")) == 1
    assert not sandbox.failed("web"), "a revert is not a failure of the release"
    assert any(e.get("reason") == "Reverting" for e in daemon.logs())
    time.sleep(1)
    web_updates = [
        c for c in sandbox.call_log("UpdateService") if c["request"].get("service") == "web"
    ]
    assert len(web_updates) == 1


def test_a_new_digest_pushed_while_green_waits_at_the_test_traffic_pause(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """v3 is pushed while v2 waits at ecsop's pause: v2, healthy, goes on and finishes
    first, then v3 deploys; nobody leaves ECS holding v2 until the pause times out and
    rolls it back (20 simulated minutes, 60 s here)."""
    test_url = listeners(sandbox)["test"]["url"]
    checks = {
        "httpChecks": [{"url": test_url, "intervalSeconds": 1}],
        "passesRequired": 8,
        "timeoutMinutes": 20,
    }
    blue_green = {"blueGreen": {"bakeMinutes": 1, "testTraffic": checks}}
    daemon = start(sandbox, repo, start_daemon, spec(GOOD_V1, blue_green))
    repo.commit({"web.yaml": spec(GOOD_V2, blue_green)}, "v2")
    wait_for(lambda: (daemon.release("web").get("rollout") or {}).get("paused"), 60, "v2 paused")
    repo.commit({"web.yaml": spec(GOOD_V3, blue_green)}, "v3")
    wait_for(lambda: synced_on(sandbox, daemon, GOOD_V3), 50, "v2 finished, then v3 deployed")
    assert not sandbox.failed("web")
    assert len(sandbox.call_log("ContinueServiceDeployment")) == 2, "v2 and v3 let go on"


# Draining for 150 simulated seconds (AWS's default is 300): 7.5 s here, long enough for
# passes to see blue PRIMARY and IN_PROGRESS again while green drains.
@pytest.mark.parametrize("sandbox", [150], indirect=True)
def test_a_fix_pushed_while_a_canary_drains_back_to_an_old_blue_deploys(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    """ECS returns traffic to blue within the service deployment, blue PRIMARY and
    IN_PROGRESS again with its own creation time while green drains. A blue deployed
    longer ago than ``timeoutSeconds`` (any blue in production) must not make that
    rollback "failing": a RollbackFailed record, "ecsop has stopped acting on this
    release", Degraded, while the rollback is fine and the fix waits to deploy."""
    urls = listeners(sandbox)
    check = {"url": urls["production"]["url"], "intervalSeconds": 1, "failuresAllowed": 0}
    canary = {"canary": {"percent": 50, "bakeMinutes": 1}}

    def canary_spec(image: str) -> Any:
        return spec(image, canary, httpChecks=[check], timeoutSeconds=240)

    daemon = start(sandbox, repo, start_daemon, canary_spec(GOOD_V1))
    time.sleep(13)  # 260 simulated seconds: blue is older than the 240 s timeout
    repo.commit({"web.yaml": canary_spec(BROKEN)}, "broken")
    wait_for(lambda: sandbox.failed("web") == fingerprint({"app": BROKEN}), 60, "rolled back")
    repo.commit({"web.yaml": canary_spec(GOOD_V2)}, "the fix")
    wait_for(lambda: synced_on(sandbox, daemon, GOOD_V2), 60, "the fix deployed")
    assert not [e for e in daemon.logs() if e.get("reason") == "RollbackFailed"]
