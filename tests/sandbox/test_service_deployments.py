"""ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions and
StopServiceDeployment, consistent with ``deployments`` at every instant.

"View service history using Amazon ECS service deployments":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_harness import GOOD_2, PULL_ERROR, Harness, scenario, service_spec

pytestmark = pytest.mark.sandbox


def _current(sb: Harness) -> dict[str, Any]:
    arn = sb.service()["currentServiceDeployment"]
    found: dict[str, Any] = sb.ecs.describe_service_deployments(serviceDeploymentArns=[arn])[
        "serviceDeployments"
    ][0]
    return found


def _listed(sb: Harness, **filters: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sb.ecs.list_service_deployments(
        cluster="prod", service="api", **filters
    )["serviceDeployments"]
    return found


def test_a_rollout_is_a_successful_service_deployment(sandbox: Harness) -> None:
    """A service deployment has a target revision (the new configuration) and the
    source revisions running when it began; SUCCESSFUL once complete
    (API_ServiceDeployment, API_ServiceRevision,
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeployment.html)."""
    initial = _current(sandbox)
    assert initial["status"] == "SUCCESSFUL"
    sandbox.advance(10)
    new_arn = sandbox.deploy(GOOD_2)
    sd = _current(sandbox)
    assert (sd["status"], sd["lifecycleStage"]) == ("IN_PROGRESS", "SCALE_UP")
    assert sd["sourceServiceRevisions"][0]["arn"] == initial["targetServiceRevision"]["arn"]
    assert sd["deploymentCircuitBreaker"] == {
        "status": "MONITORING",
        "failureCount": 0,
        "threshold": 3,
    }
    assert sd["alarms"]["status"] == "DISABLED"
    revision = sandbox.ecs.describe_service_revisions(
        serviceRevisionArns=[sd["targetServiceRevision"]["arn"]]
    )["serviceRevisions"][0]
    assert revision["taskDefinition"] == new_arn
    assert revision["containerImages"][0]["image"] == GOOD_2
    assert revision["serviceArn"] == sandbox.service()["serviceArn"]

    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    sd = _current(sandbox)
    assert sd["status"] == "SUCCESSFUL"
    assert "lifecycleStage" not in sd and sd["finishedAt"] >= sd["startedAt"]
    assert sd["deploymentCircuitBreaker"]["status"] == "MONITORING_COMPLETE"
    assert sd["targetServiceRevision"]["runningTaskCount"] == 2

    listed = _listed(sandbox)
    assert [b["serviceDeploymentArn"] for b in listed] == [
        sd["serviceDeploymentArn"],
        initial["serviceDeploymentArn"],
    ]
    assert _listed(sandbox, status=["IN_PROGRESS"]) == []
    page = sandbox.ecs.list_service_deployments(cluster="prod", service="api", maxResults=1)
    assert len(page["serviceDeployments"]) == 1 and "nextToken" in page
    later = sd["createdAt"] - datetime.timedelta(seconds=1)
    assert [b["serviceDeploymentArn"] for b in _listed(sandbox, createdAt={"after": later})] == [
        sd["serviceDeploymentArn"]
    ]


def _consistent(service: dict[str, Any], sd: dict[str, Any]) -> None:
    """What DescribeServices' ``deployments`` and the service deployment say agree."""
    primary = service["deployments"][0]
    failed = [d for d in service["deployments"] if d["rolloutState"] == "FAILED"]
    status = sd["status"]
    if status == "IN_PROGRESS":
        assert primary["rolloutState"] == "IN_PROGRESS" and not failed
    elif status == "ROLLBACK_IN_PROGRESS":
        assert primary["rolloutState"] == "IN_PROGRESS" and failed
        assert sd["rollback"]["serviceRevisionArn"] == sd["sourceServiceRevisions"][0]["arn"]
    elif status == "ROLLBACK_SUCCESSFUL":
        assert primary["rolloutState"] == "COMPLETED" and not failed
    else:
        raise AssertionError(f"unexpected status {status}")


