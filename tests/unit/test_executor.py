"""The executor writes what the daemon must remember before the change it explains.

And a failed write of that memory never stops the safe action (issue 21, #6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from builders import deployment, memory_tags, service, td_arn
from ecsop.aws.budget import BudgetDeferred, CallBudget
from ecsop.aws.clients import AwsError
from ecsop.aws.revisions import PreparedClone
from ecsop.controller.executor import (
    DEPLOY_MAX_BUDGET_WAIT,
    AwsExecutor,
    DryRunExecutor,
    WriteLog,
)
from ecsop.decision.actions import (
    Deploy,
    LetGo,
    RecordFailure,
    RecordLastGood,
    Rollback,
    RunStep,
)
from ecsop.decision.ecs_state import Fingerprint, TaskDefinition, TaskDefinitionArn
from ecsop.decision.memory import (
    LEGACY_SERVICE_KEYS,
    TAG_LAST_GOOD,
    TAG_STATE,
    RevisionMemory,
    ServiceMemory,
    StepRecord,
    StepState,
)
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.step_state import StepKind, StepTask

BASE = td_arn("api", 1)
CLONE = td_arn("api", 2)
SERVICE = service(deployment(BASE), tags=memory_tags(last_good=BASE))
MEMORY = ServiceMemory.read(SERVICE.tags)


class RecordingGateway:
    """Records every call; ``existing`` is a revision ``find_revision`` finds."""

    def __init__(
        self,
        existing: TaskDefinitionArn | None = None,
        reusable: bool = True,
        tag_error: AwsError | None = None,
    ) -> None:
        self.calls: list[tuple[str, object]] = []
        self.existing = existing
        self._reusable = reusable
        self.tag_error = tag_error

    def task_definition(self, arn: str) -> TaskDefinition:
        return TaskDefinition(TaskDefinitionArn(arn), "api", 1, {"api": "old"})

    def prepare_clone(
        self,
        base: TaskDefinitionArn,
        images: Mapping[str, str],
        release: str,
        fingerprint: str,
        commit: str | None,
    ) -> PreparedClone:
        revision = RevisionMemory(release, Fingerprint(fingerprint), "c1", commit or "")
        return PreparedClone("api", {"base": base, "images": dict(images)}, revision)

    def reusable(self, arn: TaskDefinitionArn, clone: PreparedClone) -> bool:
        self.calls.append(("reusable", arn))
        return self._reusable

    def find_revision(self, clone: PreparedClone) -> TaskDefinitionArn | None:
        self.calls.append(("find_revision", clone.revision.content))
        return self.existing

    def register(self, clone: PreparedClone) -> TaskDefinition:
        self.calls.append(("register", clone.revision.tags()))
        return TaskDefinition(CLONE, "api", 2, dict(clone.request["images"]))

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition: TaskDefinitionArn,
        deployment_configuration: Any = None,
    ) -> str:
        self.calls.append(("update_service", task_definition))
        return "ecs-svc/new"

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None:
        self.calls.append(("tag_service", dict(tags)))
        if self.tag_error is not None:
            raise self.tag_error

    def untag_service(self, service_arn: str, keys: list[str]) -> None:
        self.calls.append(("untag_service", list(keys)))

    def record_step(self, arn: str, step: str, record: StepRecord) -> TaskDefinition:
        self.calls.append(("record_step", (arn, step)))
        return self.task_definition(arn)

    def run_step(self, cluster: str, revision: str, launch: Any, **request: Any) -> StepTask:
        self.calls.append(("run_step", revision))
        task = "arn:aws:ecs:us-east-1:111122223333:task/prod/t1"
        return StepTask(task, "PENDING", "RUNNING", datetime.now(UTC))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def deploy(reuse: TaskDefinitionArn | None = None) -> Deploy:
    return Deploy(
        Phase.PROGRESSING,
        Reason.DEPLOYING,
        "",
        5,
        fingerprint=Fingerprint("f1"),
        images={"api": "new"},
        base=BASE,
        memory=MEMORY.stamped("api-prod", "w1", service_arn=SERVICE.arn).rolling_out(
            Fingerprint("f1")
        ),
        reuse=reuse,
    )


def rollback() -> Rollback:
    return Rollback(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        "",
        5,
        to=BASE,
        failed_fingerprint=Fingerprint("bad"),
        failure=Failure.TIMEOUT,
        detail="",
        memory=MEMORY.failed_with(Fingerprint("bad"), Failure.TIMEOUT),
    )


def test_deploy_registers_a_tagged_clone_then_updates_then_records_the_rollout() -> None:
    gateway = RecordingGateway()
    applied = AwsExecutor(WriteLog()).execute(deploy(), gateway, SERVICE, "api-prod", "abc123")
    assert gateway.names() == ["find_revision", "register", "update_service", "tag_service"]
    assert (
        gateway.calls[1][1] == RevisionMemory("api-prod", Fingerprint("f1"), "c1", "abc123").tags()
    )
    written = ServiceMemory.read(gateway.calls[-1][1])  # type: ignore[arg-type]
    assert written.deploying == "f1" and written.writer == "w1"
    assert applied.registered and applied.task_definition == CLONE


def test_deploy_reuses_a_revision_with_the_same_content() -> None:
    gateway = RecordingGateway(existing=CLONE)
    applied = AwsExecutor(WriteLog()).execute(deploy(), gateway, SERVICE, "api-prod", None)
    assert ("update_service", CLONE) in gateway.calls
    assert "register" not in gateway.names()
    assert not applied.registered


def test_a_revert_reuses_last_good_only_when_its_content_is_what_a_clone_would_be() -> None:
    """Issue 21, #2: a revert must not undo a configuration change made since."""
    same = RecordingGateway(reusable=True)
    AwsExecutor(WriteLog()).execute(deploy(reuse=CLONE), same, SERVICE, "api-prod", None)
    assert same.names() == ["reusable", "update_service", "tag_service"]
    changed = RecordingGateway(reusable=False)
    AwsExecutor(WriteLog()).execute(deploy(reuse=CLONE), changed, SERVICE, "api-prod", None)
    assert changed.names() == [
        "reusable",
        "find_revision",
        "register",
        "update_service",
        "tag_service",
    ]


