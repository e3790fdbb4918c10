"""Approval: with ``rollout.approval: manual``, a new fingerprint waits for ``ecsop approve``.

The approval is of one exact fingerprint *and spec*, recorded on the service by
``ecsop approve NAME`` (``ecsop.decision.memory.ApprovalRecord``: who, from
the caller's identity, and when, AWS's time); a later spec change needs a new
one, even one that keeps the images: a migration command edited after the
approval, while the deploy waits for its window, is not what was approved.
Read from the service's tags the pass already has: no extra AWS call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from ecsop.decision.actions import Wait
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import ApprovalRecord
from ecsop.decision.reasons import Phase, Reason
from ecsop.spec.model import ServiceRelease


def check(release: ServiceRelease, desired: Fingerprint, tags: Mapping[str, str]) -> Wait | None:
    """Hold until the approval on the service names ``desired`` and this very spec."""
    if release.spec.rollout.approval != "manual":
        return None
    approval = ApprovalRecord.read(tags)
    if approval is not None and approval.fingerprint == desired:
        if approval.spec == content(release):
            return None
        if not approval.spec:
            before = (
                f" (the approval on the service for {desired} was written by an ecsop that "
                "bound only the images: approve it again to bind the spec too)"
            )
        else:
            before = (
                f" (the approval on the service is for {desired} with another spec: its "
                "preDeploy, verify, rollout or another field changed since)"
            )
    elif approval is not None:
        before = f" (the approval on the service is for {approval.fingerprint})"
    else:
        before = ""
    return Wait(
        Phase.PROGRESSING,
        Reason.AWAITING_APPROVAL,
        f"waiting for approval of {desired}{before}: run `ecsop approve {release.name}`",
        None,
    )


_WHEN_ONLY = {"suspend", "depends_on", "deploy_windows"}
"""Spec fields that say when a release may go, not what it is: outside an approval."""


def content(release: ServiceRelease) -> str:
    """A short hash of the release's spec as written: what an approval binds beside the images.

    Fields left at their default are left out, so an approver's older or newer
    ecsop (a field added since, with its default) hashes the same spec alike.
    What only says *when* a release may go (``suspend``, ``dependsOn``,
    ``deployWindows``) is not bound: adding an emergency window to let an
    approved fix out, or suspending and resuming, is no new release to approve
    (the policy file's windows were never bound either).
    """
    spec = release.spec.model_dump(
        mode="json", by_alias=True, exclude_defaults=True, exclude=_WHEN_ONLY
    )
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
