"""What became of a rollout ecsop started and no longer sees.

Situation GONE_UNSEEN: ecsop rolled a release out (its memory says
``deploying``), the service is steady again, and it runs something else. Three
stories fit, and they call for different actions:

- ECS failed the rollout and rolled back (circuit breaker, deployment alarms):
  the release failed; it is not deployed again.
- The service went back to last-good by another hand (ecsop's own rollback
  before a restart, or a person): treated as a failure too, without counting
  a rollback, because deploying it again could loop.
- Someone deployed another revision over it: not a failure of the release;
  the rollout record is cleared and drift handling takes over.

ECS's service deployment history tells which (``Observation.history``,
"View service history using Amazon ECS service deployments",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html);
when it is unavailable or has expired, the service's events and last-good are
read instead. Pure, like the rest of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ecsop.decision.ecs_state import short_name
from ecsop.decision.observation import Observation, fingerprint_of
from ecsop.decision.situation import View
from ecsop.spec.model import ServiceRelease


class Fate(StrEnum):
    ROLLED_BACK_BY_ECS = "rolled_back_by_ecs"
    """ECS failed it and rolled back (breaker, deployment alarms, a rollback request)."""
    RETURNED_TO_LAST_GOOD = "returned_to_last_good"
    """Last-good was put back by another hand than ECS's."""
    REPLACED = "replaced"
    """Another revision was deployed over it."""


@dataclass(frozen=True)
class RolloutFate:
    fate: Fate
    detail: str


_ECS_FAILED_EVENT = ("deployment failed", "rolling back to deployment")


def fate_of(release: ServiceRelease, observed: Observation, view: View) -> RolloutFate:
    """The most likely story, from the strongest evidence available."""
    history = observed.history or ()
    ours = [
        record
        for record in history
        if fingerprint_of(release, observed.task_definitions.get(record.target_task_definition))
        == view.desired
    ]
    if ours:
        record = ours[0]
        if record.status.startswith("ROLLBACK"):
            why = record.rollback_reason or record.status_reason or record.status
            detail = f"service deployment {record.status}: {why}"
            return RolloutFate(Fate.ROLLED_BACK_BY_ECS, detail)
        after = [r for r in history if r.created_at > record.created_at]
        if after:
            newest = after[0]
            target = short_name(newest.target_task_definition)
            if newest.target_task_definition == view.last_good:
                return RolloutFate(
                    Fate.RETURNED_TO_LAST_GOOD, f"a later deployment went back to {target}"
                )
            return RolloutFate(Fate.REPLACED, f"replaced by a deployment of {target}")
    service = observed.service
    if any(phrase in event.message for event in service.events for phrase in _ECS_FAILED_EVENT):
        return RolloutFate(Fate.ROLLED_BACK_BY_ECS, "the service's events show an ECS rollback")
    running = short_name(service.task_definition)
    if service.task_definition == view.last_good:
        return RolloutFate(Fate.RETURNED_TO_LAST_GOOD, f"the service is back on {running}")
    return RolloutFate(Fate.REPLACED, f"the service runs {running}")
