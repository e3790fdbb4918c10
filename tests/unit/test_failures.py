"""Failure classification on ECS's real wording: stop reasons, rollout-state reasons, events.

Every string below is ECS's, copied from where ECS (or AWS's own documentation
of it) shows it; the source is cited next to each case.
"""

from __future__ import annotations

import pytest

from builders import deployment, release, service, td_arn
from ecsop.decision import failures, gates
from ecsop.decision.failures import StopKind
from ecsop.decision.gates import Verdict
from ecsop.decision.observation import Observation, StoppedTasks
from ecsop.decision.reasons import Failure

TG = (
    "arn:aws:elasticloadbalancing:us-west-2:615288112214:"
    "targetgroup/nginx-Targe-16DD4KDLKAI7U/a6d71c9b9c18b389"
)


@pytest.mark.parametrize(
    ("line", "kind", "exit_code", "container"),
    [
        # ECS Task State Change event, stoppedReason with the container's exitCode
        # (gist.github.com/KensoDev/9831acfa00acf11999b635be1e8ad97d); the line is
        # what EcsGateway.stopped_task_reasons builds from such a task.
        pytest.param(
            "EssentialContainerExited: Essential container in task exited; "
            "container api exit code 1",
            StopKind.ESSENTIAL_EXITED,
            1,
            "api",
            id="essential-exited-code-1",
        ),
        pytest.param(
            "Essential container in task exited; container proxy exit code 0; "
            "container api exit code 137",
            StopKind.ESSENTIAL_EXITED,
            137,
            "api",
            id="essential-exited-first-nonzero",
        ),
        # "How do I troubleshoot OutOfMemory errors in Amazon ECS?"
        # (repost.aws/knowledge-center/ecs-resolve-outofmemory-errors): the
        # container's reason; the task's stoppedReason stays "Essential container...".
        pytest.param(
            "EssentialContainerExited: Essential container in task exited; "
            "container app exit code 137; "
            "container app: OutOfMemoryError: Container killed due to memory usage",
            StopKind.OUT_OF_MEMORY,
            137,
            "app",
            id="out-of-memory",
        ),
        # ECS stopped task error messages, CannotPullContainerError
        # (docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html),
        # with the wording Fargate platform 1.4 prints.
        pytest.param(
            "TaskFailedToStart: CannotPullContainerError: pull image manifest has been "
            "retried 7 time(s): failed to resolve ref 111122223333.dkr.ecr.us-east-1."
            "amazonaws.com/app@sha256:abc: not found",
            StopKind.CANNOT_PULL,
            None,
            "",
            id="cannot-pull",
        ),
        pytest.param(
            "TaskFailedToStart: ResourceInitializationError: unable to pull secrets or "
            "registry auth: execution resource retrieval failed",
            StopKind.RESOURCE_INITIALIZATION,
            None,
            "",
            id="resource-initialization",
        ),
        # AWS Copilot's rendering of stopped tasks during a deploy
        # (gist.github.com/efekarakus/fe4afc1ab8b54835d27e47e253f46254).
        pytest.param(
            f"ServiceSchedulerInitiated: Task failed ELB health checks in (target-group {TG})",
            StopKind.ELB_HEALTH,
            None,
            "",
            id="elb-health-checks",
        ),
        pytest.param(
            "ServiceSchedulerInitiated: Task failed container health checks",
            StopKind.CONTAINER_HEALTH,
            None,
            "",
            id="container-health-checks",
        ),
        pytest.param(
            "ServiceSchedulerInitiated: Scaling activity initiated by "
            "(deployment ecs-svc/6405940160831029548)",
            StopKind.SCALING,
            None,
            "",
            id="scaling-is-not-a-failure",
        ),
        pytest.param(
            "UserInitiated: Task stopped by user", StopKind.USER, None, "", id="user-stop"
        ),
        pytest.param("stopped", StopKind.OTHER, None, "", id="unknown"),
    ],
)
def test_classify_stop(line: str, kind: StopKind, exit_code: int | None, container: str) -> None:
    reason = failures.classify_stop(line)
    assert (reason.kind, reason.exit_code, reason.container) == (kind, exit_code, container)
    assert reason.text == line
    assert reason.is_failure is (kind not in (StopKind.SCALING, StopKind.USER))


def test_stop_reason_is_trimmed_for_status() -> None:
    assert len(failures.classify_stop("x" * 5000).text) == failures.STOP_REASON_MAX


def test_first_failure_is_the_oldest_failure_skipping_scaling_and_users() -> None:
    newest_first = [
        "ServiceSchedulerInitiated: Scaling activity initiated by (deployment ecs-svc/1)",
        "EssentialContainerExited: Essential container in task exited; container api exit code 2",
        "TaskFailedToStart: CannotPullContainerError: pull image manifest has been retried",
        "UserInitiated: Task stopped by user",
    ]
    first = failures.first_failure(newest_first)
    assert first is not None and first.kind is StopKind.CANNOT_PULL
    assert failures.first_failure(newest_first[:1]) is None
    assert failures.first_failure([]) is None


def test_describe_says_which_container_exited_how() -> None:
    line = "Essential container in task exited; container api exit code 3"
    assert failures.describe(failures.classify_stop(line)) == (
        "essential container api exited with code 3"
    )


