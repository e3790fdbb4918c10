"""Lifecycle hooks of service deployments: pause hooks, timeouts, functions nobody
can invoke.

- "Lifecycle hooks for Amazon ECS service deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-lifecycle-hooks.html
- "Pause hooks for Amazon ECS service deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sandbox_harness import (
    GOOD_2,
    HOOK,
    Harness,
    Traffic,
    current_deployment,
    finished,
    scenario,
    shifting_spec,
    timeline,
)

pytestmark = pytest.mark.sandbox


def test_a_pause_hook_waits_for_continue_service_deployment(
    start_sandbox: Callable[..., Harness],
) -> None:
    """A PAUSE hook holds the stage (AWAITING_ACTION in ``lifecycleHookDetails``) until
    ContinueServiceDeployment (pause-lifecycle-hooks.html; API_ContinueServiceDeployment)."""
    hooks = [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=0, hooks=hooks)}))
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    sb.run_until(
        lambda s: current_deployment(sb).get("lifecycleStage") == "POST_TEST_TRAFFIC_SHIFT"
    )
    sb.advance(3600)
    sd = current_deployment(sb)
    assert sd["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    [detail] = sd["lifecycleHookDetails"]
    assert detail["status"] == "AWAITING_ACTION" and detail["targetType"] == "PAUSE"
    assert detail["hookId"].startswith("ecs-pause-")
    sb.ecs.continue_service_deployment(
        serviceDeploymentArn=sd["serviceDeploymentArn"], hookId=detail["hookId"]
    )
    seen = [state for _, state in timeline(sb, traffic, finished)]
    assert seen[-1] == ("SUCCESSFUL", None, (0, 100), (0, 100))


def test_a_hook_that_never_finishes_times_out_and_rolls_back(
    start_sandbox: Callable[..., Harness],
) -> None:
    """IN_PROGRESS past ``timeoutConfiguration.timeoutInMinutes`` is TIMED_OUT; the
    default ``action`` is ROLLBACK (API_DeploymentLifecycleHookTimeoutConfiguration)."""
    hooks = [
        {
            "hookTargetArn": HOOK,
            "lifecycleStages": ["PRE_SCALE_UP"],
            "timeoutConfiguration": {"timeoutInMinutes": 2},
        }
    ]
    sb = start_sandbox(
        scenario(
            {"api": shifting_spec(bakeTimeInMinutes=0, hooks=hooks)},
            hooks={HOOK: {"behavior": "succeed", "inProgressSeconds": 3600}},
        )
    )
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    seen = timeline(sb, traffic, finished)
    assert seen[0][1][1] == "PRE_SCALE_UP"
    assert seen[-1][1][0] == "ROLLBACK_SUCCESSFUL" and seen[-1][0] == 120
    assert f"Lifecycle hook target {HOOK} timed out." in current_deployment(sb)["statusReason"]


def test_an_undeclared_hook_function_fails_to_invoke(start_sandbox: Callable[..., Harness]) -> None:
    """A hook target nobody can invoke rolls back ("ECS was unable to invoke hook target",
    troubleshooting-blue-green.html)."""
    missing = "arn:aws:lambda:us-east-1:123456789012:function:missing"
    hooks = [{"hookTargetArn": missing, "lifecycleStages": ["POST_SCALE_UP"]}]
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=0, hooks=hooks)}))
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    timeline(sb, traffic, finished)
    sd = current_deployment(sb)
    assert sd["status"] == "ROLLBACK_SUCCESSFUL"
    assert f"ECS was unable to invoke hook target {missing}" in sd["statusReason"]
