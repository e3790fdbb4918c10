"""The controller's test world: a Controller over an in-memory ECS, driven pass by pass.

A ``World`` is a Controller wired to a fresh ``CollectorRegistry``, a fixed
clock and ``FakeEcs``, an in-memory stand-in for ``ecsop.ecs.EcsGateway``
whose services tests script (deployments complete, tasks fail, ECS's circuit
breaker rolls back). ``reconcile(name)`` is called directly: no threads, no
sleeping. ``test_controller.py`` checks status, phases and logs through it,
``test_metrics.py`` every metric; the ``world`` fixture is in ``conftest.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from ecsop.aws.revisions import PreparedClone
from ecsop.controller.manager import Controller, ControllerSettings
from ecsop.controller.recorder import DecisionListener
from ecsop.decision.ecs_state import (
    Deployment,
    DeploymentStatus,
    Fingerprint,
    RolloutState,
    ServiceMissing,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)
from ecsop.decision.memory import TAG_LAST_GOOD, RevisionMemory
from ecsop.decision.observation import StoppedTasks
from ecsop.decision.reasons import Phase
from ecsop.observability.metrics import Metrics

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
CLUSTER = "prod"


def image(label: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:" + (
        hashlib.sha256(label.encode()).hexdigest()
    )


V1, V2, CRASH, SIDECAR = image("v1"), image("v2"), image("crash"), image("sidecar")


class Clock:
    """The controller's clock and the fake's: moved by tests, never by time passing."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeEcs:
    """In-memory ECS with the methods ``EcsGateway`` has; services are scripted by tests.

    UpdateService starts a PRIMARY IN_PROGRESS deployment and demotes the old
    one to ACTIVE, as ECS's rolling update does; ``complete``, ``fail_tasks``
    and ``breaker_rolls_back`` move a rollout along.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.tds: dict[str, TaskDefinition] = {}
        self.services: dict[str, ServiceState] = {}
        self.calls: list[str] = []
        self.described: list[str] = []
        """Each revision DescribeTaskDefinition was asked for (kept apart from ``calls``)."""
        self.describe_error: Exception | None = None
        self.stopped: dict[str, list[str]] = {}
        """Deployment id -> its stopped tasks' lines, newest first (scripted by tests)."""
        self._deployments = 0

    # -- arranging ---------------------------------------------------------------

    def add_service(self, name: str, app: str = V1, tags: Mapping[str, str] = ()) -> ServiceState:
        td = self._register(name, {"app": app, "sidecar": SIDECAR}, {})
        created = self.clock() - timedelta(days=1)
        service = ServiceState(
            arn=f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/{CLUSTER}/{name}",
            cluster=CLUSTER,
            name=name,
            status="ACTIVE",
            task_definition=td.arn,
            desired_count=2,
            running_count=2,
            deployments=(self._deployment(td.arn, RolloutState.COMPLETED, created),),
            tags=dict(tags),
        )
        self.services[name] = service
        return service

    def complete(self, name: str) -> None:
        """The PRIMARY deployment finishes: every task running, older deployments drained."""
        service = self.services[name]
        primary = dataclasses.replace(
            service.primary,
            rollout_state=RolloutState.COMPLETED,
            running_count=service.desired_count,
            updated_at=self.clock(),
        )
        self._set(name, deployments=(primary,), running_count=service.desired_count)

    def fail_tasks(self, name: str, failed: int) -> None:
        service = self.services[name]
        primary = dataclasses.replace(service.primary, failed_tasks=failed)
        others = tuple(d for d in service.deployments if d is not service.primary)
        self._set(name, deployments=(primary, *others))

    def breaker_rolls_back(self, name: str) -> None:
        """ECS's circuit breaker fails the PRIMARY and starts a deployment of the one before."""
        service = self.services[name]
        failed = dataclasses.replace(
            service.primary,
            status=DeploymentStatus.ACTIVE,
            rollout_state=RolloutState.FAILED,
            rollout_state_reason="tasks failed to start",
        )
        previous = next(d for d in service.deployments if d is not service.primary)
        back = self._deployment(previous.task_definition, RolloutState.IN_PROGRESS, self.clock())
        self._set(name, task_definition=back.task_definition, deployments=(back, failed))

    def tags(self, name: str) -> dict[str, str]:
        return dict(self.services[name].tags)

    # -- the EcsGateway surface ---------------------------------------------------

    def describe_services(
        self, cluster: str, names: list[str]
    ) -> dict[str, ServiceState | ServiceMissing]:
        self.calls.append("DescribeServices")
        if self.describe_error is not None:
            raise self.describe_error
        found: dict[str, ServiceState | ServiceMissing] = {}
        for name in names:
            service = self.services.get(name)
            found[name] = (
                dataclasses.replace(service, observed_at=self.clock())
                if service
                else ServiceMissing(cluster, name, "MISSING")
            )
        return found

    def task_definition(self, arn: str) -> TaskDefinition:
        self.described.append(arn)
        return self.tds[arn]

    def prepare_clone(
        self,
        base: TaskDefinitionArn,
        images: Mapping[str, str],
        release: str,
        fingerprint: str,
        commit: str | None,
    ) -> PreparedClone:
        old = self.tds[base]
        merged = {**old.images, **images}
        revision = RevisionMemory(
            release, Fingerprint(fingerprint), _content(old.family, merged), commit or ""
        )
        return PreparedClone(old.family, {"images": merged}, revision)

    def reusable(self, arn: TaskDefinitionArn, clone: PreparedClone) -> bool:
        td = self.tds[arn]
        owner = RevisionMemory.read(td.tags).release
        return td.content == clone.revision.content and owner in ("", clone.revision.release)

    def find_revision(self, clone: PreparedClone) -> TaskDefinitionArn | None:
        self.calls.append("FindRevision")
        for td in sorted(self.tds.values(), key=lambda t: -t.revision):
            found = RevisionMemory.read(td.tags)
            if td.family == clone.family and (found.release, found.content) == (
                clone.revision.release,
                clone.revision.content,
            ):
                return td.arn
        return None

    def register(self, clone: PreparedClone) -> TaskDefinition:
        self.calls.append("RegisterTaskDefinition")
        return self._register(clone.family, clone.request["images"], clone.revision.tags())

    def stopped_tasks(self, cluster: str, deployment_id: str) -> StoppedTasks:
        self.calls.append("ListTasks")
        return StoppedTasks(tuple(self.stopped.get(deployment_id, ())))

    def service_deployments(self, cluster: str, service: str) -> None:
        return None

    def update_service(
        self, cluster: str, service: str, task_definition: str, deployment_configuration: Any = None
    ) -> str:
        self.calls.append("UpdateService")
        state = self.services[service]
        demoted = tuple(
            dataclasses.replace(d, status=DeploymentStatus.ACTIVE) for d in state.deployments
        )
        primary = self._deployment(
            TaskDefinitionArn(task_definition), RolloutState.IN_PROGRESS, self.clock()
        )
        self._set(service, task_definition=primary.task_definition, deployments=(primary, *demoted))
        return primary.id

    def tag_service(self, service_arn: str, tags: Mapping[str, str]) -> None:
        self.calls.append("TagResource")
        name = service_arn.rsplit("/", 1)[-1]
        self._set(name, tags={**self.services[name].tags, **tags})

    def tag_task_definition(self, arn: str, tags: Mapping[str, str]) -> None:
        self.calls.append("TagResource(task-definition)")
        td = self.tds[arn]
        self.tds[arn] = dataclasses.replace(td, tags={**td.tags, **tags})

    def resource_tags(self, arn: str) -> dict[str, str]:
        self.calls.append("ListTagsForResource")
        return dict(self.tds[arn].tags)

    def newest_revisions(self, family: str) -> list[TaskDefinitionArn]:
        self.calls.append("ListTaskDefinitions")
        found = [td for td in self.tds.values() if td.family == family]
        return [td.arn for td in sorted(found, key=lambda td: -td.revision)]

    def untag_service(self, service_arn: str, keys: list[str]) -> None:
        self.calls.append("UntagResource")
        name = service_arn.rsplit("/", 1)[-1]
        self._set(name, tags={k: v for k, v in self.services[name].tags.items() if k not in keys})

    # -- internals -----------------------------------------------------------------

    def _register(
        self, family: str, images: Mapping[str, str], tags: Mapping[str, str]
    ) -> TaskDefinition:
        revision = 1 + sum(1 for td in self.tds.values() if td.family == family)
        arn = TaskDefinitionArn(
            f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{family}:{revision}"
        )
        td = TaskDefinition(
            arn, family, revision, dict(images), dict(tags), _content(family, images)
        )
        self.tds[arn] = td
        return td

    def _deployment(self, td: TaskDefinitionArn, state: RolloutState, at: datetime) -> Deployment:
        self._deployments += 1
        return Deployment(
            id=f"ecs-svc/{self._deployments:019d}",
            status=DeploymentStatus.PRIMARY,
            task_definition=td,
            rollout_state=state,
            rollout_state_reason="",
            desired_count=2,
            running_count=2 if state is RolloutState.COMPLETED else 0,
            pending_count=0,
            failed_tasks=0,
            created_at=at,
            updated_at=at,
        )

    def _set(self, name: str, **changes: Any) -> None:
        self.services[name] = dataclasses.replace(self.services[name], **changes)


