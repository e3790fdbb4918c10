"""Approval: with ``rollout.approval: manual``, a new fingerprint waits for ``ecsop approve``.

The approval is of one exact fingerprint, recorded on the service by
``ecsop approve NAME`` (``ecsop.decision.memory.ApprovalRecord``: who, from
the caller's identity, and when, AWS's time); a later spec change needs a new
one. Read from the service's tags the pass already has: no extra AWS call.
"""

from __future__ import annotations

from collections.abc import Mapping

from ecsop.decision.actions import Wait
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import ApprovalRecord
from ecsop.decision.reasons import Phase, Reason
from ecsop.spec.model import ServiceRelease


def check(release: ServiceRelease, desired: Fingerprint, tags: Mapping[str, str]) -> Wait | None:
    """Hold until the approval on the service names ``desired``."""
    if release.spec.rollout.approval != "manual":
        return None
    approval = ApprovalRecord.read(tags)
    if approval is not None and approval.fingerprint == desired:
        return None
    before = (
        f" (the approval on the service is for {approval.fingerprint})"
        if approval is not None
        else ""
    )
    return Wait(
        Phase.PROGRESSING,
        Reason.AWAITING_APPROVAL,
        f"waiting for approval of {desired}{before}: run `ecsop approve {release.name}`",
        None,
    )
