"""One-off tasks: RunTask / StopTask / DescribeTasks / ListTasks through boto3.

Behaviour cited from the ECS API reference (API_RunTask.html, API_StopTask.html,
read from botocore's model), "Amazon ECS task lifecycle"
(task-lifecycle-explanation.html), "Troubleshooting Amazon ECS
CannotStartContainerError errors" (cannot-start-container.html) and "API failure
reasons" (api_failures_messages.html).  The clock is frozen; tests step it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_harness import (
    GOOD,
    PULL_ERROR,
    UNKNOWN,
    Harness,
    scenario,
    service_spec,
    task_definition,
)

pytestmark = pytest.mark.sandbox

MIGRATE = ["python", "manage.py", "migrate"]
BROKEN = ["python", "manage.py", "broken"]
HANG = ["python", "manage.py", "hang"]
MISSING = ["nosuchbinary"]
STUBBORN = ["python", "manage.py", "stubborn"]
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-0abc"], "securityGroups": ["sg-1"]}}
COMMANDS = [
    {"image": GOOD, "command": MIGRATE, "exitCode": 0, "durationSeconds": 30},
    {"image": GOOD, "command": BROKEN, "exitCode": 2, "durationSeconds": 10},
    {"image": GOOD, "command": HANG, "exitCode": 0, "durationSeconds": 10**9},
    {"image": GOOD, "command": MISSING, "failToStart": True},
    {"image": GOOD, "command": STUBBORN, "durationSeconds": 10**9, "ignoresSigterm": True},
]


@pytest.fixture
def sb(start_sandbox: Callable[..., Harness]) -> Harness:
    return start_sandbox(scenario(commands=COMMANDS, timings={"commandSeconds": 7}))


def register(sb: Harness, image: str = GOOD, **extra: Any) -> str:
    body = {**task_definition(image, family="migrate"), **extra}
    container = body["containerDefinitions"][0]
    container["logConfiguration"] = {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/ecs/migrate",
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "ecs",
        },
    }
    arn: str = sb.ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    return arn


def run(sb: Harness, command: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "cluster": "prod",
        "taskDefinition": register(sb),
        "launchType": "FARGATE",
        "networkConfiguration": NETWORK,
        "startedBy": "ecsop-hook",
        **extra,
    }
    if command is not None:
        request["overrides"] = {"containerOverrides": [{"name": "api", "command": command}]}
    response = sb.ecs.run_task(**request)
    assert response["failures"] == []
    (task,) = response["tasks"]
    return task


def describe(sb: Harness, task: dict[str, Any], **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = sb.ecs.describe_tasks(cluster="prod", tasks=[task["taskArn"]], **extra)[
        "tasks"
    ][0]
    return found


def timeline(sb: Harness, task: dict[str, Any], seconds: int) -> list[tuple[int, str]]:
    """(second, lastStatus) at every change over ``seconds`` simulated seconds."""
    seen: list[tuple[int, str]] = [(0, describe(sb, task)["lastStatus"])]
    for second in range(1, seconds + 1):
        sb.advance(1)
        status = describe(sb, task)["lastStatus"]
        if status != seen[-1][1]:
            seen.append((second, status))
    return seen


def test_a_migration_runs_through_the_task_lifecycle_and_reports_its_exit_code(
    sb: Harness,
) -> None:
    task = run(sb, MIGRATE, tags=[{"key": "release", "value": "r1"}])
    assert task["lastStatus"] == "PROVISIONING"
    assert task["desiredStatus"] == "RUNNING"
    assert task["startedBy"] == "ecsop-hook"
    assert task["group"] == "family:migrate"  # the default group (API_RunTask)
    assert task["launchType"] == "FARGATE"
    assert task["platformVersion"] == "1.4.0"  # LATEST
    assert task["overrides"]["containerOverrides"] == [{"name": "api", "command": MIGRATE}]
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert details["subnetId"] == "subnet-0abc"
    # provisioning 2 s, pull 3 s, the command 30 s, then stopping 2 s (timings).
    assert timeline(sb, task, 40) == [
        (0, "PROVISIONING"),
        (2, "PENDING"),
        (5, "RUNNING"),
        (35, "STOPPING"),
        (37, "STOPPED"),
    ]
    done = describe(sb, task, include=["TAGS"])
    assert done["stopCode"] == "EssentialContainerExited"
    assert done["stoppedReason"] == "Essential container in task exited"
    assert done["containers"][0]["exitCode"] == 0
    assert done["containers"][0]["imageDigest"] == "sha256:" + "a" * 64
    assert done["tags"] == [{"key": "release", "value": "r1"}]
    assert (done["startedAt"] - done["createdAt"]).total_seconds() == 5


@pytest.mark.parametrize(
    ("command", "seconds", "exit_code"),
    [
        pytest.param(BROKEN, 10, 2, id="declared-failure"),
        pytest.param(["python", "manage.py", "showmigrations"], 7, 0, id="unknown-command"),
        pytest.param(None, 7, 0, id="image-default-command"),
    ],
)
def test_commands_exit_as_the_scenario_says_and_unknown_ones_exit_0(
    sb: Harness, command: list[str] | None, seconds: int, exit_code: int
) -> None:
    task = run(sb, command)
    sb.advance(5 + seconds - 1)
    assert describe(sb, task)["lastStatus"] == "RUNNING"
    sb.advance(1 + 2)
    done = describe(sb, task)
    assert done["lastStatus"] == "STOPPED"
    assert done["containers"][0]["exitCode"] == exit_code


def test_a_command_that_cannot_start_stops_before_running(sb: Harness) -> None:
    task = run(sb, MISSING)
    assert timeline(sb, task, 10) == [(0, "PROVISIONING"), (2, "PENDING"), (5, "STOPPED")]
    done = describe(sb, task)
    assert done["stopCode"] == "TaskFailedToStart"
    assert done["stoppedReason"].startswith("CannotStartContainerError: ")
    assert 'exec: "nosuchbinary": executable file not found in $PATH' in done["stoppedReason"]
    assert done["containers"][0]["reason"] == done["stoppedReason"]
    assert "exitCode" not in done["containers"][0]
    assert "startedAt" not in done


@pytest.mark.parametrize("image", [UNKNOWN, PULL_ERROR], ids=["unknown-image", "pull-error"])
def test_an_image_that_cannot_be_pulled_fails_the_task(sb: Harness, image: str) -> None:
    arn = register(sb, image)
    task = sb.ecs.run_task(
        cluster="prod", taskDefinition=arn, launchType="FARGATE", networkConfiguration=NETWORK
    )["tasks"][0]
    sb.advance(5)
    done = describe(sb, task)
    assert done["lastStatus"] == "STOPPED"
    assert done["stopCode"] == "TaskFailedToStart"
    assert done["stoppedReason"].startswith("CannotPullContainerError:")


@pytest.mark.parametrize(
    ("command", "stop_timeout", "exit_after", "exit_code"),
    [
        pytest.param(HANG, None, 2, 143, id="sigterm"),
        pytest.param(STUBBORN, None, 30, 137, id="ignores-sigterm-default-timeout"),
        pytest.param(STUBBORN, 10, 10, 137, id="ignores-sigterm-stopTimeout"),
    ],
)
def test_stop_task_signals_a_hung_command(
    sb: Harness, command: list[str], stop_timeout: int | None, exit_after: int, exit_code: int
) -> None:
    extra: dict[str, Any] = {}
    if stop_timeout is not None:
        body = task_definition(GOOD, family="migrate")
        body["containerDefinitions"][0]["stopTimeout"] = stop_timeout
        extra["taskDefinition"] = sb.ecs.register_task_definition(**body)["taskDefinition"][
            "taskDefinitionArn"
        ]
    task = run(sb, command, tags=[{"key": "release", "value": "r1"}], **extra)
    sb.advance(3600)
    assert describe(sb, task)["lastStatus"] == "RUNNING"
    stopped = sb.ecs.stop_task(cluster="prod", task=task["taskArn"], reason="hook timed out")
    assert stopped["task"]["desiredStatus"] == "STOPPED"
    sb.advance(exit_after - 1)
    assert describe(sb, task)["lastStatus"] == "STOPPING"
    sb.advance(1)
    done = describe(sb, task, include=["TAGS"])
    assert done["lastStatus"] == "STOPPED"
    assert done["stopCode"] == "UserInitiated"
    assert done["stoppedReason"] == "hook timed out"
    assert done["containers"][0]["exitCode"] == exit_code
    assert done["tags"] == []  # "Any tags associated with the task will be deleted."


def test_stop_task_before_running_stops_at_once_without_exit_code(sb: Harness) -> None:
    task = run(sb, MIGRATE)
    sb.ecs.stop_task(cluster="prod", task=task["taskArn"])
    done = describe(sb, task)
    assert done["lastStatus"] == "STOPPED"
    assert done["stopCode"] == "UserInitiated"
    assert done["stoppedReason"] == "Task stopped by user"
    assert "exitCode" not in done["containers"][0]


def test_list_tasks_finds_one_off_tasks_by_started_by_family_and_status(sb: Harness) -> None:
    first = run(sb, MIGRATE)
    second = run(sb, HANG, startedBy="other")
    sb.advance(40)

    def listed(**filters: Any) -> set[str]:
        return set(sb.ecs.list_tasks(cluster="prod", **filters)["taskArns"])

    assert listed(startedBy="ecsop-hook", desiredStatus="STOPPED") == {first["taskArn"]}
    assert listed(startedBy="ecsop-hook") == set()
    assert listed(startedBy="other") == {second["taskArn"]}
    assert listed(family="migrate", desiredStatus="STOPPED") == {first["taskArn"]}
    assert second["taskArn"] in listed(family="migrate")
    assert not listed(serviceName="api") & {first["taskArn"], second["taskArn"]}


def test_stopped_one_off_tasks_are_kept_as_long_as_service_tasks(
    start_sandbox: Callable[..., Harness],
) -> None:
    sb = start_sandbox(scenario(commands=COMMANDS, timings={"stoppedTaskRetentionSeconds": 600}))
    task = run(sb, MIGRATE)
    sb.advance(37 + 599)
    assert describe(sb, task)["lastStatus"] == "STOPPED"
    sb.advance(2)
    missing = sb.ecs.describe_tasks(cluster="prod", tasks=[task["taskArn"]])
    assert missing["tasks"] == []
    assert missing["failures"] == [{"arn": task["taskArn"], "reason": "MISSING"}]
    assert (
        sb.ecs.list_tasks(cluster="prod", startedBy="ecsop-hook", desiredStatus="STOPPED")[
            "taskArns"
        ]
        == []
    )


def test_count_capacity_providers_environment_and_log_configuration(sb: Harness) -> None:
    arn = register(sb)
    response = sb.ecs.run_task(
        cluster="prod",
        taskDefinition=arn,
        count=3,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        networkConfiguration=NETWORK,
        platformVersion="1.4.0",
        group="hooks",
        overrides={
            "containerOverrides": [
                {"name": "api", "command": MIGRATE, "environment": [{"name": "X", "value": "1"}]}
            ]
        },
    )
    assert len(response["tasks"]) == 3
    for task in response["tasks"]:
        assert task["capacityProviderName"] == "FARGATE_SPOT"
        assert task["launchType"] == "FARGATE"
        assert task["group"] == "hooks"
        assert "startedBy" not in task
        (override,) = task["overrides"]["containerOverrides"]
        assert override["environment"] == [{"name": "X", "value": "1"}]
    # The task definition keeps where the logs go (awslogs group and stream prefix).
    definition = sb.ecs.describe_task_definition(
        taskDefinition=response["tasks"][0]["taskDefinitionArn"]
    )["taskDefinition"]
    options = definition["containerDefinitions"][0]["logConfiguration"]["options"]
    assert options["awslogs-group"] == "/ecs/migrate"
    assert options["awslogs-stream-prefix"] == "ecs"


def test_without_launch_type_it_runs_on_ec2_and_bridge_tasks_have_no_eni(sb: Harness) -> None:
    body = task_definition(GOOD, family="bridge")
    body.update(networkMode="bridge", requiresCompatibilities=["EC2"])
    arn = sb.ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    task = sb.ecs.run_task(cluster="prod", taskDefinition=arn)["tasks"][0]
    assert task["launchType"] == "EC2"
    assert task["attachments"] == []
    assert "platformVersion" not in task


def test_a_full_cluster_answers_failures_not_tasks(start_sandbox: Callable[..., Harness]) -> None:
    clusters = {"prod": {"services": {"api": service_spec()}, "capacity": {"maxTasks": 3}}}
    sb = start_sandbox(scenario(commands=COMMANDS, clusters=clusters))
    response = sb.ecs.run_task(
        cluster="prod",
        taskDefinition=register(sb),
        launchType="FARGATE",
        networkConfiguration=NETWORK,
        count=2,
    )
    assert len(response["tasks"]) == 1  # two service tasks already run
    assert response["failures"] == [
        {
            "reason": "Capacity is unavailable at this time. Please try again later or in a "
            "different availability zone"
        }
    ]


def test_client_token_makes_run_task_idempotent(sb: Harness) -> None:
    arn = register(sb)
    kwargs: dict[str, Any] = {
        "cluster": "prod",
        "taskDefinition": arn,
        "launchType": "FARGATE",
        "networkConfiguration": NETWORK,
        "clientToken": "hook-1",
    }
    first = sb.ecs.run_task(**kwargs)["tasks"]
    again = sb.ecs.run_task(**kwargs)["tasks"]
    assert [t["taskArn"] for t in again] == [t["taskArn"] for t in first]
    with pytest.raises(ClientError) as caught:
        sb.ecs.run_task(**{**kwargs, "startedBy": "someone-else"})
    assert caught.value.response["Error"]["Code"] == "ConflictException"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param({"count": 11}, "InvalidParameterException", id="count-over-10"),
        pytest.param(
            {"capacityProviderStrategy": [{"capacityProvider": "FARGATE"}]},
            "InvalidParameterException",
            id="launch-type-and-strategy",
        ),
        pytest.param({"networkConfiguration": None}, "InvalidParameterException", id="no-network"),
        pytest.param({"startedBy": "has spaces"}, "InvalidParameterException", id="bad-startedBy"),
        pytest.param(
            {"overrides": {"containerOverrides": [{"name": "nope", "command": ["x"]}]}},
            "InvalidParameterException",
            id="override-of-unknown-container",
        ),
        pytest.param({"propagateTags": "SERVICE"}, "InvalidParameterException", id="tags-service"),
        pytest.param({"platformVersion": "9.9.9"}, "PlatformUnknownException", id="platform"),
        pytest.param(
            {"launchType": None, "capacityProviderStrategy": [{"capacityProvider": "my-asg"}]},
            "InvalidParameterException",
            id="unassociated-capacity-provider",
        ),
        pytest.param({"cluster": "nope"}, "ClusterNotFoundException", id="no-cluster"),
        pytest.param({"taskDefinition": "nope:1"}, "ClientException", id="no-task-definition"),
    ],
)
def test_run_task_rejects_what_ecs_rejects(sb: Harness, change: dict[str, Any], code: str) -> None:
    request: dict[str, Any] = {
        "cluster": "prod",
        "taskDefinition": register(sb),
        "launchType": "FARGATE",
        "networkConfiguration": NETWORK,
    }
    request.update(change)
    request = {k: v for k, v in request.items() if v is not None}
    with pytest.raises(ClientError) as caught:
        sb.ecs.run_task(**request)
    assert caught.value.response["Error"]["Code"] == code


def test_an_inactive_task_definition_cannot_run(sb: Harness) -> None:
    arn = register(sb)
    sb.ecs.deregister_task_definition(taskDefinition=arn)
    with pytest.raises(ClientError) as caught:
        sb.ecs.run_task(
            cluster="prod", taskDefinition=arn, launchType="FARGATE", networkConfiguration=NETWORK
        )
    assert caught.value.response["Error"]["Code"] == "ClientException"


def test_stop_task_deletes_a_service_tasks_tags_too(sb: Harness) -> None:
    (task, *_) = sb.tasks()
    sb.ecs.tag_resource(resourceArn=task["taskArn"], tags=[{"key": "k", "value": "v"}])
    sb.ecs.stop_task(cluster="prod", task=task["taskArn"], reason="by hand")
    assert sb.ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"] == []


@pytest.mark.parametrize(
    ("given", "subnet"),
    [
        pytest.param(None, None, id="default-for-awsvpc"),
        pytest.param(NETWORK, "subnet-0abc", id="as-the-scenario-gives-it"),
    ],
)
def test_a_service_task_can_be_run_as_its_service_runs(
    start_sandbox: Callable[..., Harness], given: dict[str, Any] | None, subnet: str | None
) -> None:
    """ECS requires a network configuration for awsvpc services; a one-off task copies it."""
    extra = {"networkConfiguration": given} if given else {}
    sb = start_sandbox(scenario({"api": service_spec(**extra)}, commands=COMMANDS))
    service = sb.service()
    network = service["networkConfiguration"]
    subnets = network["awsvpcConfiguration"]["subnets"]
    assert subnets == [subnet] if subnet else subnets[0].startswith("subnet-")
    started = sb.ecs.run_task(
        cluster="prod",
        taskDefinition=service["taskDefinition"],
        launchType=service["launchType"],
        networkConfiguration=network,
        overrides={"containerOverrides": [{"name": "api", "command": MIGRATE}]},
    )["tasks"][0]
    details = {d["name"]: d["value"] for d in started["attachments"][0]["details"]}
    assert details["subnetId"] == subnets[0]


def test_a_scenario_network_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="subnets is required"):
        scenario({"api": service_spec(networkConfiguration={"awsvpcConfiguration": {}})})
    with pytest.raises(ValueError, match="unknown field"):
        scenario({"api": service_spec(networkConfiguration={"awsvpc": {}})})
