"""The task definition revisions a pass reads: described, or known from ecsop's record.

A revision never changes once registered, so the gateway caches every one it
describes. A fresh process has described none: its first pass over 10,000
releases made 10,000 DescribeTaskDefinition calls, 500 s at ECS's documented
rate of 20 a second, before it could call a single release Synced (issue 22).

When ecsop records a revision as last-good it also records, bound to the
service, the release and that revision, the fingerprint it computed from the
revision's images (``ServiceMemory.last_good_carries``). A steady service on
last-good whose record matches the spec is in sync, and the record alone says
so: ``read`` first classifies the pass with no revision described, and accepts
that only when the situation is ``SYNCED``. Every other situation (a rollout,
a spec change, a hand edit, a record missing or not vouched for) describes
the revisions as before, so nothing that may act is decided on the record.

Callers: ``ecsop.controller.reconciler`` (each pass) and
``ecsop.controller.flow`` (a dependency's state, as its own pass would see it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from ecsop.aws.clients import AwsError
from ecsop.decision.ecs_state import TaskDefinition, TaskDefinitionArn
from ecsop.decision.observation import Observation, Options
from ecsop.decision.situation import Situation, classify
from ecsop.spec.model import ServiceRelease


class RevisionSource(Protocol):
    """What this module asks of the gateway (``EcsGateway.task_definition``: cached)."""

    def task_definition(self, arn: str) -> TaskDefinition: ...


def read(
    gateway: RevisionSource, release: ServiceRelease, observation: Observation, options: Options
) -> Observation:
    """``observation`` with the revisions its decision reads: none when the record settles it."""
    if classify(release, observation, options).situation is Situation.SYNCED:
        return observation
    state = observation.service
    required = {state.task_definition, *(d.task_definition for d in state.deployments)}
    last_good = observation.memory.last_good
    optional = {last_good} if last_good else set()
    return replace(observation, task_definitions=described(gateway, required, optional))


def described(
    gateway: RevisionSource, required: set[TaskDefinitionArn], optional: set[TaskDefinitionArn]
) -> dict[TaskDefinitionArn, TaskDefinition]:
    """Describe ``required`` revisions (errors raise) and ``optional`` ones (errors skip).

    An optional revision is one a tag names (last-good, a history entry): a
    hand-edited tag naming a revision that does not exist must not stop the
    release's passes.
    """
    found: dict[TaskDefinitionArn, TaskDefinition] = {
        arn: gateway.task_definition(arn) for arn in required if arn
    }
    for arn in optional - set(found):
        try:
            found[arn] = gateway.task_definition(arn)
        except AwsError as error:
            if error.retryable:
                raise
    return found