def test_deploy_skips_update_service_when_the_revision_already_is_primary() -> None:
    """Two racing passes: the second finds its revision already rolling out (issue 22, #1)."""
    rolling = service(deployment(CLONE), tags=SERVICE.tags)
    gateway = RecordingGateway(existing=CLONE)
    applied = AwsExecutor(WriteLog()).execute(deploy(), gateway, rolling, "api-prod", None)
    assert "update_service" not in gateway.names()
    assert applied.deployment_id == rolling.deployments[0].id


def test_rollback_records_the_failure_before_changing_the_service() -> None:
    gateway = RecordingGateway()
    AwsExecutor(WriteLog()).execute(rollback(), gateway, SERVICE, "api-prod", None)
    assert gateway.names() == ["tag_service", "update_service"]
    written = ServiceMemory.read(gateway.calls[0][1])  # type: ignore[arg-type]
    assert written.failed is not None and written.failed.fingerprint == "bad"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            AwsError("InvalidParameterException", "too many tags", "TagResource"), id="limit"
        ),
        pytest.param(AwsError("AccessDeniedException", "no", "TagResource"), id="denied"),
    ],
)
def test_a_rollback_happens_even_when_its_record_cannot_be_written(error: AwsError) -> None:
    """Issue 21, #6: bookkeeping must never keep a failing rollout running."""
    log = WriteLog()
    gateway = RecordingGateway(tag_error=error)
    applied = AwsExecutor(log).execute(rollback(), gateway, SERVICE, "api-prod", None)
    assert gateway.names() == ["tag_service", "update_service"]
    assert applied.memory_error.startswith(error.code)
    kept = log.unwritten(SERVICE.arn)
    assert kept is not None and kept.failed is not None and kept.failed.fingerprint == "bad"


def test_memory_kept_in_process_is_written_once_it_fits() -> None:
    log = WriteLog()
    AwsExecutor(log).execute(
        rollback(),
        RecordingGateway(tag_error=AwsError("X", "y", "TagResource")),
        SERVICE,
        "a",
        None,
    )
    gateway = RecordingGateway()
    AwsExecutor(log).flush(gateway, SERVICE)
    assert gateway.names() == ["tag_service"]
    assert log.unwritten(SERVICE.arn) is None and log.written(SERVICE.arn)


def test_record_last_good_writes_both_tags_in_one_call() -> None:
    gateway = RecordingGateway()
    memory = MEMORY.proven(SERVICE.arn, "api-prod", CLONE, fingerprint=None)
    action = RecordLastGood(
        Phase.SYNCED, Reason.BAKED, "", None, task_definition=CLONE, memory=memory
    )
    AwsExecutor(WriteLog()).execute(action, gateway, SERVICE, "api-prod", None)
    assert gateway.names() == ["tag_service"]
    assert gateway.calls[0][1][TAG_LAST_GOOD] == CLONE  # type: ignore[index]


def test_unchanged_memory_writes_nothing() -> None:
    """Adopting a service whose tags are already right costs no TagResource (issue 22, #3)."""
    gateway = RecordingGateway()
    action = RecordLastGood(
        Phase.SYNCED, Reason.ADOPTED, "", None, task_definition=BASE, memory=MEMORY
    )
    AwsExecutor(WriteLog()).execute(action, gateway, SERVICE, "api-prod", None)
    assert gateway.calls == []


