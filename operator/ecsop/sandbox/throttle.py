"""ECS's service throttle logic: launches spaced out while tasks keep failing to start.

"If tasks for a service repeatedly fail to enter the RUNNING state (progressing
directly from a PENDING to a STOPPED status), then the time between subsequent
restart attempts is incrementally increased up to a maximum of 27 minutes"
(Developer Guide, "Amazon ECS service throttle logic",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-throttle-logic.html;
earlier editions said 15 minutes).  The page also says:

- the service logs "(service service-name) is unable to consistently start
  tasks successfully." when the throttle starts;
- a lack of resources to place the task triggers it too;
- tasks stopped after they reached RUNNING (a crash, failed ELB health checks)
  never do;
- "If you update your service to use a new task definition, your service
  returns to a normal, non-throttled state immediately."

AWS does not document the intervals: the sandbox doubles from
``timings.launchBackoffInitialSeconds`` once ``launchBackoffAfterFailures``
consecutive tasks failed to start, up to ``launchBackoffMaxSeconds``.  Called
by the scheduler (``rollout``) under the simulator's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BackoffTimings(Protocol):
    """The scenario timings the throttle reads (``scenario.Timings``)."""

    @property
    def launch_backoff_after_failures(self) -> int: ...
    @property
    def launch_backoff_initial_seconds(self) -> float: ...
    @property
    def launch_backoff_max_seconds(self) -> float: ...


@dataclass
class LaunchThrottle:
    """One service's count of consecutive start failures and the delay it implies."""

    failures: int = 0
    """Tasks that failed to start (or to be placed) since the last one that ran."""

    def record_failure(self, timings: BackoffTimings) -> float:
        """Count one more failure; return the seconds to wait before the next launch."""
        self.failures += 1
        beyond = self.failures - timings.launch_backoff_after_failures
        if beyond < 0:
            return 0.0
        delay = timings.launch_backoff_initial_seconds * 2.0 ** min(beyond, 32)
        return min(timings.launch_backoff_max_seconds, delay)

    def started(self, timings: BackoffTimings) -> bool:
        """True exactly when the last ``record_failure`` switched throttling on."""
        return self.failures == timings.launch_backoff_after_failures

    def reset(self) -> None:
        """A task ran, or the service got a new task definition: back to normal."""
        self.failures = 0
