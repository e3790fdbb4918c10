"""Deployment alarms: ECS reads them on its own schedule, through a bake time.

"How CloudWatch alarms detect Amazon ECS deployment failures"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html):

- "When a new deployment starts, the rollout state begins in an IN_PROGRESS
  state.  When the service reaches a steady state and the bake time is
  complete, the rollout state transitions to COMPLETED"; the bake time is "a
  period of time after a new service version has scaled out and the old
  service version has scaled in, during which Amazon ECS continues to monitor
  the alarm associated with the deployment.  Amazon ECS computes this time
  period based on the alarm configuration";
- "If an alarm is in the ALARM state at the beginning of a deployment, Amazon
  ECS will not monitor alarms for the duration of that deployment".

The bake time is ``deploymentConfiguration.bakeTimeInMinutes`` when the service
sets it (API_DeploymentConfiguration); otherwise the sandbox computes it from
the alarms' own configuration, the longest ``Period`` x ``EvaluationPeriods``
(or ``DatapointsToAlarm``) among them: how long an alarm needs to notice.

ECS does not say how often it reads the alarms; the sandbox reads them every
``timings.alarmPollSeconds`` (60 s by default, CloudWatch's standard period)
from the deployment's start, and only then: an alarm going to ALARM while no
task changes fails the deployment at the next read, never sooner.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ecsop.sandbox import breaker
from ecsop.sandbox.model import Deployment, Service

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator


def enabled(service: Service) -> bool:
    return bool(service.deployment_alarms().get("enable"))


def firing_alarms(sim: Simulator, service: Service) -> list[str]:
    """The service's deployment alarms in ALARM (none when they are not enabled)."""
    if not enabled(service):
        return []
    names = service.deployment_alarms().get("alarmNames", [])
    return [name for name in names if sim.alarms.state(name) == "ALARM"]


def monitored(service: Service, deployment: Deployment) -> bool:
    """ECS watches the alarms for this deployment now."""
    return (
        enabled(service)
        and deployment is service.primary
        and deployment.rollout_state == "IN_PROGRESS"
        and not deployment.alarms_ignored
    )


def next_read(sim: Simulator, deployment: Deployment, at: float) -> float:
    """The first alarm read at or after ``at`` (reads run every poll from the start)."""
    poll = sim.timings.alarm_poll_seconds
    periods = max(1, math.ceil((at - deployment.created_at) / poll - 1e-9))
    return deployment.created_at + periods * poll


def check(sim: Simulator, service: Service, at: float) -> float | None:
    """Read the alarms if a read is due; return when the next read is (None: none)."""
    primary = service.primary
    if not monitored(service, primary):
        return None
    due = next_read(sim, primary, at)
    if due > at:
        return due
    firing = firing_alarms(sim, service)
    if firing:
        breaker.fail(sim, service, at, alarms=firing)
        return None
    return next_read(sim, primary, at + sim.timings.alarm_poll_seconds / 2)


def bake_seconds(sim: Simulator, service: Service) -> float:
    """How long a steady deployment stays IN_PROGRESS with its alarms watched."""
    if not enabled(service):
        return 0.0
    minutes = service.deployment_configuration.get("bakeTimeInMinutes")
    if minutes is not None:
        return float(minutes) * 60
    names = service.deployment_alarms().get("alarmNames", [])
    return max((sim.alarms.evaluation_seconds(name) for name in names), default=0.0)