@pytest.mark.parametrize(
    ("reason", "events", "expected"),
    [
        # Circuit breaker, not alarms: rolloutStateReason as ECS sets it
        # (docs ecs_service_deployment_events.html; seen in describe-services output).
        pytest.param("ECS deployment circuit breaker: tasks failed to start.", [], None, id="cb"),
        pytest.param(
            "ECS deployment circuit breaker: rolling back to deploymentId "
            "ecs-svc/6405940160831029548.",
            [],
            None,
            id="cb-rollback",
        ),
        # Alarm-driven, names in the reason (the sandbox words it so; see
        # ecsop/sandbox/events.py reason_alarm_failed).
        pytest.param(
            "ECS deployment alarms: api-5xx, api-p99 in ALARM state.",
            [],
            "api-5xx, api-p99",
            id="alarm-reason-names",
        ),
        pytest.param(
            "ECS deployment alarms: rolling back to deploymentId ecs-svc/1.", [], "", id="alarm-rb"
        ),
        # Alarm-driven, known from the service event ECS writes, as captured
        # in a public incident write-up of a real alarm rollback:
        # "(service fraud-api-prod) (deployment ecs-svc/8028...) deployment failed: alarm detected."
        pytest.param(
            "",
            [
                "(service fraud-api-prod) rolling back to deployment ecs-svc/3225.",
                "(service fraud-api-prod) (deployment ecs-svc/8028) deployment failed: "
                "alarm detected.",
            ],
            "",
            id="alarm-event",
        ),
        pytest.param(
            "",
            ["(service api) (deployment ecs-svc/1) deployment failed: alarm detected: api-5xx."],
            "api-5xx",
            id="alarm-event-names",
        ),
        # The service-unhealthy event is not an alarm
        # (docs service-unhealthy-event-messages.html, Fargate form).
        pytest.param(
            "",
            [
                "(service my-awesome-service) (task 1234) (port 8081) is unhealthy in "
                "(target-group my-tg) due to (reason Health checks failed with these codes: [502])."
            ],
            None,
            id="unhealthy-event",
        ),
    ],
)
def test_ecs_alarm_failure(reason: str, events: list[str], expected: str | None) -> None:
    assert failures.ecs_alarm_failure(reason, events) == expected


ELB_LINE = f"Task failed ELB health checks in (target-group {TG})"
EXITED = "EssentialContainerExited: Essential container in task exited"
CRASH_LINE = f"{EXITED}; container api exit code 1"
ELB = failures.classify_stop(ELB_LINE)
CRASH = failures.classify_stop(CRASH_LINE)
SCALED = "ServiceSchedulerInitiated: Scaling activity initiated by (deployment ecs-svc/1)"


def explained(verdict: Verdict, *lines: str, target_health: bool = True) -> Verdict:
    rel = release(rollout={"targetHealth": target_health})
    observed = Observation(
        service(deployment(td_arn("api", 1))),
        {},
        stopped=StoppedTasks(tuple(lines)),
    )
    return gates.explained(verdict, rel, observed)


def test_the_first_stop_reason_explains_a_failure() -> None:
    refined = explained(Verdict(Failure.FAILED_TASKS, "2 failed"), CRASH_LINE)
    assert refined.failure is Failure.FAILED_TASKS
    assert refined.stop_reason == CRASH.text
    assert refined.detail.endswith("first stopped task: essential container api exited with code 1")


def test_elb_failed_tasks_are_target_health_when_the_gate_is_on() -> None:
    refined = explained(Verdict(Failure.FAILED_TASKS, "2 failed"), ELB_LINE)
    assert refined.failure is Failure.TARGET_HEALTH
    assert "ELB health checks" in refined.detail
    off = explained(Verdict(Failure.FAILED_TASKS, "2 failed"), ELB_LINE, target_health=False)
    assert off.failure is Failure.FAILED_TASKS


@pytest.mark.parametrize(
    "failure", [Failure.FAILED_TASKS, Failure.CIRCUIT_BREAKER, Failure.ECS_ROLLBACK]
)
def test_any_task_count_failure_from_elb_health_checks_is_target_health(failure: Failure) -> None:
    assert explained(Verdict(failure, "x"), ELB_LINE).failure is Failure.TARGET_HEALTH


def test_other_kinds_and_unread_reasons_are_left_alone() -> None:
    breaker = Verdict(Failure.CIRCUIT_BREAKER, "tasks failed to start")
    assert explained(breaker, CRASH_LINE).failure is Failure.CIRCUIT_BREAKER
    assert explained(breaker) == breaker
    timeout = Verdict(Failure.TIMEOUT, "not completed")
    assert explained(timeout, ELB_LINE).failure is Failure.TIMEOUT


# --- ecsop's own count (issue 24) -------------------------------------------------------


def test_tally_counts_crashes_after_running_and_skips_scale_in() -> None:
    exited_zero = f"{EXITED}; container api exit code 0"
    tally = failures.tally([CRASH_LINE, SCALED, CRASH_LINE, exited_zero, "UserInitiated: stopped"])
    assert (tally.failed, tally.crashed_after_running, tally.exit_code) == (2, 2, 1)
    assert tally.container == "api"


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(SCALED, id="scale-in"),
        pytest.param("UserInitiated: Task stopped by user", id="stop-task"),
        pytest.param("SpotInterruption: Your Spot Task was interrupted.", id="spot"),
        pytest.param(
            "ServiceSchedulerInitiated: Task replaced due to AZ rebalancing", id="rebalancing"
        ),
    ],
)
def test_stops_that_say_nothing_about_the_revision_are_not_counted(line: str) -> None:
    assert failures.tally([line, line, line]).failed == 0
