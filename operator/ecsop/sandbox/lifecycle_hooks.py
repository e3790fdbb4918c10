"""Lifecycle hooks of service deployments: invoking them, and what they answer.

"Lifecycle hooks for Amazon ECS service deployments"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-lifecycle-hooks.html),
"Lambda hooks for Amazon ECS service deployments"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html)
and "Pause hooks" (pause-lifecycle-hooks.html):

- every hook configured at a stage runs when the deployment reaches it; the
  stage ends once all of them have SUCCEEDED ("Both hooks must complete before
  the deployment proceeds to the next stage");
- a Lambda hook answers ``hookStatus`` SUCCEEDED (go on), FAILED (roll back) or
  IN_PROGRESS (ECS invokes it again after ``callBackDelay``, 30 s by default);
  no valid ``hookStatus``, or an invocation that fails, rolls back too;
- a pause hook waits (AWAITING_ACTION) for ContinueServiceDeployment;
- a hook still unresolved at ``timeoutConfiguration.timeoutInMinutes`` (1440 by
  default) is TIMED_OUT and ECS takes its ``action`` (ROLLBACK by default);
- the payload carries ``executionId``, ``lifecycleStage``, ``resourceArn`` (the
  service deployment) and ``executionDetails`` (service, target revision, test
  and production traffic weights), plus the configured ``hookDetails``.

The sandbox cannot run Lambda functions, so the scenario (``hooks``) or the
control API (``POST /_sandbox/hooks``) says what each function ARN answers;
an ARN nobody declared fails to invoke ("Function not found"), as on AWS.
Every invocation is recorded for ``GET /_sandbox/hooks``.  Status reasons are
the wording of troubleshooting-blue-green.html where it gives one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecsop.sandbox import traffic_config
from ecsop.sandbox.ids import Ids
from ecsop.sandbox.scenario import HookBehaviour

MAX_LOGGED = 100_000


@dataclass
class HookRun:
    """One hook at one stage of one service deployment (``lifecycleHookDetails``)."""

    hook_id: str
    target_type: str
    target_arn: str | None
    stage: str
    started_at: float
    expires_at: float
    timeout_action: str
    hook_details: dict[str, Any] | None
    rollback: bool
    status: str = "IN_PROGRESS"
    """IN_PROGRESS, AWAITING_ACTION (pause), SUCCEEDED, FAILED or TIMED_OUT."""
    next_invoke_at: float | None = None
    reason: str | None = None
    """Why it failed (the service deployment's statusReason), once it has."""

    @property
    def pending(self) -> bool:
        return self.status in ("IN_PROGRESS", "AWAITING_ACTION")


@dataclass(frozen=True)
class Verdict:
    """Where the hooks of a stage stand: all done, one failed (why), or wait until ``wake``."""

    done: bool
    failure: str | None = None
    wake: float | None = None


@dataclass(frozen=True)
class Invocation:
    seq: int
    at: float
    hook_id: str
    hook_target_arn: str
    payload: dict[str, Any]
    answer: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "hookId": self.hook_id,
            "hookTargetArn": self.hook_target_arn,
            "lifecycleStage": self.payload["lifecycleStage"],
            "serviceDeploymentArn": self.payload["resourceArn"],
            "rollback": self.payload.get("rollback", False),
            "result": self.answer.get("hookStatus", self.answer.get("error", "ERROR")),
            "payload": self.payload,
            "answer": self.answer,
        }


