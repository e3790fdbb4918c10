"""Carrying out one decision through the ECS gateway, in crash-safe order.

The order of calls is the crash-safety argument, so it lives in one place:
what the daemon must remember is written to AWS *before* the change it
explains, and a failed write of that memory never stops the safe action.

- Deploy: reuse a revision with exactly the content a fresh clone would have
  (``ecsop.aws.revisions``), else register the clone once; UpdateService
  (skipped when that revision already is the PRIMARY: a racing pass did it);
  then the rollout record. Killed after registering, the next pass finds and
  reuses that revision instead of registering another.
- Rollback: the failed record first, then UpdateService to last-good. Killed
  in between, the next pass sees the record and finishes. If the record
  cannot be written (ECS's 50-tag limit, TagResource denied), the rollback
  still happens: the record is kept in this process (``WriteLog``) and the
  release is reported Degraded with why.

``DryRunExecutor`` is what ``ecsop plan`` runs instead: the same lookups
(which revision would be reused or registered), no change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import structlog

from ecsop.aws import budget
from ecsop.aws.clients import AwsError
from ecsop.aws.revisions import PreparedClone
from ecsop.controller import step_executor
from ecsop.decision.actions import (
    Action,
    Continue,
    Deploy,
    ForgetRollout,
    LetGo,
    RecordFailure,
    RecordLastGood,
    RecordStep,
    Revert,
    Rollback,
    RunStep,
    StopStep,
    Wait,
)
from ecsop.decision.ecs_state import ServiceState, TaskDefinition, TaskDefinitionArn
from ecsop.decision.memory import (
    LEGACY_SERVICE_KEYS,
    RELEASE_FLOW_SERVICE_KEYS,
    SERVICE_KEYS,
    ServiceMemory,
)
from ecsop.decision.reasons import Reason
from ecsop.runtime.fence import check_current

log = structlog.get_logger("ecsop.controller.executor")


class Gateway(step_executor.StepGateway, Protocol):
    """The part of ``ecsop.aws.ecs.EcsGateway`` the executor needs."""

    def task_definition(self, arn: str) -> TaskDefinition: ...

    def prepare_clone(
        self,
        base: TaskDefinitionArn,
        images: Mapping[str, str],
        release: str,
        fingerprint: str,
        commit: str | None,
    ) -> PreparedClone: ...

    def reusable(self, arn: TaskDefinitionArn, clone: PreparedClone) -> bool: ...

    def find_revision(self, clone: PreparedClone) -> TaskDefinitionArn | None: ...

    def register(self, clone: PreparedClone) -> TaskDefinition: ...

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition: TaskDefinitionArn,
        deployment_configuration: Mapping[str, Any] | None = None,
    ) -> str: ...

    def stop_service_deployment(self, service_deployment: str) -> None: ...

    def continue_service_deployment(
        self, service_deployment: str, hook_id: str, action: str
    ) -> None: ...

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None: ...

    def tag_task_definition(self, arn: str, tags: Mapping[str, str]) -> None: ...

    def untag_service(self, service_arn: str, keys: list[str]) -> None: ...


@dataclass(frozen=True)
class Applied:
    """What the executor did, for logs and status."""

    task_definition: TaskDefinitionArn | None = None
    registered: bool = False
    deployment_id: str = ""
    """The deployment UpdateService started (Deploy and Rollback only)."""
    memory_error: str = ""
    """The memory this action carries could not be written; the action happened anyway."""
    dry_run: bool = False
    """Nothing was changed (``ecsop plan``); the fields say what would have been."""
    step_task: str = ""
    """The task a ``RunStep`` started."""


DEPLOY_MAX_BUDGET_WAIT = 0.25
"""Seconds a deploy's writes may wait for the API budget; longer, and the deploy is
requeued for when its token exists (``ecsop.aws.budget.BudgetDeferred``). Short: every
worker asleep in the budget is one a rollback cannot have."""


class WriteLog:
    """What this process wrote to services, and what it could not write.

    ``written`` lets the decision tell another ecsop instance's writes from a
    predecessor's (``Situation.ANOTHER_INSTANCE``); ``unwritten`` keeps a
    failure record that no tag could hold, so the failed release is still not
    deployed again while this process lives.

    With several replicas, both are knowledge of one tenure of a shard: when a
    replica (re)acquires a shard it forgets them for the shard's releases
    (``forget_releases``), or it would take the previous owner's ``writer=`` for
    another instance acting, and flush a record another owner may have
    superseded. ``predecessor`` says whether a ``writer=`` value names an earlier
    tenure (a lower fencing token): a write that tenure had in flight when it
    lost the shard may land after this one's, and is not another instance acting.
    """

    def __init__(self, predecessor: Callable[[str], bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._written: dict[str, str] = {}
        """Service ARN -> the release whose memory was written there."""
        self._unwritten: dict[str, ServiceMemory] = {}
        self._predecessor = predecessor or (lambda writer: False)

    def written(self, service_arn: str, writer: str = "") -> bool:
        """Whether this process wrote the service's memory, and ``writer`` (the
        memory's current ``writer=``) is not merely an earlier tenure's late write."""
        with self._lock:
            if service_arn not in self._written:
                return False
        return not (writer and self._predecessor(writer))

    def unwritten(self, service_arn: str) -> ServiceMemory | None:
        with self._lock:
            return self._unwritten.get(service_arn)

    def succeeded(self, service_arn: str, release: str = "") -> None:
        with self._lock:
            self._written[service_arn] = release
            self._unwritten.pop(service_arn, None)

    def failed(self, service_arn: str, memory: ServiceMemory) -> None:
        with self._lock:
            self._unwritten[service_arn] = memory

    def forget(self, service_arn: str) -> None:
        with self._lock:
            self._written.pop(service_arn, None)
            self._unwritten.pop(service_arn, None)

    def forget_releases(self, releases: Collection[str]) -> int:
        """Forget everything about the services of ``releases``; how many services."""
        wanted = set(releases)
        with self._lock:
            arns = {a for a, r in self._written.items() if r in wanted}
            arns |= {a for a, m in self._unwritten.items() if m.release in wanted}
            for arn in arns:
                self._written.pop(arn, None)
                self._unwritten.pop(arn, None)
        return len(arns)


class Executor(Protocol):
    def execute(
        self,
        action: Action,
        gateway: Gateway,
        service: ServiceState,
        release: str,
        commit: str | None,
    ) -> Applied: ...

    def flush(self, gateway: Gateway, service: ServiceState) -> None: ...


class AwsExecutor:
    """Carries decisions out against AWS."""

    def __init__(self, write_log: WriteLog) -> None:
        self.write_log = write_log

    def execute(
        self,
        action: Action,
        gateway: Gateway,
        service: ServiceState,
        release: str,
        commit: str | None,
    ) -> Applied:
        """Carry out ``action`` on ``service``. Raises the gateway's errors unchanged.

        Every write first checks this thread's fence (``ecsop.runtime.fence``):
        once the replica no longer holds the release's shard, ``OwnershipLost``
        is raised instead and nothing more is written.
        """
        if isinstance(action, Wait):
            return Applied()
        gateway = cast(Gateway, _Fenced(gateway))
        if isinstance(action, Deploy):
            # A deploy can come back later; a worker asleep in the budget cannot
            # serve a rollback meanwhile. Once UpdateService is sent, the memory
            # write that explains it waits instead.
            with budget.deferrable(DEPLOY_MAX_BUDGET_WAIT):
                chosen, registered = _revision_for(action, gateway, release, commit, dry_run=False)
                assert chosen is not None
                started = _point(gateway, service, chosen, action.deployment_configuration)
            # After, not before: a record of a rollout that never started would
            # read as a failure. Killed between the two calls, the next pass sees
            # the rollout itself and judges it.
            error = self._remember(gateway, service, action.memory, keep=True)
            return Applied(chosen, registered, started, memory_error=error)
        if isinstance(action, Rollback):
            error = self._remember(gateway, service, action.memory, keep=True)
            if action.hook_id:  # ECS waits at ecsop's pause: roll back through it
                gateway.continue_service_deployment(
                    action.service_deployment, action.hook_id, "ROLLBACK"
                )
                started = ""
            elif action.service_deployment:  # blue still runs: ECS sends traffic back at once
                gateway.stop_service_deployment(action.service_deployment)
                started = ""
            else:
                started = gateway.update_service(service.cluster, service.name, action.to)
            return Applied(task_definition=action.to, deployment_id=started, memory_error=error)
        if isinstance(action, Revert):
            self._remember(gateway, service, action.memory, keep=False)
            if action.service_deployment:
                gateway.stop_service_deployment(action.service_deployment)
                return Applied(task_definition=action.to)
            started = gateway.update_service(service.cluster, service.name, action.to)
            return Applied(task_definition=action.to, deployment_id=started)
        if isinstance(action, Continue):
            gateway.continue_service_deployment(
                action.service_deployment, action.hook_id, "CONTINUE"
            )
            return Applied()
        if isinstance(action, RecordFailure):
            error = self._remember(gateway, service, action.memory, keep=True)
            return Applied(memory_error=error)
        if isinstance(action, RecordLastGood) and action.reason is Reason.IN_SYNC:
            # Only the fingerprint record of a release already in sync (``decide._synced``):
            # after an upgrade, one per service of the fleet. Like a deploy, it can come
            # back later, and a worker asleep in the budget cannot serve a rollback.
            with budget.deferrable(DEPLOY_MAX_BUDGET_WAIT):
                self._remember(gateway, service, action.memory, keep=False)
            return Applied(task_definition=action.task_definition)
        if isinstance(action, RecordLastGood | ForgetRollout):
            if isinstance(action, RecordLastGood) and action.proof:
                _prove(gateway, action)  # before last-good: it is what a proof explains
            self._remember(gateway, service, action.memory, keep=False)
            task_definition = action.task_definition if isinstance(action, RecordLastGood) else None
            return Applied(task_definition=task_definition)
        if isinstance(action, RunStep):  # ``step_executor``: the record, then RunTask
            # A pre-deploy step registers its deploy's revision: like the deploy's,
            # that can come back later (the revision is found and reused then). The
            # record and RunTask, once begun, wait for their tokens.
            with budget.deferrable(DEPLOY_MAX_BUDGET_WAIT):
                chosen, registered = _step_revision(
                    action, gateway, release, commit, dry_run=False
                )
            assert chosen is not None
            task = step_executor.run(gateway, service, chosen, action)
            return Applied(chosen, registered, step_task=task)
        if isinstance(action, RecordStep | StopStep):
            step_executor.finish(gateway, service, action)
            return Applied(task_definition=action.revision)
        if isinstance(action, LetGo):
            keys = [
                k
                for k in (*SERVICE_KEYS, *LEGACY_SERVICE_KEYS, *RELEASE_FLOW_SERVICE_KEYS)
                if k in service.tags
            ]
            if action.untag and keys:
                gateway.untag_service(service.arn, keys)
            self.write_log.forget(service.arn)
            return Applied()
        raise TypeError(f"unknown action {type(action).__name__}")

    def flush(self, gateway: Gateway, service: ServiceState) -> None:
        """Write memory an earlier pass could not, now that it may fit (pass start)."""
        pending = self.write_log.unwritten(service.arn)
        if pending is None:
            return
        gateway = cast(Gateway, _Fenced(gateway))
        try:
            gateway.tag_service(service.arn, pending.tags())
            stale = pending.stale_keys(service.tags)
            if stale:
                gateway.untag_service(service.arn, stale)
        except AwsError:
            return  # still unwritable: the pass reports it again
        self.write_log.succeeded(service.arn, pending.release)

    def _remember(
        self, gateway: Gateway, service: ServiceState, memory: ServiceMemory, *, keep: bool
    ) -> str:
        """Write ``memory`` to the service's tags; "" on success, else why not.

        With ``keep``, a failed write is kept in this process and reported;
        without, it raises (the pass is retried with backoff).
        """
        current = ServiceMemory.read(service.tags)
        stale = memory.stale_keys(service.tags)
        try:
            if not memory.same_as(current) or stale:
                gateway.tag_service(service.arn, memory.tags())
            if stale:
                gateway.untag_service(service.arn, stale)
        except AwsError as error:
            if not keep:
                raise
            self.write_log.failed(service.arn, memory)
            log.error(
                "could not write ecsop's memory to the service's tags; acting anyway",
                service=service.arn,
                error=f"{error.code}: {error.message}",
            )
            return f"{error.code}: {error.message}"
        self.write_log.succeeded(service.arn, memory.release)
        return ""


_WRITES = frozenset(
    {
        "register",
        "update_service",
        "stop_service_deployment",
        "continue_service_deployment",
        "tag_service",
        "tag_task_definition",
        "untag_service",
        "record_step",
        "run_step",
        "stop_task",
    }
)
"""The gateway's methods that change AWS: each checks the fence first."""


