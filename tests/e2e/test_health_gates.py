"""Health gates end to end: the daemon as a process, the sandbox behind a load balancer.

Each gate rolls a bad release back with its own reason, recorded three ways:
the failed record in ``ecsop:state``, ``/status`` ``lastRollout.reason`` and
``ecsop_rollbacks_total{reason=...}``. HTTP checks hit a server the test runs
on 127.0.0.1; everything else is the sandbox's (target groups in moto's ELBv2,
alarms in moto's CloudWatch, flipped by the simulator). The sandbox clock runs
at 20x, so bakes of minutes take seconds; HTTP checks run in real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecsop.spec.model import fingerprint

from .conftest import (
    GOOD_V1,
    GOOD_V2,
    Daemon,
    Sandbox,
    SpecRepo,
    digest,
    release_doc,
    wait_for,
)

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]

UNHEALTHY = digest("unhealthy")
ALARMING = digest("alarming")


def _service(family: str) -> dict[str, Any]:
    return {
        "desiredCount": 2,
        "deploymentConfiguration": {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        },
        "loadBalancer": {
            "containerName": "app",
            "containerPort": 80,
            "deregistrationDelaySeconds": 5,
            "unhealthyAfterSeconds": 10,
        },
        "taskDefinition": {
            "family": family,
            "networkMode": "awsvpc",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": GOOD_V1,
                    "essential": True,
                    "memory": 256,
                    "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                }
            ],
        },
    }


def gates_scenario() -> dict[str, Any]:
    """``web`` behind a target group with the alarm ``web-5xx``; ``guarded`` also has
    ECS deployment alarms (``guarded-5xx``) with rollback."""
    return {
        "region": "us-east-1",
        "clockSpeed": 20,
        "seed": 11,
        "images": {
            GOOD_V1: {"behavior": "healthy", "startSeconds": 5},
            GOOD_V2: {"behavior": "healthy", "startSeconds": 5},
            UNHEALTHY: {"behavior": "unhealthy", "healthCheckCodes": "[500]"},
            ALARMING: {"behavior": "alarm", "alarm": "{service}-5xx", "startSeconds": 5},
        },
        "alarms": ["web-5xx", "guarded-5xx", "full-5xx"],
        "clusters": {
            "prod": {
                "services": {
                    "web": _service("web"),
                    "guarded": _guarded(),
                    "full": _guarded("full", {f"team-{i:02d}": "x" for i in range(48)}),
                }
            }
        },
        # ECS reads deployment alarms every 60 s here (the sandbox's default); ecsop, whose
        # own probe sees the same alarm within seconds, gives ECS 90 s to move first.
    }


def _guarded(name: str = "guarded", tags: dict[str, str] | None = None) -> dict[str, Any]:
    """A service whose own ECS deployment alarms roll it back (ECS, not ecsop, acts)."""
    service = _service(name)
    if tags:
        service["tags"] = tags
    service["deploymentConfiguration"]["alarms"] = {
        "alarmNames": [f"{name}-5xx"],
        "enable": True,
        "rollback": True,
    }
    return service


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """This module's sandbox: the conftest's ``start_daemon`` picks it up."""
    box = Sandbox(tmp_path, gates_scenario())
    yield box
    box.stop()


class Endpoint:
    """A local HTTP endpoint answering ``status``, counting the requests it gets."""

    def __init__(self) -> None:
        self.status = 200
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests += 1
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/smoke"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def check(self, **extra: Any) -> dict[str, Any]:
        return {"url": self.url, "intervalSeconds": 1, "timeoutSeconds": 2, **extra}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.stop()


def rollbacks(daemon: Daemon, release: str) -> dict[str, float]:
    """``ecsop_rollbacks_total`` of ``release`` by reason."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(daemon.get("/metrics")):
        if family.name == "ecsop_rollbacks":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["release"] == release:
                    found[sample.labels["reason"]] = sample.value
    return found


def adopt(repo: SpecRepo, start: StartDaemon, doc: dict[str, Any]) -> Daemon:
    repo.commit({"app.yaml": doc}, "adopt")
    daemon = start()
    wait_for(
        lambda: daemon.release(doc["metadata"]["name"]).get("phase") == "Synced", 20, "adopted"
    )
    return daemon


def rolled_back_for(
    sandbox: Sandbox, daemon: Daemon, release: str, service: str, image: str, reason: str
) -> dict[str, Any]:
    """Wait for ``image``'s failure, the service back on GOOD_V1; check reason everywhere."""
    wait_for(
        lambda: sandbox.failed(service) == fingerprint({"app": image}),
        30,
        f"{image} failure recorded",
    )
    assert sandbox.failed_reason(service) == reason
    wait_for(lambda: sandbox.steady_on(service, GOOD_V1), 30, "back on v1")
    status = wait_for(
        lambda: daemon.release(release) if daemon.release(release)["phase"] == "Degraded" else None,
        10,
        "Degraded",
    )
    assert status["lastRollout"]["outcome"] == "rolled_back"
    assert status["lastRollout"]["reason"] == reason
    assert rollbacks(daemon, release)[reason] == 1.0
    assert sum(rollbacks(daemon, release).values()) == 1.0
    logged = [e for e in daemon.logs() if e.get("release") == release and e.get("failure")]
    assert logged and logged[0]["failure"] == reason
    result: dict[str, Any] = status["lastRollout"]
    return result


