"""Promotion: deploy only images every ``spec.promotion.from`` release has proven.

"Proven" means ran to last-good after its bake: the upstream's pass tags the
revision it records as last-good ``ecsop:proven:<release>``
(``ecsop.decision.memory.proof_tags``), so the proof survives restarts, outlives
the upstream moving on to newer images, and is read with the upstream's own
credentials wherever its account is. Images are matched per container by
digest, whatever the repository (a replica in production's account holds the
same digests). A container whose image is the one of the release's own
last-good revision is not being promoted and needs no proof.
"""

from __future__ import annotations

from collections.abc import Mapping

from ecsop.decision.actions import Wait
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.release_flow.inputs import FlowInputs
from ecsop.spec import images as image_refs
from ecsop.spec.model import ServiceRelease


def digests_to_prove(release: ServiceRelease, current: Mapping[str, str]) -> dict[str, str]:
    """Container -> image of every container whose image differs from ``current``'s
    (the release's last-good images): what the upstream releases must have proven."""
    return {
        name: image for name, image in release.spec.containers.items() if current.get(name) != image
    }


def check(release: ServiceRelease, current: Mapping[str, str], flow: FlowInputs) -> Wait | None:
    """Hold while some new image is not proven by every upstream release."""
    promotion = release.spec.promotion
    if promotion is None:
        return None
    wanted = digests_to_prove(release, current)
    problems: list[str] = []
    for upstream in promotion.from_:
        proof = flow.proofs.get(upstream)
        if proof is None or proof.error:
            why = proof.error if proof else "its proofs were not read"
            problems.append(f"cannot read what {upstream} proved ({why})")
            continue
        for container, image in sorted(wanted.items()):
            digest = image_refs.digest_of(image)
            if digest is None:
                problems.append(
                    f"{container}={image} is not pinned by digest, so no proof can match it"
                )
            elif digest not in proof.proven:
                problems.append(
                    f"{image_refs.short(container, image)} not yet proven by {upstream}"
                )
    if not problems:
        return None
    return Wait(
        Phase.PROGRESSING,
        Reason.PROMOTION_BLOCKED,
        f"waiting for promotion: {'; '.join(dict.fromkeys(problems))}",
        None,
    )
