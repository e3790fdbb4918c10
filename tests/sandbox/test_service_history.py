"""A release's history read through the gateway from the simulator's service deployments.

What ``ecsop history`` and ``/status`` show: who rolled back (ECS's ROLLBACK_*
statuses, ecsop's failed record), why, the commit and fingerprint from the
tags ecsop put on the revisions it registered, and what the read costs.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import CRASH, GOOD, GOOD_2, PULL_ERROR, Harness, scenario, service_spec
from sandbox_harness import task_definition as td_request

from ecsop.aws.budget import BudgetSettings, CallBudget
from ecsop.aws.ecs import EcsGateway
from ecsop.aws.history import HistoryOutcome
from ecsop.controller.history import PENDING, HistorySettings, StatusHistory
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import FailedRecord, RevisionMemory
from ecsop.decision.reasons import Failure
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.model import ServiceRelease, fingerprint

pytestmark = pytest.mark.sandbox
COMMIT = "c0ffee" + "0" * 34


def release() -> ServiceRelease:
    return ServiceRelease.model_validate(
        {
            "apiVersion": "ecsop.dev/v1",
            "kind": "ServiceRelease",
            "metadata": {"name": "api"},
            "spec": {"cluster": "prod", "service": "api", "containers": {"api": GOOD}},
        }
    )


def counted(sb: Harness) -> tuple[EcsGateway, collections.Counter[str]]:
    calls: collections.Counter[str] = collections.Counter()
    sb.ecs.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
    return EcsGateway(sb.ecs), calls


def ecsop_deploys(sb: Harness, image: str) -> str:
    """Register ``image`` as ecsop does (its tags) and point the service at it."""
    memory = RevisionMemory("api", Fingerprint(fingerprint({"api": image})), "x", COMMIT)
    arn: str = sb.ecs.register_task_definition(
        **td_request(image), tags=[{"key": k, "value": v} for k, v in memory.tags().items()]
    )["taskDefinition"]["taskDefinitionArn"]
    sb.ecs.update_service(cluster="prod", service="api", taskDefinition=arn)
    return arn


def settled(service: dict[str, Any]) -> bool:
    deployments = service["deployments"]
    return len(deployments) == 1 and deployments[0]["rolloutState"] == "COMPLETED"


def test_a_succeeded_deploy_with_its_commit_and_images(sandbox: Harness) -> None:
    gateway, calls = counted(sandbox)
    sandbox.advance(10)
    arn = ecsop_deploys(sandbox, GOOD_2)
    sandbox.run_until(settled)
    calls.clear()
    newest, first = gateway.release_history("prod", "api", release(), None, 10)
    assert newest.outcome is HistoryOutcome.SUCCEEDED
    assert (newest.task_definition, newest.commit, newest.by_ecsop) == (arn, COMMIT, True)
    assert newest.fingerprint == fingerprint({"api": GOOD_2})
    assert newest.images == {"api": GOOD_2}
    assert newest.strategy == "ROLLING"
    assert newest.duration_seconds is not None and newest.duration_seconds > 0
    assert (first.outcome, first.by_ecsop, first.commit) == (HistoryOutcome.SUCCEEDED, False, "")
    assert calls == {
        "ListServiceDeployments": 1,
        "DescribeServiceDeployments": 1,
        "DescribeServiceRevisions": 1,
        "DescribeTaskDefinition": 2,
    }
    calls.clear()
    gateway.release_history("prod", "api", release(), None, 10)
    assert "DescribeTaskDefinition" not in calls, "revisions are immutable: cached"


def test_ecs_s_breaker_rollback_is_ecs_s(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2)}))
    gateway, _ = counted(sb)
    ecsop_deploys(sb, PULL_ERROR)
    sb.run_until(lambda s: settled(s) and s["taskDefinition"].endswith(":1"), limit=900)
    failed = FailedRecord(Fingerprint(fingerprint({"api": PULL_ERROR})), Failure.ECS_ROLLBACK)
    newest = gateway.release_history("prod", "api", release(), failed, 5)[0]
    assert (newest.status, newest.outcome, newest.rolled_back_by) == (
        "ROLLBACK_SUCCESSFUL",
        HistoryOutcome.ROLLED_BACK,
        "ecs",
    )
    assert "circuit breaker" in newest.reason


def test_ecsop_s_rollback_is_ecsop_s_with_its_reason(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2, breaker=False)}))
    gateway, _ = counted(sb)
    original = sb.service()["taskDefinition"]
    ecsop_deploys(sb, CRASH)
    sb.advance(60)
    sb.ecs.update_service(cluster="prod", service="api", taskDefinition=original)  # the rollback
    sb.run_until(settled)
    failed = FailedRecord(Fingerprint(fingerprint({"api": CRASH})), Failure.FAILED_TASKS)
    rollback, crash, first = gateway.release_history("prod", "api", release(), failed, 5)
    assert (crash.status, crash.outcome, crash.rolled_back_by) == (
        "STOPPED",
        HistoryOutcome.ROLLED_BACK,
        "ecsop",
    )
    assert crash.reason == "failed_tasks (back to api:1)"
    assert crash.commit == COMMIT
    assert (rollback.outcome, rollback.rollback_of) == (HistoryOutcome.SUCCEEDED, crash.deployment)
    assert rollback.task_definition == original
    assert first.outcome is HistoryOutcome.SUCCEEDED
    # Without ecsop's record (an older failure, or a person): rolled back by someone.
    crash_unrecorded = gateway.release_history("prod", "api", release(), None, 5)[1]
    assert (crash_unrecorded.outcome, crash_unrecorded.rolled_back_by) == (
        HistoryOutcome.ROLLED_BACK,
        "",
    )
    (only,) = gateway.release_history("prod", "api", release(), None, 1)
    assert only.deployment == rollback.deployment


def test_status_history_takes_no_token_a_reconcile_call_would_wait_for(sandbox: Harness) -> None:
    """A dashboard polling ``/status`` of a large fleet must not slow reconciling."""
    now, slept = [0.0], list[float]()
    calls = CallBudget(BudgetSettings(share=0.5), monotonic=lambda: now[0], sleep=slept.append)
    client = Harness(sandbox.server).ecs  # the daemon's own client, paced by its budget
    calls.instrument(client, None)
    gateway = EcsGateway(client)
    loaded = LoadedRelease(release(), "api.yaml", 1, "us-east-1")
    history = StatusHistory(
        lambda region, role: gateway,
        lambda name: loaded,
        lambda name: None,
        HistorySettings(workers=1, deadline_seconds=60),
        clock=lambda: now[0],
    )
    names = [f"r{n}" for n in range(20)]  # 2 service-deployment tokens each; 25 at a 0.5 share
    shown = history(names)
    read = [name for name in names if "history" in shown[name]]
    assert slept == [], "a history read never waits for, nor reserves, a future token"
    assert len(read) == 12
    assert all(shown[name] == {"historyPending": PENDING} for name in names if name not in read)
    # The daemon's next call in that bucket waits for the next token only (20 a second
    # at AWS, 10 at this share), not behind eight more reads.
    calls.acquire("", "us-east-1", "ecs", "DescribeServiceDeployments")
    assert slept == [pytest.approx(0.1)]
    now[0] += 60  # the bucket refilled: the next request reads the rest
    shown = history(names)
    assert all("history" in shown[name] and "historyPending" not in shown[name] for name in names)
    history.close()
