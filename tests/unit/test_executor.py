"""The executor writes what the daemon must remember before the change it explains."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from ecsop.controller import executor
from ecsop.decision.actions import (
    Deploy,
    Failure,
    Phase,
    Reason,
    RecordFailure,
    RecordLastGood,
    Rollback,
)
from ecsop.decision.ecs_state import (
    TAG_COMMIT,
    TAG_DEPLOYING,
    TAG_FAILED_FINGERPRINT,
    TAG_FAILED_REASON,
    TAG_FINGERPRINT,
    TAG_LAST_GOOD,
    TAG_RELEASE,
    Fingerprint,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)

BASE = TaskDefinitionArn("arn:aws:ecs:us-east-1:1:task-definition/api:1")
CLONE = TaskDefinitionArn("arn:aws:ecs:us-east-1:1:task-definition/api:2")
SERVICE = ServiceState(
    arn="arn:aws:ecs:us-east-1:1:service/prod/api",
    cluster="prod",
    name="api",
    status="ACTIVE",
    task_definition=BASE,
    desired_count=1,
    running_count=1,
    deployments=(),
)


class RecordingGateway:
    def __init__(self, existing: TaskDefinitionArn | None = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.existing = existing

    def task_definition(self, arn: TaskDefinitionArn) -> TaskDefinition:
        return TaskDefinition(arn, "api", 1, {"api": "old"})

    def find_revision(self, family: str, fingerprint: str) -> TaskDefinitionArn | None:
        self.calls.append(("find_revision", (family, fingerprint)))
        return self.existing

    def register_clone(
        self, base: TaskDefinitionArn, images: Mapping[str, str], tags: Mapping[str, str]
    ) -> TaskDefinition:
        self.calls.append(("register_clone", (base, dict(images), dict(tags))))
        return TaskDefinition(CLONE, "api", 2, dict(images), dict(tags))

    def update_service(self, cluster: str, service: str, task_definition: TaskDefinitionArn) -> str:
        self.calls.append(("update_service", task_definition))
        return "ecs-svc/new"

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None:
        self.calls.append(("tag_service", dict(tags)))

    def untag_service(self, service_arn: str, keys: list[str]) -> None:
        self.calls.append(("untag_service", list(keys)))


def deploy(reuse: TaskDefinitionArn | None = None) -> Deploy:
    return Deploy(
        Phase.PROGRESSING,
        Reason.DEPLOYING,
        "",
        5,
        fingerprint=Fingerprint("f1"),
        images={"api": "new"},
        base=BASE,
        reuse=reuse,
    )


def test_deploy_registers_a_tagged_clone_then_updates() -> None:
    gateway = RecordingGateway()
    applied = executor.execute(deploy(), gateway, SERVICE, "api-prod", "abc123")
    assert [name for name, _ in gateway.calls] == [
        "find_revision",
        "register_clone",
        "update_service",
        "tag_service",
    ]
    assert gateway.calls[-1] == ("tag_service", {TAG_DEPLOYING: "f1", TAG_RELEASE: "api-prod"})
    _, (base, images, tags) = gateway.calls[1]  # type: ignore[misc]
    assert (base, images) == (BASE, {"api": "new"})
    assert tags == {TAG_RELEASE: "api-prod", TAG_FINGERPRINT: "f1", TAG_COMMIT: "abc123"}
    assert applied.registered and applied.task_definition == CLONE


def test_deploy_reuses_a_revision_already_carrying_the_fingerprint() -> None:
    gateway = RecordingGateway(existing=CLONE)
    applied = executor.execute(deploy(), gateway, SERVICE, "api-prod", None)
    assert ("update_service", CLONE) in gateway.calls
    assert "register_clone" not in [name for name, _ in gateway.calls]
    assert not applied.registered


def test_deploy_of_known_revision_makes_no_lookup() -> None:
    gateway = RecordingGateway()
    executor.execute(deploy(reuse=BASE), gateway, SERVICE, "api-prod", None)
    assert gateway.calls[0] == ("update_service", BASE)
    assert [name for name, _ in gateway.calls] == ["update_service", "tag_service"]


def test_rollback_records_the_failure_before_changing_the_service() -> None:
    gateway = RecordingGateway()
    action = Rollback(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        "",
        5,
        to=BASE,
        failed_fingerprint=Fingerprint("bad"),
        failure=Failure.TIMEOUT,
        detail="",
    )
    executor.execute(action, gateway, SERVICE, "api-prod", None)
    assert gateway.calls == [
        (
            "tag_service",
            {TAG_FAILED_FINGERPRINT: "bad", TAG_FAILED_REASON: "timeout", TAG_RELEASE: "api-prod"},
        ),
        ("update_service", BASE),
    ]


@pytest.mark.parametrize("clear", [pytest.param(False, id="keep"), pytest.param(True, id="clear")])
def test_record_last_good(clear: bool) -> None:
    gateway = RecordingGateway()
    action = RecordLastGood(
        Phase.SYNCED, Reason.BAKED, "", None, task_definition=CLONE, clear_failure=clear
    )
    executor.execute(action, gateway, SERVICE, "api-prod", None)
    assert gateway.calls[0] == ("tag_service", {TAG_LAST_GOOD: CLONE, TAG_RELEASE: "api-prod"})
    assert (
        ("untag_service", [TAG_FAILED_FINGERPRINT, TAG_FAILED_REASON]) in gateway.calls
    ) is clear


def test_record_failure_only_tags() -> None:
    gateway = RecordingGateway()
    action = RecordFailure(
        Phase.ROLLING_BACK,
        Reason.ECS_ROLLING_BACK,
        "",
        5,
        failed_fingerprint=Fingerprint("bad"),
        failure=Failure.ECS_ROLLBACK,
        detail="",
    )
    executor.execute(action, gateway, SERVICE, "api-prod", None)
    assert [name for name, _ in gateway.calls] == ["tag_service"]


def test_last_good_clears_the_rollout_record() -> None:
    gateway = RecordingGateway()
    service = replace(SERVICE, tags={TAG_DEPLOYING: "f1"})
    action = RecordLastGood(
        Phase.SYNCED, Reason.BAKED, "", None, task_definition=CLONE, clear_failure=False
    )
    executor.execute(action, gateway, service, "api-prod", None)
    assert gateway.calls[-1] == ("untag_service", [TAG_DEPLOYING])
