"""``ecsop retry`` for steps: the next attempt of each failed step, never next to the last.

A timed-out migration is recorded failed, then StopTask: its container gets
SIGTERM and, ignoring it, runs on until its ``stopTimeout``. A person who runs
``ecsop retry`` at once (the release shows Degraded "timed out") used to start
the next attempt (the daemon is woken at once) while that one still ran: two
migrations against one database.
"""

from __future__ import annotations

from typing import Any, cast

from builders import NOW, memory_tags, service, task_definition
from builders import deployment as build_deployment
from builders import release as build_release
from ecsop.aws.ecs import EcsGateway
from ecsop.controller import step_retry
from ecsop.decision.ecs_state import TaskDefinition
from ecsop.decision.memory import (
    TAG_FINGERPRINT,
    TAG_RELEASE,
    StepRecord,
    StepState,
    step_tag,
)
from ecsop.decision.step_state import StepTask, started_by
from ecsop.spec.model import fingerprint

NEW = "repo/api@sha256:" + "1" * 64
FP = fingerprint({"api": NEW})
FAILED = StepRecord(StepState.FAILED, 1, 1, "0123456789abcdef", None, "", "timed out after 300s")


class Gateway:
    """The calls ``clear_failed_steps`` makes, over one revision and a task list."""

    def __init__(self, revision: TaskDefinition, tasks: dict[str, tuple[StepTask, ...]]) -> None:
        self.revision = revision
        self.tasks = tasks
        self.written: dict[str, StepRecord] = {}

    def task_definition(self, arn: str) -> TaskDefinition:
        return self.revision

    def release_revisions(self, family: str, release: str) -> list[TaskDefinition]:
        return [self.revision]

    def fresh_revision(self, arn: str) -> TaskDefinition:
        return self.revision

    def step_tasks(self, cluster: str, started: str, container: str) -> tuple[StepTask, ...]:
        return self.tasks.get(started, ())

    def record_step(self, arn: str, step: str, record: StepRecord) -> TaskDefinition:
        self.written[step] = record
        return self.revision


def world(state: str) -> tuple[Gateway, Any, Any]:
    rel = build_release(
        containers={"api": NEW},
        preDeploy=[{"name": "migrate", "container": "api", "command": ["migrate"]}],
    )
    revision = task_definition(
        "api",
        2,
        {"api": NEW},
        {TAG_RELEASE: "api-prod", TAG_FINGERPRINT: FP, step_tag("migrate"): FAILED.value()},
    )
    task = StepTask(
        arn="arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef",
        last_status=state,
        desired_status="STOPPED",
        created_at=NOW,
    )
    gateway = Gateway(revision, {started_by("api-prod", FP, "migrate", 1): (task,)})
    svc = service(build_deployment(revision), tags=memory_tags(last_good=revision.arn))
    return gateway, svc, rel


def test_a_failed_step_still_stopping_is_not_retried_yet() -> None:
    gateway, svc, rel = world("RUNNING")
    found = step_retry.clear_failed_steps(cast(EcsGateway, gateway), svc, rel)
    assert isinstance(found, step_retry.StillStopping)
    assert "has not stopped yet" in str(found) and "01234567" in str(found)
    assert gateway.written == {}, "nothing changed: the daemon keeps waiting"


def test_once_stopped_the_next_attempt_is_recorded() -> None:
    gateway, svc, rel = world("STOPPED")
    found = step_retry.clear_failed_steps(cast(EcsGateway, gateway), svc, rel)
    assert not isinstance(found, step_retry.StillStopping)
    assert [(r.step, r.attempt) for r in found] == [("migrate", 2)]
    assert gateway.written["migrate"] == StepRecord(attempt=2)
