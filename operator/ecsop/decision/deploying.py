"""Starting a new release: what must hold first, and the ``Deploy`` itself.

The one way into a deploy (``decide``'s OUT_OF_DATE and DRIFTED branches):
nothing is deployed while ecsop cannot keep its memory, for a strategy the
service cannot run, or while a release-flow check or a pre-deploy step holds
it. Rollbacks never come through here, so they are never held.
"""

from __future__ import annotations

from ecsop.decision import candidate, steps, strategy
from ecsop.decision.actions import Action, Deploy, RecordStep, StepRunning, StopStep, Wait
from ecsop.decision.ecs_state import short_name
from ecsop.decision.memory import MAX_TAGS, SERVICE_KEYS, room_for_memory, user_tag_count
from ecsop.decision.pass_inputs import PassInputs
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.release_flow import hold as release_flow


def deploy(p: PassInputs, reason: Reason) -> Action:
    blocked = memory_blocked(p) or _unsupported(p) or held(p, reason)
    if blocked is not None:
        return blocked
    return deploy_action(p, reason)


def deploy_action(p: PassInputs, reason: Reason) -> Deploy:
    service = p.observed.service
    verb = "self-healing drift" if reason is Reason.SELF_HEAL else "deploying"
    source = candidate.clone_source(p.release, p.observed, p.view)
    return Deploy(
        Phase.PROGRESSING,
        reason,
        f"{verb}: {short_name(service.task_definition)} -> {p.view.desired}",
        p.poll,
        fingerprint=p.view.desired,
        images=dict(p.release.spec.containers),
        base=source.base,
        memory=p.memory.rolling_out(p.view.desired),
        reuse=source.reuse,
        deployment_configuration=strategy.configuration(p.release, service),
    )


def _unsupported(p: PassInputs) -> Action | None:
    """A strategy the service cannot run is a clear error, never a half-done deploy."""
    why = strategy.problem(p.release, p.observed.service)
    if why is None:
        return None
    return Wait(Phase.INVALID, Reason.STRATEGY_UNSUPPORTED, f"not deploying: {why}", None)


def held(p: PassInputs, reason: Reason) -> Action | None:
    """What must pass before a deploy of a new release starts, in this order.

    Each check is a module of its own and answers a ``Wait`` naming what it
    waits for, or None. Only new releases are held: this function is not on
    the path of rollbacks, which are never held.

    - ``release_flow.held``: pre-flight (images exist, the execution role
      exists), promotion, ordering (``dependsOn``), approval, deploy windows;
    - then ``steps.before_deploy``: every pre-deploy step (migrations) succeeded
      on the revision the deploy will point the service at. Last, so a
      migration never runs for a deploy that something else still holds;
      one already running is still watched (``_IN_FLIGHT``).
    """
    held = release_flow.held(
        p.release, p.observed, p.view, p.now, self_heal=reason is Reason.SELF_HEAL
    )
    stepping = steps.before_deploy(
        p.release, p.observed, p.view, p.now, p.poll, deploy_action(p, reason)
    )
    if held is not None and not isinstance(stepping, _IN_FLIGHT):
        return held
    return stepping


_IN_FLIGHT = (StepRunning, StopStep, RecordStep)
"""A pre-deploy step already started: watched (its timeout, its outcome) even while a
hold that began after it (a window closing, a policy file breaking) keeps the deploy
and any new step from starting; otherwise a hung migration ran until the hold lifted."""


def memory_blocked(p: PassInputs) -> Action | None:
    """Nothing new is deployed (or adopted) while ecsop cannot keep its memory.

    Without the rollout record, a release ECS rolls back while ecsop is not
    looking would be deployed again, in a loop; rollbacks still happen.
    """
    tags = p.observed.service.tags
    if room_for_memory(tags) and p.observed.unwritten is None:
        return None
    if p.observed.unwritten is not None:
        why = "ecsop could not write its memory to the service's tags (see the log)"
    else:
        used = user_tag_count(tags)
        why = (
            f"the service has {used} tags of ECS's {MAX_TAGS}; ecsop needs "
            f"{len(SERVICE_KEYS)} ({', '.join(SERVICE_KEYS)}): remove "
            f"{used + len(SERVICE_KEYS) - MAX_TAGS}"
        )
    return Wait(
        Phase.DEGRADED,
        Reason.MEMORY_UNAVAILABLE,
        f"not deploying {p.view.desired}: {why}; rollbacks still happen",
        None,
    )
