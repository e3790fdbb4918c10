"""Which release-flow checks a pass needs, and the one place they are run in order.

``deploying.held`` calls ``held``; the reconcile pass calls ``needs`` on the
same classification to gather only what those checks will read, and only
when a deploy is pending, so a steady release costs no extra AWS call.

Order: pre-flight first (a digest that does not exist is a broken spec, not
something to approve), then promotion, ordering, approval, and the windows
last (everything else ready, only the clock to wait for). A return to the
proven last-good release (a self-heal, a spec reverted to it) passes every
check but the pre-flight: it is the state the release already proved.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from ecsop.decision.actions import Wait
from ecsop.decision.ecs_state import TaskDefinition, TaskDefinitionArn
from ecsop.decision.observation import Observation, Options, fingerprint_of
from ecsop.decision.release_flow import approval, ordering, preflight, promotion, windows
from ecsop.decision.release_flow.inputs import FlowInputs
from ecsop.decision.situation import Situation, View
from ecsop.spec.model import ServiceRelease


class Need(StrEnum):
    """An input the release-flow checks read, gathered by the pass (``ecsop.controller.flow``)."""

    PREFLIGHT = "preflight"
    """ECR images (BatchGetImage per repository) and the execution role (iam:GetRole)."""
    PROOFS = "proofs"
    """What each ``promotion.from`` release proved (its revisions' proof tags)."""
    DEPENDENCIES = "dependencies"
    """Where each ``dependsOn`` release stands (its service, classified)."""
    POLICY = "policy"
    """The policy file's windows for this release, and its problems."""


def deploys(view: View, options: Options) -> bool:
    """Whether this pass's situation leads to ``deploying.deploy``."""
    return view.situation is Situation.OUT_OF_DATE or (
        view.situation is Situation.DRIFTED and options.self_heal
    )


def needs(
    release: ServiceRelease, observed: Observation, view: View, options: Options
) -> frozenset[Need]:
    """What to gather for this pass: nothing unless a deploy is pending."""
    if not deploys(view, options):
        return frozenset()
    if returns_to_proven(release, observed, view):
        return frozenset({Need.PREFLIGHT})
    wanted = {Need.PREFLIGHT, Need.POLICY}
    if release.spec.promotion is not None:
        wanted.add(Need.PROOFS)
    if release.spec.depends_on:
        wanted.add(Need.DEPENDENCIES)
    return frozenset(wanted)


def returns_to_proven(release: ServiceRelease, observed: Observation, view: View) -> bool:
    """The desired release is the one the trusted last-good revision carries."""
    if view.last_good is None:
        return False
    proven = observed.task_definitions.get(view.last_good)
    return proven is not None and fingerprint_of(release, proven) == view.desired


def clone_base(view: View, observed: Observation, self_heal: bool) -> TaskDefinitionArn:
    """The revision a deploy clones: the rule of ``deploying.deploy``, for the pre-flight."""
    if self_heal and view.last_good:
        return view.last_good
    return observed.service.task_definition


def held(
    release: ServiceRelease,
    observed: Observation,
    view: View,
    now: datetime,
    self_heal: bool,
) -> Wait | None:
    """The first check that holds this deploy, or None when it may start."""
    flow = observed.flow or FlowInputs()
    if observed.flow is not None:  # None: this pass gathered nothing (no AWS edge wired)
        base = observed.task_definitions.get(clone_base(view, observed, self_heal))
        blocked = preflight.check(release.spec.containers, base, flow)
        if blocked is not None:
            return blocked
    if returns_to_proven(release, observed, view):
        return None
    current = _last_good_images(observed, view)
    return (
        promotion.check(release, current, flow)
        or ordering.check(release, flow)
        or approval.check(release, view.desired, observed.service.tags)
        or windows.check((*release.spec.deploy_windows, *flow.windows), flow.policy_problems, now)
    )


def _last_good_images(observed: Observation, view: View) -> dict[str, str]:
    proven: TaskDefinition | None = (
        observed.task_definitions.get(view.last_good) if view.last_good else None
    )
    return dict(proven.images) if proven is not None else {}