class _Fenced:
    """The gateway, with this thread's fence checked before every write.

    The AWS clients check the fence before every attempt as well (the daemon's
    ``before_attempt`` hook); checking here too stops a write before any of its
    preparation, and names the method in the log.
    """

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._gateway, name)
        if name not in _WRITES:
            return attribute

        def fenced(*args: Any, **kwargs: Any) -> Any:
            check_current()
            return attribute(*args, **kwargs)

        return fenced


class DryRunExecutor:
    """What ``ecsop plan`` runs: the lookups an execution would make, and no change."""

    def execute(
        self,
        action: Action,
        gateway: Gateway,
        service: ServiceState,
        release: str,
        commit: str | None,
    ) -> Applied:
        if isinstance(action, Deploy):
            chosen, registered = _revision_for(action, gateway, release, commit, dry_run=True)
            return Applied(task_definition=chosen, registered=registered, dry_run=True)
        if isinstance(action, Rollback):
            return Applied(task_definition=action.to, dry_run=True)
        if isinstance(action, RecordLastGood):
            return Applied(task_definition=action.task_definition, dry_run=True)
        if isinstance(action, RunStep):
            chosen, registered = _step_revision(action, gateway, release, commit, dry_run=True)
            return Applied(task_definition=chosen, registered=registered, dry_run=True)
        return Applied(dry_run=True)

    def flush(self, gateway: Gateway, service: ServiceState) -> None:
        """Nothing is written in a dry run."""