def test_breaker_rollback_shows_in_the_service_deployment(
    start_sandbox: Callable[..., Harness],
) -> None:
    """The circuit breaker's rollback happens within the failed service deployment:
    IN_PROGRESS -> ROLLBACK_IN_PROGRESS -> ROLLBACK_SUCCESSFUL, its breaker
    TRIGGERED with the failure count (service-deployment.html, API_Rollback,
    API_ServiceDeploymentCircuitBreaker), in step with ``deployments``."""
    sb = start_sandbox(scenario({"api": service_spec(2)}))
    sb.deploy(PULL_ERROR)
    arn = sb.service()["currentServiceDeployment"]
    seen: list[str] = []
    for _ in range(400):
        service, sd = sb.service(), _current(sb)
        assert sd["serviceDeploymentArn"] == arn  # the rollback belongs to it
        _consistent(service, sd)
        if not seen or seen[-1] != sd["status"]:
            seen.append(sd["status"])
        if sd["status"] == "ROLLBACK_SUCCESSFUL":
            break
        sb.advance(1)
    assert seen == ["IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"]
    sd = _current(sb)
    assert sd["deploymentCircuitBreaker"] == {
        "status": "TRIGGERED",
        "failureCount": 3,
        "threshold": 3,
    }
    assert sd["rollback"]["reason"] and sd["rollback"]["startedAt"]
    assert sd["statusReason"]


def test_breaker_without_rollback_stops_the_service_deployment(
    start_sandbox: Callable[..., Harness],
) -> None:
    """ "stoppedAt: ... The rollback option is not in use for the failure detection
    mechanism ... and the service fails" (API_ServiceDeployment): STOPPED."""
    sb = start_sandbox(scenario({"api": service_spec(2, rollback=False)}))
    sb.deploy(PULL_ERROR)
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "FAILED")
    sd = _current(sb)
    assert sd["status"] == "STOPPED" and sd["stoppedAt"]
    assert sd["deploymentCircuitBreaker"] == {
        "status": "TRIGGERED",
        "failureCount": 3,
        "threshold": 3,
    }


@pytest.mark.parametrize(
    ("stop_type", "requested", "final"),
    [
        pytest.param("ROLLBACK", "ROLLBACK_REQUESTED", "ROLLBACK_SUCCESSFUL", id="rollback"),
        pytest.param("ABORT", "STOP_REQUESTED", "STOPPED", id="abort"),
    ],
)
def test_stop_service_deployment(
    sandbox: Harness, stop_type: str, requested: str, final: str
) -> None:
    """StopServiceDeployment: ROLLBACK moves it to ROLLBACK_REQUESTED, then the
    rollback starts (stop-service-deployment.html,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stop-service-deployment.html)."""
    sandbox.deploy(GOOD_2)
    arn = sandbox.service()["currentServiceDeployment"]
    sandbox.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType=stop_type)
    assert _current(sandbox)["status"] == requested
    sandbox.advance(1)
    if stop_type == "ROLLBACK":
        assert _current(sandbox)["status"] == "ROLLBACK_IN_PROGRESS"
        assert sandbox.service()["deployments"][0]["taskDefinition"].endswith("api:1")
        sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    assert _current(sandbox)["status"] == final
    with pytest.raises(ClientError) as raised:
        sandbox.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType=stop_type)
    assert raised.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as raised:
        sandbox.ecs.stop_service_deployment(serviceDeploymentArn=arn[:-3] + "000")
    assert raised.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"


def test_service_deployments_are_kept_90_days(sandbox: Harness) -> None:
    """ "You can view the most recent 90-day history" (service-deployment.html)."""
    first = _listed(sandbox)[0]["serviceDeploymentArn"]
    sandbox.advance(89 * 86400)
    sandbox.ecs.update_service(cluster="prod", service="api", forceNewDeployment=True)
    sandbox.advance(2 * 86400)
    arns = [b["serviceDeploymentArn"] for b in _listed(sandbox)]
    assert first not in arns and len(arns) == 1
    found = sandbox.ecs.describe_service_deployments(serviceDeploymentArns=[first])
    assert found["failures"] == [{"arn": first, "reason": "MISSING"}]