def test_legacy_tags_are_replaced_by_the_two_tag_layout() -> None:
    legacy = replace(
        SERVICE,
        tags={
            "ecsop:release": "api-prod",
            TAG_LAST_GOOD: BASE,
            "ecsop:failed-fingerprint": "bad",
            "ecsop:failed-reason": "timeout",
        },
    )
    memory = ServiceMemory.read(legacy.tags)
    assert memory.legacy and memory.vouches_for_last_good(legacy.arn, "api-prod")
    action = RecordFailure(
        Phase.DEGRADED,
        Reason.RELEASE_FAILED,
        "",
        None,
        failed_fingerprint=Fingerprint("bad"),
        failure=Failure.TIMEOUT,
        detail="",
        memory=memory.stamped("api-prod", "w1", service_arn=legacy.arn),
    )
    gateway = RecordingGateway()
    AwsExecutor(WriteLog()).execute(action, gateway, legacy, "api-prod", None)
    assert gateway.names() == ["tag_service", "untag_service"]
    assert set(gateway.calls[0][1]) == {TAG_LAST_GOOD, TAG_STATE}  # type: ignore[arg-type]
    assert set(gateway.calls[1][1]) == set(LEGACY_SERVICE_KEYS) - {"ecsop:deploying-fingerprint"}  # type: ignore[arg-type]
    written = ServiceMemory.read(gateway.calls[0][1])  # type: ignore[arg-type]
    assert written.vouches_for_last_good(legacy.arn, "api-prod"), "the rollback target survives"


def test_let_go_removes_only_ecsops_tags() -> None:
    tagged = replace(SERVICE, tags={**SERVICE.tags, "team": "x"})
    gateway = RecordingGateway()
    action = LetGo(Phase.PROGRESSING, Reason.REMOVED, "", None, untag=True)
    AwsExecutor(WriteLog()).execute(action, gateway, tagged, "api-prod", None)
    assert gateway.calls == [("untag_service", [TAG_LAST_GOOD, TAG_STATE])]


def test_dry_run_changes_nothing_and_says_what_it_would_register() -> None:
    gateway = RecordingGateway()
    applied = DryRunExecutor().execute(deploy(), gateway, SERVICE, "api-prod", None)
    assert gateway.names() == ["find_revision"]
    assert applied.dry_run and applied.registered and applied.task_definition is None


class PacedGateway(RecordingGateway):
    """Every write first draws its token from an exhausted budget, as the clients'
    ``before-send`` handler does (``ecsop.aws.budget.CallBudget.instrument``)."""

    def __init__(
        self, exhausted: tuple[str, ...] = ("RegisterTaskDefinition", "UpdateService")
    ) -> None:
        super().__init__()
        self.now = 0.0
        self.slept: list[float] = []
        self.budget = CallBudget(monotonic=lambda: self.now, sleep=self.slept.append)
        for operation in exhausted:
            rate = self.budget.rate("ecs", operation)
            assert rate is not None
            for _ in range(int(rate.burst) + 5):  # five calls' worth of waiting already
                self.budget.acquire("", "us-east-1", "ecs", operation)
        self.slept.clear()

    def register(self, clone: PreparedClone) -> TaskDefinition:
        self.budget.acquire("", "us-east-1", "ecs", "RegisterTaskDefinition")
        return super().register(clone)

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition: TaskDefinitionArn,
        deployment_configuration: Any = None,
    ) -> str:
        self.budget.acquire("", "us-east-1", "ecs", "UpdateService")
        return super().update_service(cluster, service, task_definition, deployment_configuration)

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None:
        self.budget.acquire("", "us-east-1", "ecs", "TagResource")
        super().tag_service(service_arn, tags)


def test_a_deploy_the_budget_would_hold_gives_its_worker_back_and_writes_nothing() -> None:
    gateway = PacedGateway()
    with pytest.raises(BudgetDeferred) as deferred:
        AwsExecutor(WriteLog()).execute(deploy(), gateway, SERVICE, "api-prod", "abc123")
    assert deferred.value.seconds > DEPLOY_MAX_BUDGET_WAIT
    assert gateway.names() == ["find_revision"] and gateway.slept == []


def test_a_rollback_waits_for_the_budget_and_is_never_deferred() -> None:
    gateway = PacedGateway()
    applied = AwsExecutor(WriteLog()).execute(rollback(), gateway, SERVICE, "api-prod", None)
    assert gateway.names() == ["tag_service", "update_service"]
    assert applied.deployment_id == "ecs-svc/new" and gateway.slept[0] > DEPLOY_MAX_BUDGET_WAIT


