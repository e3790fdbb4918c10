"""Capacity: whether the scheduler can place another task of a service.

A scenario cluster may hold a limited number of tasks (``capacity.maxTasks``,
changed at run time through ``POST /_sandbox/capacity``): an EC2 cluster whose
container instances are full, or Fargate without capacity in the subnets'
zones.  A launch past it is not a task at all: ECS logs why it could not place
one and tries again later, which makes a rollout stuck through no fault of its
image.

Wording, from "Amazon ECS service event messages"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages-list.html):
"(service service-name) was unable to place a task because no container
instance met all of its requirements. The closest matching container-instance
container-instance-id has insufficient CPU units available." (EC2), and the
"(service service-name) was unable to place a task. Reason: ..." form with the
Fargate capacity reason "Capacity is unavailable at this time. Please try again
later or in a different availability zone."
(https://repost.aws/knowledge-center/ecs-fargate-runtask-capacity).  The event
is logged once while the cause lasts (``Simulator.notice``).

Each failed placement counts as a failed task of the deployment ("A task is
considered a failure if the service scheduler can't launch the task",
API_Deployment) and feeds the service throttle (a lack of resources is one of
its documented causes, service-throttle-logic.html).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ecsop.sandbox import events
from ecsop.sandbox.model import Service

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

UNPLACEABLE = "unplaceable"
"""The condition key of the placement event (``Simulator.notice``)."""


def room(sim: Simulator, service: Service) -> int | None:
    """Tasks the service's cluster can still place (None: no limit)."""
    limit = sim.capacity.get(service.cluster.name)
    if limit is None:
        return None
    running = sum(len(d.tasks) for s in sim.services_in(service.cluster) for d in s.deployments)
    running += sim.oneoff.occupying(service.cluster.name)
    return max(0, limit - running)


def unplaceable_event(service: Service) -> str:
    if service.launch_type == "EC2":
        digest = hashlib.sha1(service.cluster.arn.encode()).hexdigest()
        return events.unable_to_place_ec2(service.name, digest[:32])
    return events.unable_to_place_fargate(service.name)
