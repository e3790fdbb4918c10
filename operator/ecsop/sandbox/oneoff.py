"""One-off (standalone) tasks: RunTask's tasks, their commands and their life.

A one-off task goes through the same states as a service task
(PROVISIONING -> PENDING -> RUNNING -> STOPPING -> STOPPED, "Amazon ECS task
lifecycle", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html)
on the same ``timings``, but no scheduler replaces it: what ends it is its
containers.  The scenario's ``commands`` say what a container does, by image
and effective command (the RunTask ``containerOverrides[].command``, else the
task definition's ``command``): run ``durationSeconds`` and exit with
``exitCode``, or fail to start.  A command the scenario does not list runs
``timings.commandSeconds`` and exits 0; an image the scenario does not know at
all (neither ``images`` nor ``commands``), a ``pull-error`` image or one removed
from ECR fails to pull, as on ECS.

The task stops when an essential container exits ("Essential container in task
exited", ``EssentialContainerExited``); the containers still running then get
SIGTERM.  StopTask does "the equivalent of docker stop": SIGTERM, then SIGKILL
after the container's ``stopTimeout`` (30 s by default); "Any tags associated
with the task will be deleted" (API_StopTask,
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html).
ECS reports the container's exit code as Docker records it: a process killed by
a signal exits 128 + the signal, so 143 (SIGTERM) for a process that does not
handle it, or 137 (SIGKILL) for one that ignores it (``ignoresSigterm``).  A
container that cannot start stops its task before RUNNING with
``TaskFailedToStart`` and a ``CannotStartContainerError`` reason
("Troubleshooting Amazon ECS CannotStartContainerError errors",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cannot-start-container.html);
it reports no exit code.

Stopped one-off tasks stay visible to DescribeTasks and ListTasks for
``timings.stoppedTaskRetentionSeconds``, like service tasks.  ``OneOffTasks``
owns them, their timers and their indexes, under the simulator's lock; the
simulator advances it after its services (``Simulator.extensions``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecsop.sandbox import events
from ecsop.sandbox.behaviours import TaskPlan, image_digest
from ecsop.sandbox.model import PENDING_STATES, Container, Task, TaskStatus
from ecsop.sandbox.scenario_extras import CommandBehaviour

if TYPE_CHECKING:
    from ecsop.sandbox.model import Cluster, TaskDefinition
    from ecsop.sandbox.simulator import Simulator

SIGTERM_EXIT_CODE = 128 + 15
SIGKILL_EXIT_CODE = 128 + 9
DEFAULT_STOP_TIMEOUT = 30.0
"""Seconds between SIGTERM and SIGKILL unless the container sets ``stopTimeout``."""


@dataclass(frozen=True)
class ContainerRun:
    """What one container of a one-off task will do, decided at RunTask."""

    command: list[str] | None
    exit_code: int
    duration: float
    fail_to_start: bool = False
    ignores_sigterm: bool = False
    stop_timeout: float = DEFAULT_STOP_TIMEOUT


@dataclass
class OneOffTask(Task):
    """A task started by RunTask rather than by a service's scheduler."""

    cluster_name: str = ""
    family: str = ""
    started_by: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    capacity_provider_name: str | None = None
    platform_version: str | None = None
    subnet_id: str | None = None
    awsvpc: bool = True
    runs: dict[str, ContainerRun] = field(default_factory=dict)
    """Container name -> what it does."""
    exits: dict[str, tuple[float, int | None]] = field(default_factory=dict)
    """Containers told to stop: name -> (when they exit, their exit code)."""


def effective_command(container: dict[str, Any], overrides: dict[str, Any]) -> list[str] | None:
    """The command a container runs: its override, else the task definition's."""
    for override in overrides.get("containerOverrides") or []:
        if override.get("name") == container["name"] and "command" in override:
            return list(override["command"])
    command = container.get("command")
    return list(command) if command is not None else None