def _revision_for(
    action: Deploy, gateway: Gateway, release: str, commit: str | None, *, dry_run: bool
) -> tuple[TaskDefinitionArn | None, bool]:
    """The revision a deploy points the service at, and whether it is (to be) registered."""
    clone = gateway.prepare_clone(action.base, action.images, release, action.fingerprint, commit)
    if action.reuse is not None and gateway.reusable(action.reuse, clone):
        return action.reuse, False
    found = gateway.find_revision(clone)
    if found is not None:
        return found, False
    if dry_run:
        return None, True
    return gateway.register(clone).arn, True


def _step_revision(
    action: RunStep, gateway: Gateway, release: str, commit: str | None, *, dry_run: bool
) -> tuple[TaskDefinitionArn | None, bool]:
    """The revision a step runs on: named, or the one its deploy would point the service at."""
    if action.revision is not None or action.deploy is None:
        return action.revision, False
    return _revision_for(action.deploy, gateway, release, commit, dry_run=dry_run)


def _point(
    gateway: Gateway,
    service: ServiceState,
    revision: TaskDefinitionArn,
    deployment_configuration: Mapping[str, Any] | None,
) -> str:
    """UpdateService to ``revision``, unless it already is the PRIMARY deployment's."""
    primary = service.primary
    if primary is not None and primary.task_definition == revision:
        return primary.id
    return gateway.update_service(service.cluster, service.name, revision, deployment_configuration)


def _prove(gateway: Gateway, action: RecordLastGood) -> None:
    """Tag the revision proven; a failure is logged and never stops the last-good record.

    The proof only serves releases promoted from this one, which then wait
    (``PromotionBlocked``) rather than deploy what they cannot see proven.
    """
    try:
        gateway.tag_task_definition(action.task_definition, action.proof)
    except AwsError as error:
        if error.retryable:
            raise
        log.error(
            "could not tag the proven revision; releases promoted from it will wait",
            task_definition=action.task_definition,
            error=f"{error.code}: {error.message}",
        )