def test_unhealthy_targets_roll_back_for_target_health(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    daemon = adopt(repo, start_daemon, release_doc("web", "web", GOOD_V1))
    repo.commit({"app.yaml": release_doc("web", "web", UNHEALTHY)}, "unhealthy")
    rollout = rolled_back_for(sandbox, daemon, "web", "web", UNHEALTHY, "target_health")
    # ecsop's own target-health gate sees the unhealthy targets before ECS
    # replaces their tasks, so no task has stopped yet when it rolls back.
    assert "targets unhealthy" in rollout["detail"]
    detail = rollout["detail"]
    assert "Health checks failed" in detail or "ResponseCodeMismatch" in detail
    assert daemon.stop() == 0


def test_alarm_rolls_back_citing_the_alarm(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    doc = release_doc("web", "web", GOOD_V1, alarms=["web-5xx"])
    daemon = adopt(repo, start_daemon, doc)
    repo.commit({"app.yaml": release_doc("web", "web", ALARMING, alarms=["web-5xx"])}, "alarm")
    rollout = rolled_back_for(sandbox, daemon, "web", "web", ALARMING, "alarm")
    assert "web-5xx" in rollout["detail"]
    assert daemon.stop() == 0


def test_http_check_answering_500_rolls_back(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon, endpoint: Endpoint
) -> None:
    checks = [endpoint.check(failuresAllowed=1)]
    daemon = adopt(repo, start_daemon, release_doc("web", "web", GOOD_V1, httpChecks=checks))
    assert endpoint.requests == 0, "a Synced release is not probed"
    endpoint.status = 500
    repo.commit(
        {"app.yaml": release_doc("web", "web", GOOD_V2, bakeSeconds=300, httpChecks=checks)}, "v2"
    )
    rollout = rolled_back_for(sandbox, daemon, "web", "web", GOOD_V2, "http_check")
    assert endpoint.url in rollout["detail"] and "HTTP 500" in rollout["detail"]
    assert endpoint.requests >= 2
    assert daemon.stop() == 0


def test_failure_during_bake_rolls_back(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon, endpoint: Endpoint
) -> None:
    checks = [endpoint.check(failuresAllowed=1)]
    daemon = adopt(repo, start_daemon, release_doc("web", "web", GOOD_V1, httpChecks=checks))
    repo.commit(
        {"app.yaml": release_doc("web", "web", GOOD_V2, bakeSeconds=600, httpChecks=checks)}, "v2"
    )
    wait_for(lambda: daemon.release("web")["reason"] == "Baking", 30, "v2 COMPLETED and baking")
    assert sandbox.steady_on("web", GOOD_V2)
    assert endpoint.requests > 0 and not sandbox.failed("web")
    endpoint.status = 500
    rollout = rolled_back_for(sandbox, daemon, "web", "web", GOOD_V2, "http_check")
    assert "HTTP 500" in rollout["detail"]
    assert "ecsop:last-good" in sandbox.tags("web")
    assert sandbox.image_of("web") == GOOD_V1, "last-good was never moved to v2"
    assert daemon.stop() == 0


def test_healthy_release_passes_every_gate_and_becomes_last_good(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon, endpoint: Endpoint
) -> None:
    gates = {"alarms": ["web-5xx"], "targetHealth": True, "httpChecks": [endpoint.check()]}
    daemon = adopt(repo, start_daemon, release_doc("web", "web", GOOD_V1, **gates))
    repo.commit({"app.yaml": release_doc("web", "web", GOOD_V2, bakeSeconds=60, **gates)}, "v2")
    wait_for(
        lambda: daemon.release("web").get("lastRollout", {}).get("outcome") == "succeeded",
        30,
        "v2 baked",
    )
    service = sandbox.service("web")
    assert sandbox.tags("web")["ecsop:last-good"] == service["taskDefinition"]
    assert sandbox.image_of("web") == GOOD_V2
    assert daemon.release("web")["phase"] == "Synced"
    assert sandbox.calls("DescribeTargetHealth") > 0
    assert sandbox.calls("DescribeAlarms") > 0
    assert endpoint.requests > 0
    assert sum(rollbacks(daemon, "web").values()) == 0

    # Synced: no health call of any kind, however many resyncs pass.
    sandbox.control("POST", "calls/reset", {})
    requests = endpoint.requests
    wait_for(lambda: sandbox.calls("DescribeServices") >= 2, 30, "two resyncs")
    for operation in ("DescribeTargetHealth", "DescribeAlarms", "ListTasks", "DescribeTasks"):
        assert sandbox.calls(operation) == 0, operation
    assert endpoint.requests == requests
    assert daemon.stop() == 0


def test_ecs_rollback_on_its_own_deployment_alarm_is_recognised(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    daemon = adopt(repo, start_daemon, release_doc("guarded", "guarded", GOOD_V1))
    repo.commit({"app.yaml": release_doc("guarded", "guarded", ALARMING)}, "alarming")
    rollout = rolled_back_for(sandbox, daemon, "guarded", "guarded", ALARMING, "alarm")
    assert "guarded-5xx" in rollout["detail"]
    assert sandbox.calls("UpdateService") == 1, "ECS rolled back by itself; ecsop only deployed"
    assert daemon.stop() == 0


# --- attacks on ECS's first move (a hostile tester's, each a finding to keep) -------


def ecs_rolled_back(sandbox: Sandbox, service: str) -> bool:
    """ALARMING recorded failed (reason alarm) and the service steady on v1 again."""
    return (
        sandbox.failed(service) == fingerprint({"app": ALARMING})
        and sandbox.failed_reason(service) == "alarm"
        and sandbox.steady_on(service, GOOD_V1)
    )


def only_deploys(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every UpdateService so far; each must point at an ALARMING revision (no rollback
    by ecsop: ECS's own rollback is not an API call)."""
    calls = sandbox.call_log("UpdateService")
    for call in calls:
        arn = call["request"]["taskDefinition"]
        assert sandbox.app_image(arn) == ALARMING, (call["caller"], arn)
    return calls


def test_a_spec_broken_while_ecs_has_its_move_leaves_the_rollback_to_ecs(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    daemon = adopt(repo, start_daemon, release_doc("guarded", "guarded", GOOD_V1))
    repo.commit({"app.yaml": release_doc("guarded", "guarded", ALARMING)}, "alarming")
    wait_for(lambda: sandbox.calls("UpdateService") == 1, 20, "deployed")
    repo.commit({"app.yaml": "apiVersion: ecsop.dev/v1\nkind: [Release\n"}, "broken")
    wait_for(lambda: ecs_rolled_back(sandbox, "guarded"), 40, "ECS rolled back, recorded")
    assert len(only_deploys(sandbox)) == 1
    wait_for(lambda: daemon.release("guarded")["phase"] in ("Invalid", "Degraded"), 10, "shown")
    assert daemon.release("guarded")["lastRollout"]["outcome"] == "rolled_back"
    assert daemon.stop() == 0


def test_two_daemons_both_leave_the_rollback_to_ecs(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    # Two replicas by mistake (no coordination): the deploy may race once (issue 21's
    # finding, ``test_hostile``), but neither rolls back what ECS rolls back itself.
    repo.commit({"app.yaml": release_doc("guarded", "guarded", GOOD_V1)}, "adopt")
    first = start_daemon(caller="first")
    second = start_daemon(caller="second")
    for daemon in (first, second):
        wait_for(lambda d=daemon: d.release("guarded").get("phase") == "Synced", 20, "adopted")
    repo.commit({"app.yaml": release_doc("guarded", "guarded", ALARMING)}, "alarming")
    wait_for(lambda: ecs_rolled_back(sandbox, "guarded"), 40, "ECS rolled back, recorded")
    time.sleep(1)  # a few more active polls of both daemons
    assert 1 <= len(only_deploys(sandbox)) <= 2
    assert first.stop() == 0 and second.stop() == 0


def test_ecs_rollback_of_a_service_with_48_tags_is_recorded_and_lost_answers_repeat_nothing(
    sandbox: Sandbox, repo: SpecRepo, start_daemon: StartDaemon
) -> None:
    # 48 tags of the user's leave room for ecsop's two; every TagResource answer of the
    # recording is lost after the write half the time, and UpdateService's too.
    daemon = adopt(repo, start_daemon, release_doc("full", "full", GOOD_V1))
    assert len(sandbox.tags("full")) == 50
    half = {"lostAnswerRate": 0.5}
    sandbox.control("POST", "faults", {"operations": {"TagResource": half, "UpdateService": half}})
    repo.commit({"app.yaml": release_doc("full", "full", ALARMING)}, "alarming")
    wait_for(lambda: ecs_rolled_back(sandbox, "full"), 60, "ECS rolled back, recorded")
    time.sleep(1)
    only_deploys(sandbox)  # retried UpdateService calls (botocore's), no rollback by ecsop
    arn = sandbox.service("full")["serviceArn"]
    started = sandbox.ecs.list_service_deployments(cluster="prod", service=arn)
    # The adopted v1 and ALARMING's, which ECS rolled back: a lost answer is found,
    # never deployed again.
    assert len(started["serviceDeployments"]) == 2, started["serviceDeployments"]
    assert len(sandbox.tags("full")) == 50
    status = wait_for(
        lambda: daemon.release("full") if daemon.release("full")["phase"] == "Degraded" else None,
        10,
        "Degraded",
    )
    assert status["lastRollout"]["reason"] == "alarm"
    assert daemon.stop() == 0