def _content(family: str, images: Mapping[str, str]) -> str:
    return hashlib.sha256(repr((family, sorted(images.items()))).encode()).hexdigest()[:24]


def release_doc(name: str, app: str, **spec: Any) -> dict[str, Any]:
    rollout = {"timeoutSeconds": 600, "bakeSeconds": 60, "maxFailedTasks": 1}
    rollout.update(spec.pop("rollout", {}))
    return {
        "apiVersion": "ecsop.dev/v1",
        "kind": "ServiceRelease",
        "metadata": {"name": name},
        "spec": {
            "cluster": CLUSTER,
            "service": name,
            "containers": {"app": app},
            "rollout": rollout,
            **spec,
        },
    }


class World:
    """A Controller over FakeEcs, its metrics registry and its spec directory."""

    def __init__(self, tmp_path: Path, listener: DecisionListener | None = None) -> None:
        self.specs = tmp_path / "specs"
        self.specs.mkdir()
        self.clock = Clock()
        self.ecs = FakeEcs(self.clock)
        self.start(listener)

    def start(self, listener: DecisionListener | None = None) -> None:
        """A daemon process: fresh status, metrics and memory over the same ECS and specs."""
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        settings = ControllerSettings(
            specs=self.specs, default_region="us-east-1", active_poll_seconds=5.0
        )
        self.controller = Controller(
            settings,
            lambda region, role: self.ecs,
            self.metrics,
            clock=self.clock,
            listener=listener,
        )
        self.controller.reload_specs()

    def write(self, name: str, app: str, **spec: Any) -> None:
        text = yaml.safe_dump(release_doc(name, app, **spec))
        (self.specs / f"{name}.yaml").write_text(text)
        self.controller.reload_specs()

    def write_raw(self, file: str, text: str) -> None:
        (self.specs / file).write_text(text)
        self.controller.reload_specs()

    def remove(self, name: str) -> None:
        (self.specs / f"{name}.yaml").unlink()
        self.controller.reload_specs()

    def reconcile(self, name: str = "shop") -> float | None:
        return self.controller.reconcile(name)

    def status(self, name: str = "shop") -> Any:
        status = self.controller.statuses.get(name)
        assert status is not None
        return status

    def phase(self, name: str = "shop") -> Phase:
        return self.status(name).phase

    def sample(self, metric: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric, labels)

    # -- whole stories -------------------------------------------------------------

    def adopted(self, name: str = "shop") -> None:
        """A service on V1, adopted: last-good recorded, Synced."""
        self.ecs.add_service(name)
        self.write(name, V1)
        self.reconcile(name)
        assert self.phase(name) is Phase.SYNCED
        assert self.ecs.tags(name)[TAG_LAST_GOOD]

    def deploying(self, app: str, name: str = "shop", **spec: Any) -> None:
        """Adopted on V1, then the spec moves to ``app``: one pass deploys it."""
        self.adopted(name)
        self.write(name, app, **spec)
        self.reconcile(name)
        assert self.phase(name) is Phase.PROGRESSING
        assert self.ecs.calls.count("UpdateService") == 1
