"""Pre-flight: a deploy starts only if its images and its execution role exist.

Without it, a digest that was never pushed (or was deleted by a lifecycle
policy) is registered and deployed, and fails minutes later with
``CannotPullContainerError``; a missing execution role fails the same way.
Judged from ``FlowInputs.images`` and ``roles``, which the pass fills with one
BatchGetImage per ECR repository and one iam:GetRole (``ecsop.aws.preflight``).
Images outside ECR are skipped; so is an execution role in another account
than the service (iam:GetRole only sees the caller's own). A lookup AWS could
not answer holds too: a check that cannot be judged never counts as passed.
"""

from __future__ import annotations

from collections.abc import Mapping

from ecsop.decision.actions import Wait
from ecsop.decision.ecs_state import TaskDefinition, short_name
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.release_flow.inputs import FlowInputs, Found
from ecsop.spec import images as image_refs


def check(images: Mapping[str, str], base: TaskDefinition | None, flow: FlowInputs) -> Wait | None:
    """Hold when an image (container -> reference) or ``base``'s execution role is missing."""
    missing, unknown = [], []
    for container, reference in sorted(images.items()):
        lookup = flow.images.get(reference)
        if lookup is None:
            if image_refs.ecr_image(reference) is not None:
                unknown.append(f"{image_refs.short(container, reference)} (not checked)")
            continue
        if lookup.found is Found.MISSING:
            missing.append(f"{reference} ({lookup.detail or 'not found'})")
        elif lookup.found is Found.UNKNOWN:
            unknown.append(f"{image_refs.short(container, reference)} ({lookup.detail})")
    if missing:
        return Wait(
            Phase.DEGRADED,
            Reason.IMAGE_NOT_FOUND,
            f"not registering or deploying: ECR does not hold {'; '.join(missing)}; "
            "push the image or fix the digest",
            None,
        )
    role = base.execution_role if base is not None else ""
    found = flow.roles.get(role) if role else None
    if role and found is not None and found.found is Found.MISSING:
        return Wait(
            Phase.DEGRADED,
            Reason.EXECUTION_ROLE_NOT_FOUND,
            f"not registering or deploying: the execution role {role} of "
            f"{short_name(base.arn) if base else ''} does not exist ({found.detail})",
            None,
        )
    if role and (found is None or found.found is Found.UNKNOWN):
        unknown.append(f"execution role {role} ({found.detail if found else 'not checked'})")
    if unknown:
        return Wait(
            Phase.DEGRADED,
            Reason.PREFLIGHT_UNAVAILABLE,
            f"not deploying: could not check {'; '.join(unknown)}",
            None,
        )
    return None
