"""Ordering: deploy only while every ``spec.dependsOn`` release is Synced.

API before workers, schema owner before its readers: a release waits while a
release it depends on rolls out, bakes, is Degraded, invalid or missing. The
pass reads each dependency's service and classifies it the way its own pass
would (``ecsop.controller.flow``); cycles never get here (``ecsop.spec.references``).
"""

from __future__ import annotations

from ecsop.decision.actions import Wait
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.release_flow.inputs import FlowInputs
from ecsop.spec.model import ServiceRelease


def check(release: ServiceRelease, flow: FlowInputs) -> Wait | None:
    """Hold while a dependency is not Synced (or could not be read)."""
    waiting = []
    for name in release.spec.depends_on:
        state = flow.dependencies.get(name)
        if state is None:
            waiting.append(f"{name} (not read)")
        elif not state.synced:
            waiting.append(f"{name} ({state.detail})")
    if not waiting:
        return None
    return Wait(
        Phase.PROGRESSING,
        Reason.WAITING_FOR_DEPENDENCY,
        f"waiting for {', '.join(waiting)} to be Synced before deploying",
        None,
    )
