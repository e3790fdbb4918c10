"""Stopped-task retention in the simulator, driven in-process on a manual clock.

A crash-looping service stops tasks for as long as it runs; the simulator must
forget them after ``stoppedTaskRetentionSeconds``, including those whose load
balancer target was still draining when retention first came due.
"""

from __future__ import annotations

from collections.abc import Iterator

import moto
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from sandbox_harness import CRASH, GOOD, IMAGES, task_definition

from ecsop.sandbox import ecs_api
from ecsop.sandbox.clock import SimClock
from ecsop.sandbox.scenario import Scenario
from ecsop.sandbox.simulator import Simulator


@pytest.fixture
def crash_looping() -> Iterator[tuple[Simulator, SimClock]]:
    with moto.mock_aws():
        scenario = Scenario.model_validate(
            {
                "images": IMAGES,
                "timings": {"stoppedTaskRetentionSeconds": 0},
                "clusters": {
                    "prod": {
                        "services": {
                            "api": {
                                "desiredCount": 10,
                                "taskDefinition": task_definition(GOOD),
                                "loadBalancer": {"containerName": "api", "containerPort": 80},
                            }
                        }
                    }
                },
            }
        )
        clock = SimClock(speed=0, start=1000.0)
        sim = Simulator(scenario, clock, DEFAULT_ACCOUNT_ID)
        sim.load(scenario)
        ecs_api.handle(sim, "RegisterTaskDefinition", task_definition(CRASH))
        ecs_api.handle(
            sim, "UpdateService", {"cluster": "prod", "service": "api", "taskDefinition": "api:2"}
        )
        yield sim, clock


def test_stopped_tasks_still_draining_are_pruned_later_not_kept_forever(
    crash_looping: tuple[Simulator, SimClock],
) -> None:
    sim, clock = crash_looping
    sizes = []
    for _ in range(2):
        for _ in range(360):  # half an hour of simulated time, in 10 s steps
            clock.advance(10)
            sim.sync()
        sizes.append(len(sim.tasks))
    # Bounded by what the deregistration delay keeps draining, not growing with time.
    assert sizes[1] <= sizes[0] * 1.2, sizes