def test_a_deploy_deferred_after_its_registration_reuses_that_revision_when_it_comes_back() -> None:
    """The register went out, UpdateService had to wait: the next pass finds the revision
    the first registered (ecsop:content) instead of registering a second one."""
    gateway = PacedGateway(exhausted=("UpdateService",))
    with pytest.raises(BudgetDeferred):
        AwsExecutor(WriteLog()).execute(deploy(), gateway, SERVICE, "api-prod", "abc123")
    assert gateway.names() == ["find_revision", "register"]
    gateway.existing = CLONE  # what find_revision now finds in the family
    gateway.now += 60.0  # the token exists when the requeued pass comes back
    applied = AwsExecutor(WriteLog()).execute(deploy(), gateway, SERVICE, "api-prod", "abc123")
    assert gateway.names().count("register") == 1
    assert gateway.names()[-2:] == ["update_service", "tag_service"]
    assert applied.task_definition == CLONE and not applied.registered


def test_a_fingerprint_record_the_budget_would_hold_gives_its_worker_back() -> None:
    """After an upgrade every service of the fleet gets one record (``decide._synced``):
    thousands of TagResource. They can come back later; a rollback cannot wait for them."""
    gateway = PacedGateway(exhausted=("TagResource",))
    record = RecordLastGood(
        Phase.SYNCED,
        Reason.IN_SYNC,
        "",
        None,
        task_definition=BASE,
        memory=MEMORY.carrying(SERVICE.arn, "api-prod", Fingerprint("f" * 16)),
    )
    with pytest.raises(BudgetDeferred):
        AwsExecutor(WriteLog()).execute(record, gateway, SERVICE, "api-prod", None)
    assert gateway.calls == [] and gateway.slept == []
    # A last-good proven by a bake waits for its token like any memory write.
    baked = replace(record, reason=Reason.BAKED)
    AwsExecutor(WriteLog()).execute(baked, gateway, SERVICE, "api-prod", None)
    assert gateway.names() == ["tag_service"] and gateway.slept[0] > DEPLOY_MAX_BUDGET_WAIT


def migration() -> RunStep:
    """The pre-deploy step of ``deploy()``: it runs on the revision that deploy registers."""
    return RunStep(
        Phase.PROGRESSING,
        Reason.RUNNING_STEP,
        "",
        5,
        kind=StepKind.PRE_DEPLOY.value,
        step="migrate",
        container="api",
        command=("migrate",),
        environment={},
        started_by="ecsop-migrate",
        client_token="token-1",
        record=StepRecord(StepState.STARTED),
        task_tags={},
        deploy=deploy(),
    )


def test_a_migration_the_budget_would_hold_gives_its_worker_back_and_starts_nothing() -> None:
    """Twenty migrations of one commit register twenty revisions at RegisterTaskDefinition's
    rate, as their deploys would: they come back later rather than hold every worker
    while a rollback waits."""
    gateway = PacedGateway(exhausted=("RegisterTaskDefinition",))
    with pytest.raises(BudgetDeferred):
        AwsExecutor(WriteLog()).execute(migration(), gateway, SERVICE, "api-prod", "abc123")
    assert gateway.names() == ["find_revision"] and gateway.slept == []
    gateway.now += 60.0  # the token exists when the requeued pass comes back
    applied = AwsExecutor(WriteLog()).execute(migration(), gateway, SERVICE, "api-prod", "abc")
    assert gateway.names()[1:] == ["find_revision", "register", "record_step", "run_step"]
    assert applied.step_task.endswith("/t1") and applied.task_definition == CLONE


class LostRegisterAnswer(RecordingGateway):
    """RegisterTaskDefinition succeeds at AWS, but its answer is lost (a timeout)."""

    def register(self, clone: PreparedClone) -> TaskDefinition:
        super().register(clone)
        if self.existing is None:
            self.existing = CLONE  # in the family now, found by its ecsop:content
            raise AwsError("RequestTimeout", "no answer", "RegisterTaskDefinition", retryable=True)
        raise AssertionError("registered twice")


def test_a_migration_whose_registration_answer_was_lost_reuses_that_revision() -> None:
    """Attack: the answer to a pre-deploy step's registration is lost after the write. The
    pass fails before any record or RunTask; the next finds the revision and starts the
    step on it: one revision, one migration."""
    gateway = LostRegisterAnswer()
    with pytest.raises(AwsError):
        AwsExecutor(WriteLog()).execute(migration(), gateway, SERVICE, "api-prod", "abc123")
    assert gateway.names() == ["find_revision", "register"]
    applied = AwsExecutor(WriteLog()).execute(migration(), gateway, SERVICE, "api-prod", "abc")
    assert gateway.names()[2:] == ["find_revision", "record_step", "run_step"]
    assert applied.task_definition == CLONE and not applied.registered
