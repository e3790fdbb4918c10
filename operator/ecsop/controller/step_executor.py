"""Carrying out step actions in crash-safe order (``ecsop.controller.executor`` calls it).

A step's record on its revision is written before the change it explains:

- **RunStep**: the revision is registered (or reused) exactly as the deploy
  would (``executor``), then ``state=started`` is recorded on it, then RunTask
  with the attempt's ``startedBy`` and ``clientToken``. Killed before RunTask,
  the next pass finds no task and sends it (the record's ``at`` bounds how
  long that is safe); killed after it, the next pass finds the task by its
  ``startedBy`` and waits for it; a RunTask answer lost after ECS started the
  task is answered by the same task when sent again with the same token.
- **StopStep** (a timeout): the failure is recorded first, then StopTask.
  Killed in between, the next pass sees the failure and a live task, and
  stops it again.
- **RecordStep**: one TagResource on the revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import structlog

from ecsop.aws.clients import AwsError
from ecsop.aws.one_off import RUN_TASK_FAILED
from ecsop.decision.actions import RecordStep, RunStep, StopStep
from ecsop.decision.ecs_state import ServiceState, TaskDefinition, TaskDefinitionArn, TaskLaunch
from ecsop.decision.memory import StepRecord
from ecsop.decision.step_state import StepTask

log = structlog.get_logger("ecsop.controller.steps")


class StepGateway(Protocol):
    """The part of ``ecsop.aws.ecs.EcsGateway`` steps need."""

    def record_step(self, arn: str, step: str, record: StepRecord) -> TaskDefinition: ...

    def run_step(
        self,
        cluster: str,
        revision: str,
        launch: TaskLaunch,
        *,
        container: str,
        command: tuple[str, ...],
        environment: Mapping[str, str],
        started_by: str,
        client_token: str,
        tags: Mapping[str, str],
    ) -> StepTask: ...

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None: ...


def run(
    gateway: StepGateway, service: ServiceState, revision: TaskDefinitionArn, action: RunStep
) -> str:
    """Record the attempt as started on ``revision``, then RunTask; the task's ARN.

    When ECS refuses the RunTask (a client error, or ``failures`` such as no
    capacity), no task was started: the record is put back to "not started",
    on the next attempt for ``failures`` (whose client token ECS may keep
    answering with the same failure), and the error is raised (the pass backs
    off). A retryable error leaves ``started``: the next pass looks for the
    task, and sends the same RunTask again if there is none.
    """
    gateway.record_step(revision, action.step, action.record)
    try:
        task = gateway.run_step(
            service.cluster,
            revision,
            service.launch,
            container=action.container,
            command=action.command,
            environment=action.environment,
            started_by=action.started_by,
            client_token=action.client_token,
            tags=action.task_tags,
        )
    except AwsError as error:
        if error.code == RUN_TASK_FAILED:
            _put_back(gateway, revision, action, StepRecord(attempt=action.record.attempt + 1))
        elif not error.retryable and error.code != "ConflictException":
            # ConflictException: this token started a task already (with other
            # parameters); it is found by its startedBy, never started again.
            _put_back(gateway, revision, action, StepRecord(attempt=action.record.attempt))
        raise
    return task.arn


def _put_back(
    gateway: StepGateway, revision: TaskDefinitionArn, action: RunStep, record: StepRecord
) -> None:
    try:
        gateway.record_step(revision, action.step, record)
    except AwsError as error:  # the pass fails with RunTask's error either way
        log.warning(
            "could not record that a step did not start",
            step=action.step,
            revision=revision,
            error=f"{error.code}: {error.message}",
        )


def finish(gateway: StepGateway, service: ServiceState, action: RecordStep | StopStep) -> None:
    """Record a step's outcome; for a stop, then StopTask."""
    if action.record is not None:
        gateway.record_step(action.revision, action.step, action.record)
    if isinstance(action, StopStep):
        gateway.stop_task(service.cluster, action.task_arn, action.stop_reason)
