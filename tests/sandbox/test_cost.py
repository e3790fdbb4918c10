"""Cost stays proportional to what is live, not to history: a structural check.

A crash loop stops a task every few seconds for as long as it runs, and ECS
keeps stopped tasks visible for an hour.  The scheduler must not walk them on
every step, and ListTasks must not scan every task of the account: both read
indexes (live tasks per deployment; stopped tasks per deployment; services per
cluster).  ``Simulator.task_visits`` counts the tasks they examine.
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

DESIRED = 5


@pytest.fixture
def crash_looping() -> Iterator[tuple[Simulator, SimClock]]:
    with moto.mock_aws():
        spec = {"desiredCount": DESIRED, "taskDefinition": task_definition(GOOD)}
        scenario = Scenario.model_validate(
            {"images": IMAGES, "clusters": {"prod": {"services": {"api": spec, "web": spec}}}}
        )
        clock = SimClock(speed=0, start=1000.0)
        sim = Simulator(scenario, clock, DEFAULT_ACCOUNT_ID)
        sim.load(scenario)
        crash = ecs_api.handle(sim, "RegisterTaskDefinition", task_definition(CRASH))
        arn = crash["taskDefinition"]["taskDefinitionArn"]
        ecs_api.handle(
            sim, "UpdateService", {"cluster": "prod", "service": "api", "taskDefinition": arn}
        )
        yield sim, clock


def test_steps_and_list_tasks_do_not_walk_stopped_tasks(
    crash_looping: tuple[Simulator, SimClock],
) -> None:
    sim, clock = crash_looping
    for _ in range(1800):  # half an hour of crash loop, in 1 s steps
        clock.advance(1)
        sim.sync()
    stopped = len(sim.services[("prod", "api")].stopped)
    assert len(sim.tasks) > 50 * DESIRED  # the history is there, visible

    before = sim.task_visits
    clock.advance(10)
    sim.sync()
    per_second = (sim.task_visits - before) / 10
    # Each step looks at the live tasks (new and old deployments), not the history.
    assert per_second <= 4 * DESIRED, per_second

    before = sim.task_visits
    listed = ecs_api.handle(sim, "ListTasks", {"cluster": "prod", "serviceName": "web"})
    assert len(listed["taskArns"]) == DESIRED
    assert sim.task_visits - before == DESIRED  # web's tasks only, not api's stopped ones

    deployment = sim.services[("prod", "api")].primary.id
    before = sim.task_visits
    ecs_api.handle(
        sim, "ListTasks", {"cluster": "prod", "startedBy": deployment, "desiredStatus": "RUNNING"}
    )
    assert sim.task_visits - before <= 2 * DESIRED
    assert stopped == 1  # indexed under the one crash-looping deployment
