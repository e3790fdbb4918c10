"""Which revision a deploy of the desired release starts from: the clone's base, and a reuse.

One pure answer shared by the decision's ``Deploy`` and by the reconcile pass,
which must find the very revision pre-deploy steps run on before deciding
(``ecsop.controller.step_probe``): "register (or reuse) the release's
revision" is one rule, computed in one place.

- The clone's base is what the service runs when that is ecsop's own revision
  (configuration registered since is kept), and the proven last-good when the
  service was changed by hand (a self-heal), whose revision ecsop never judged.
- On a revert, the proven last-good carrying the desired fingerprint may be
  reused (only if its content is what a fresh clone would register:
  ``ecsop.aws.revisions``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecsop.decision.ecs_state import TaskDefinitionArn
from ecsop.decision.observation import Observation, fingerprint_of
from ecsop.decision.situation import Situation, View
from ecsop.spec.model import ServiceRelease


@dataclass(frozen=True)
class CloneSource:
    base: TaskDefinitionArn
    reuse: TaskDefinitionArn | None = None


def clone_source(release: ServiceRelease, observed: Observation, view: View) -> CloneSource:
    """Where a deploy of ``view.desired`` comes from in this situation."""
    last_good = view.last_good
    healing = view.situation is Situation.DRIFTED
    base = last_good if healing and last_good else observed.service.task_definition
    reuse = None
    if (
        last_good
        and fingerprint_of(release, observed.task_definitions.get(last_good)) == view.desired
    ):
        reuse = last_good  # a revert: the proven revision may be reusable
    return CloneSource(base, reuse)
