"""Time to restore: from a failure seen to production traffic fully back on last-good.

The figure an on-call engineer cares about after a bad deploy, and the one the
strategies differ in: a blue/green or canary rollback sends production back
to blue (still running) at once; a rolling rollback waits for last-good's
tasks to start again. Measured on AWS's clock: the pass that sees the failure
(it decides the rollback, or sees ECS roll back) starts it; the first pass
that sees production fully on last-good ends it. Kept in the process: a
daemon restart in between loses that one measurement, nothing else.
"""

from __future__ import annotations

import threading
from datetime import datetime

from ecsop.decision.actions import Action, RecordFailure, Rollback
from ecsop.decision.observation import Observation


class RestoreClock:
    """Per release, when a failure was seen, until production is back on last-good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, tuple[datetime, str]] = {}

    def passed(
        self, name: str, action: Action, observation: Observation, now: datetime
    ) -> tuple[float, str] | None:
        """After a pass: (seconds, strategy) when a restore just finished, else None."""
        failed = isinstance(action, Rollback) or (
            isinstance(action, RecordFailure) and action.rolled_back_by_ecs
        )
        with self._lock:
            if failed and name not in self._since:
                self._since[name] = (now, observation.service.strategy)
                return None
            started = self._since.get(name)
        if started is None or not restored(observation):
            return None
        with self._lock:
            self._since.pop(name, None)
        return max(0.0, (now - started[0]).total_seconds()), started[1]

    def forget(self, name: str) -> None:
        with self._lock:
            self._since.pop(name, None)


def restored(observation: Observation) -> bool:
    """Production traffic is fully on the last-good revision."""
    traffic = observation.traffic
    last_good = observation.memory.last_good
    if traffic is not None and traffic.production_on_green is not None:
        if traffic.rolling_back:  # blue (last-good) still runs: its weight says it all
            return traffic.production_on_green == 0
        if traffic.target_task_definition and traffic.target_task_definition == last_good:
            return traffic.production_on_green >= 100  # a new deployment of last-good
    # A rolling rollback: last-good runs its full count and no other revision has a
    # RUNNING task. ECS deregisters a task from its target groups before it stops it
    # (DEACTIVATING, no longer counted in a deployment's runningCount: "Deployment",
    # Amazon ECS API Reference; "Amazon ECS task lifecycle", Developer Guide), and the
    # load balancer sends no new request to a draining target: production is back
    # before the bad tasks finish draining.
    service = observation.service
    primary = service.primary
    return (
        primary is not None
        and primary.task_definition == last_good
        and primary.running_count >= primary.desired_count
        and all(d.running_count == 0 for d in service.deployments if d is not primary)
    )