class LifecycleHooks:
    """The hook targets' behaviours and the invocation log (under the simulator's lock)."""

    def __init__(self, behaviours: Mapping[str, HookBehaviour]) -> None:
        self._behaviours: dict[str, HookBehaviour] = dict(behaviours)
        self._log: deque[Invocation] = deque(maxlen=MAX_LOGGED)
        self._seq = 0

    def update(self, behaviours: Mapping[str, HookBehaviour]) -> None:
        self._behaviours.update(behaviours)

    def snapshot(self) -> dict[str, HookBehaviour]:
        return dict(self._behaviours)

    def invocations(self) -> list[Invocation]:
        return list(self._log)

    def start(
        self,
        config: Mapping[str, Any],
        stage: str,
        at: float,
        ids: Ids,
        *,
        rollback: bool = False,
    ) -> list[HookRun]:
        """The runs of the hooks configured at ``stage``, due to be invoked at ``at``."""
        runs = []
        for hook in traffic_config.hooks_at(config, stage):
            target_type = hook.get("targetType", "AWS_LAMBDA")
            timeout = hook.get("timeoutConfiguration") or {}
            minutes = timeout.get("timeoutInMinutes", traffic_config.DEFAULT_HOOK_TIMEOUT_MINUTES)
            pause = target_type == "PAUSE"
            runs.append(
                HookRun(
                    hook_id=f"ecs-{'pause' if pause else 'lambda'}-{ids.task_id()[:20]}",
                    target_type=target_type,
                    target_arn=None if pause else hook.get("hookTargetArn"),
                    stage=stage,
                    started_at=at,
                    expires_at=at + float(minutes) * 60,
                    timeout_action=timeout.get("action", "ROLLBACK"),
                    hook_details=hook.get("hookDetails"),
                    rollback=rollback,
                    status="AWAITING_ACTION" if pause else "IN_PROGRESS",
                    next_invoke_at=None if pause else at,
                )
            )
        return runs

    def drive(self, runs: list[HookRun], at: float, details: dict[str, Any], ids: Ids) -> Verdict:
        """Invoke the hooks that are due, time out the overdue; say where the stage stands.

        ``details`` is the payload without ``executionId``: ``lifecycleStage``,
        ``resourceArn`` and ``executionDetails`` (weights as of now)."""
        for run in runs:
            due = run.next_invoke_at
            if run.status == "IN_PROGRESS" and due is not None and due <= at:
                self._invoke(run, at, details, ids)
            if run.pending and at >= run.expires_at:
                run.status = "TIMED_OUT"
                if run.timeout_action == "ROLLBACK":
                    run.reason = _timed_out(run)
        failed = [r for r in runs if r.reason is not None]
        if failed:
            return Verdict(done=False, failure=failed[0].reason)
        pending = [r for r in runs if r.pending]
        if not pending:
            return Verdict(done=True)
        wakes = [r.expires_at for r in pending]
        wakes += [r.next_invoke_at for r in pending if r.next_invoke_at is not None]
        return Verdict(done=False, wake=min(wakes))

    def _invoke(self, run: HookRun, at: float, details: dict[str, Any], ids: Ids) -> None:
        arn = run.target_arn or ""
        payload: dict[str, Any] = {"executionId": ids.event_id(), **details}
        if run.hook_details:
            payload["hookDetails"] = dict(run.hook_details)
        if run.rollback:
            payload["rollback"] = True  # not in ECS's payload: for the control API's log
        behaviour = self._behaviours.get(arn)
        if behaviour is None:
            answer: dict[str, Any] = {"error": "ResourceNotFoundException"}
            run.status, run.reason = "FAILED", _unable_to_invoke(run)
        elif at - run.started_at < behaviour.in_progress_seconds:
            delay = behaviour.call_back_delay_seconds
            answer = {"hookStatus": "IN_PROGRESS", "callBackDelay": delay}
            run.next_invoke_at = at + delay
        elif behaviour.behavior == "succeed":
            answer = {"hookStatus": "SUCCEEDED"}
            run.status, run.next_invoke_at = "SUCCEEDED", None
        elif behaviour.behavior == "fail":
            answer = {"hookStatus": "FAILED"}
            run.status, run.reason = "FAILED", _returned_failed(run)
        else:
            answer = {"error": "no hookStatus"}
            run.status, run.reason = "FAILED", _unparsable(run)
        if run.status == "FAILED":
            run.next_invoke_at = None
        self._seq += 1
        self._log.append(Invocation(self._seq, at, run.hook_id, arn, payload, answer))

    @staticmethod
    def answer_pause(run: HookRun, action: str) -> None:
        """ContinueServiceDeployment on a pause hook: CONTINUE or ROLLBACK."""
        if action == "ROLLBACK":
            run.status = "FAILED"
            run.reason = _rolled_back(run, f"{run.stage} pause hook was answered ROLLBACK.")
        else:
            run.status = "SUCCEEDED"


def _rolled_back(run: HookRun, why: str) -> str:
    if run.rollback:
        return f"Service deployment rollback failed because {why}"
    return f"Service deployment rolled back because {why}"


def _hooks_failed(run: HookRun, why: str) -> str:
    return _rolled_back(run, f"{run.stage} lifecycle hook(s) failed. {why}")


def _returned_failed(run: HookRun) -> str:
    return _hooks_failed(run, f"Lifecycle hook target {run.target_arn} returned FAILED status.")


def _unable_to_invoke(run: HookRun) -> str:
    return _hooks_failed(
        run,
        f"ECS was unable to invoke hook target {run.target_arn} due to Function not found: "
        f"{run.target_arn}",
    )


def _unparsable(run: HookRun) -> str:
    return _hooks_failed(
        run,
        f"ECS was unable to parse the response from {run.target_arn} due to HookStatus must "
        "not be null",
    )


def _timed_out(run: HookRun) -> str:
    if run.target_type == "PAUSE":
        return _rolled_back(run, f"{run.stage} pause hook timed out.")
    return _hooks_failed(run, f"Lifecycle hook target {run.target_arn} timed out.")


def detail(run: HookRun) -> dict[str, Any]:
    """``lifecycleHookDetails`` entry (API_DeploymentLifecycleHookDetail)."""
    out: dict[str, Any] = {
        "hookId": run.hook_id,
        "targetType": run.target_type,
        "status": run.status,
        "expiresAt": run.expires_at,
        "timeoutAction": run.timeout_action,
    }
    if run.target_arn:
        out["targetArn"] = run.target_arn
    return out