class OneOffTasks:
    """Every one-off task of the simulator, with its timers and ListTasks indexes."""

    def __init__(self, sim: Simulator, commands: Iterable[CommandBehaviour]) -> None:
        self._sim = sim
        self.commands = list(commands)
        self._by_cluster: dict[str, dict[str, OneOffTask]] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._stopped: deque[OneOffTask] = deque()
        self.client_tokens: dict[tuple[str, str], tuple[str, list[str]]] = {}
        """(cluster, clientToken) -> (request fingerprint, task ARNs): RunTask idempotency."""

    # -- what a container does ---------------------------------------------
    def plan(self, image: str, command: list[str] | None) -> ContainerRun | None:
        """What ``command`` does in ``image``; None when the image cannot be pulled."""
        catalog = self._sim.catalog
        behaviour = catalog.lookup(image)
        withdrawn = image_digest(image) in catalog.withdrawn if "@sha256:" in image else False
        matching = [c for c in self.commands if _same_image(c.image, image)]
        if withdrawn or (behaviour is not None and behaviour.behavior == "pull-error"):
            return None
        if behaviour is None and not matching:
            return None
        exact = [c for c in matching if c.command is not None and c.command == command]
        wildcard = [c for c in matching if c.command is None]
        found = next(iter(exact or wildcard), None)
        if found is None:
            return ContainerRun(command, 0, self._sim.timings.command_seconds)
        return ContainerRun(
            command,
            found.exit_code,
            found.duration_seconds,
            fail_to_start=found.fail_to_start,
            ignores_sigterm=found.ignores_sigterm,
        )

    # -- launching ---------------------------------------------------------
    def launch(
        self,
        cluster: Cluster,
        definition: TaskDefinition,
        *,
        launch_type: str,
        started_by: str | None,
        group: str,
        overrides: dict[str, Any],
        tags: dict[str, str],
        capacity_provider_name: str | None,
        platform_version: str | None,
        subnet_id: str | None,
    ) -> OneOffTask:
        sim, at = self._sim, self._sim.now
        task_id = sim.ids.task_id()
        containers: list[Container] = []
        runs: dict[str, ContainerRun] = {}
        unpullable: str | None = None
        for spec in definition.body["containerDefinitions"]:
            command = effective_command(spec, overrides)
            run = self.plan(spec["image"], command)
            if run is None:
                unpullable = unpullable or spec["image"]
                run = ContainerRun(command, 0, 0.0)
            stop_timeout = spec.get("stopTimeout")
            if stop_timeout is not None:
                run = ContainerRun(
                    run.command,
                    run.exit_code,
                    run.duration,
                    run.fail_to_start,
                    run.ignores_sigterm,
                    float(stop_timeout),
                )
            runs[spec["name"]] = run
            containers.append(
                Container(
                    name=spec["name"],
                    image=spec["image"],
                    arn=sim.ids.arn(f"container/{cluster.name}/{task_id}/{sim.ids.task_id()[:36]}"),
                    essential=bool(spec.get("essential", True)),
                    has_health_check="healthCheck" in spec,
                )
            )
        task = OneOffTask(
            arn=sim.ids.arn(f"task/{cluster.name}/{task_id}"),
            id=task_id,
            cluster_arn=cluster.arn,
            task_definition_arn=definition.arn,
            deployment_id="",
            service_key=("", ""),
            group=group,
            launch_type=launch_type,
            created_at=at,
            containers=containers,
            plan=TaskPlan(pull_error=unpullable),
            private_ip=sim.ids.private_ip(),
            has_health_check=False,
            tags=tags,
            cluster_name=cluster.name,
            family=definition.family,
            started_by=started_by,
            overrides=overrides,
            capacity_provider_name=capacity_provider_name,
            platform_version=platform_version,
            subnet_id=subnet_id,
            awsvpc=definition.body.get("networkMode") == "awsvpc",
            runs=runs,
        )
        sim.tasks[task.arn] = task
        self._by_cluster.setdefault(cluster.name, {})[task.arn] = task
        self._schedule(task, at + sim.timings.provisioning_seconds, "pending")
        return task

    # -- time --------------------------------------------------------------
    def advance_to(self, until: float) -> None:
        """Carry out every due step, in time order (called by ``Simulator.advance_to``)."""
        while self._timers and self._timers[0][0] <= until:
            at, _, arn = heapq.heappop(self._timers)
            task = self._sim.tasks.get(arn)
            if not isinstance(task, OneOffTask) or task.next_at != at:
                continue  # superseded (a stop moved its agenda) or pruned
            while task.agenda and task.agenda[0][0] <= at:
                when, step = task.agenda.pop(0)
                self._step(task, when, step)
                task.version += 1
            if task.next_at is not None:
                heapq.heappush(self._timers, (task.next_at, next(self._sequence), task.arn))
        self._prune(until - self._sim.timings.stopped_task_retention_seconds)

    def _schedule(self, task: OneOffTask, at: float, step: str) -> None:
        task.plan_step(at, step)
        heapq.heappush(self._timers, (at, next(self._sequence), task.arn))

    def _step(self, task: OneOffTask, at: float, step: str) -> None:
        timings = self._sim.timings
        if step == "pending":
            task.last_status = TaskStatus.PENDING
            task.pull_started_at = task.connectivity_at = at
            if task.plan.pull_error is not None:
                task.plan_step(at + timings.pull_seconds, "pull_failed")
            elif any(r.fail_to_start for r in task.runs.values()):
                task.plan_step(at + timings.pull_seconds, "start_failed")
            else:
                task.plan_step(at + timings.pull_seconds, "running")
        elif step == "running":
            self._running(task, at)
        elif step == "pull_failed":
            task.pull_stopped_at = at
            image = task.plan.pull_error or ""
            reason = events.stop_pull_error(image)
            for container in task.containers:
                if container.image == image:
                    container.reason = reason
            self._stop_before_running(task, at, reason)
        elif step == "start_failed":
            task.pull_stopped_at = at
            name, run = next((n, r) for n, r in task.runs.items() if r.fail_to_start)
            reason = cannot_start_reason(run.command)
            for container in task.containers:
                if container.name == name:
                    container.reason = reason
            self._stop_before_running(task, at, reason)
        elif step.startswith("exit:"):
            self._container_exits(task, at, step[len("exit:") :])
        elif step == "stopped":
            self._stopped_now(task, at)

    def _running(self, task: OneOffTask, at: float) -> None:
        task.pull_stopped_at = at
        task.last_status = TaskStatus.RUNNING
        task.started_at = at
        for container in task.containers:
            container.last_status = "RUNNING"
            container.image_digest = image_digest(container.image)
            container.runtime_id = self._sim.ids.runtime_id(task.id)
            task.plan_step(at + task.runs[container.name].duration, f"exit:{container.name}")

    def _container_exits(self, task: OneOffTask, at: float, name: str) -> None:
        container = next(c for c in task.containers if c.name == name)
        if container.last_status != "RUNNING" or name in task.exits:
            return
        container.exit_code = task.runs[name].exit_code
        container.last_status = "STOPPED"
        if container.essential and task.alive:
            self._begin_stop(
                task,
                at,
                reason=events.STOP_ESSENTIAL_EXITED,
                code="EssentialContainerExited",
            )

    # -- stopping ----------------------------------------------------------
    def stop(self, task: OneOffTask, reason: str) -> None:
        """StopTask: docker stop for what runs, tags deleted (API_StopTask)."""
        task.tags = {}
        self._begin_stop(task, self._sim.now, reason=reason, code="UserInitiated")
        if task.next_at is not None:
            heapq.heappush(self._timers, (task.next_at, next(self._sequence), task.arn))

    def _stop_before_running(self, task: OneOffTask, at: float, reason: str) -> None:
        task.desired_status = "STOPPED"
        task.stopping_at = at
        task.stopped_reason = reason
        task.stop_code = "TaskFailedToStart"
        task.failed = True
        task.agenda = [(at, "stopped")]

    def _begin_stop(self, task: OneOffTask, at: float, *, reason: str, code: str) -> None:
        if not task.alive:
            return
        task.desired_status = "STOPPED"
        task.stopping_at = at
        task.stopped_reason = reason
        task.stop_code = code
        if task.last_status in PENDING_STATES:
            task.agenda = [(at, "stopped")]  # nothing started: nothing to signal
            return
        task.last_status = TaskStatus.STOPPING
        done = at + self._sim.timings.stopping_seconds
        for container in task.containers:
            if container.last_status != "RUNNING":
                continue
            run = task.runs[container.name]
            if run.ignores_sigterm:
                exit_at, exit_code = at + run.stop_timeout, SIGKILL_EXIT_CODE
            else:
                exit_at, exit_code = at + self._sim.timings.stopping_seconds, SIGTERM_EXIT_CODE
            task.exits[container.name] = (exit_at, exit_code)
            done = max(done, exit_at)
        task.agenda = [(done, "stopped")]

    def _stopped_now(self, task: OneOffTask, at: float) -> None:
        task.last_status = TaskStatus.STOPPED
        task.execution_stopped_at = task.stopped_at = at
        for container in task.containers:
            if container.name in task.exits and container.last_status == "RUNNING":
                container.exit_code = task.exits[container.name][1]
            container.last_status = "STOPPED"
        self._stopped.append(task)

    def _prune(self, before: float) -> None:
        while self._stopped and (self._stopped[0].stopped_at or 0) < before:
            task = self._stopped.popleft()
            self._sim.tasks.pop(task.arn, None)
            self._by_cluster.get(task.cluster_name, {}).pop(task.arn, None)

    # -- reading -----------------------------------------------------------
    def in_cluster(self, cluster_name: str) -> Iterator[OneOffTask]:
        yield from self._by_cluster.get(cluster_name, {}).values()

    def occupying(self, cluster_name: str) -> int:
        """One-off tasks of the cluster that hold capacity (not yet STOPPED)."""
        return sum(
            1 for t in self.in_cluster(cluster_name) if t.last_status is not TaskStatus.STOPPED
        )

    def listed(
        self,
        cluster_name: str,
        *,
        desired: str,
        family: str | None,
        started_by: str | None,
    ) -> list[str]:
        """ARNs for ListTasks (``desiredStatus``, ``family``, ``startedBy`` filters)."""
        arns = []
        for task in self.in_cluster(cluster_name):
            self._sim.task_visits += 1
            if (task.desired_status == "STOPPED") != (desired == "STOPPED"):
                continue
            if desired == "PENDING" and task.last_status not in PENDING_STATES:
                continue
            if family is not None and task.family != family:
                continue
            if started_by is not None and task.started_by != started_by:
                continue
            arns.append(task.arn)
        return arns


def cannot_start_reason(command: list[str] | None) -> str:
    """The runtime's answer when the container's command cannot be executed."""
    program = command[0] if command else "/docker-entrypoint.sh"
    return (
        "CannotStartContainerError: Error response from daemon: failed to create task for "
        "container: failed to create shim task: OCI runtime create failed: runc create failed: "
        f'unable to start container process: exec: "{program}": executable file not found in '
        "$PATH: unknown"
    )


def _same_image(declared: str, image: str) -> bool:
    if declared == image:
        return True
    return (
        "@sha256:" in declared
        and "@sha256:" in image
        and (image_digest(declared) == image_digest(image))
    )
