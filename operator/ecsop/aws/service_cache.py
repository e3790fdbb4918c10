"""Observing services cheaply: batched DescribeServices, shared by the workers.

This plays the part of an informer's cache in client-go. At each resync the
controller calls ``refresh`` for every release: services are described ten at
a time, per (region, role, cluster), which is the cheapest ECS allows. Each
batched observation is then *taken* once by the worker that reconciles that
release; any other pass (a rollout being watched, a spec change, a retry after
an error) describes its one service afresh, because acting on stale state is
how controllers fight each other.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ecsop.aws.ecs import EcsGateway
from ecsop.decision.ecs_state import TAG_LAST_GOOD, ServiceMissing, ServiceState, TaskDefinitionArn
from ecsop.decision.observation import Observation
from ecsop.spec.loader import LoadedRelease

GatewayFor = Callable[[str, str | None], EcsGateway]
"""(region, role ARN) -> the gateway for that account and region."""

Key = tuple[str, str, str]


@dataclass(frozen=True)
class _Entry:
    state: ServiceState | ServiceMissing
    taken_by: float
    """Monotonic deadline after which the entry is too old to use."""


class ServiceObserver:
    def __init__(self, gateway_for: GatewayFor, max_age_seconds: float) -> None:
        self._gateway_for = gateway_for
        self._max_age = max_age_seconds
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}

    def refresh(self, releases: Iterable[LoadedRelease]) -> list[Exception]:
        """Describe every release's service in batches; return the errors met (per batch)."""
        groups: dict[tuple[str, str | None, str], list[LoadedRelease]] = defaultdict(list)
        for loaded in releases:
            groups[
                (loaded.region, loaded.release.spec.role_arn, loaded.release.spec.cluster)
            ].append(loaded)
        errors: list[Exception] = []
        deadline = time.monotonic() + self._max_age
        for (region, role, cluster), members in groups.items():
            try:
                found = self._gateway_for(region, role).describe_services(
                    cluster, [m.release.spec.service for m in members]
                )
            except Exception as exc:  # one account's failure must not stop the others
                errors.append(exc)
                continue
            with self._lock:
                for member in members:
                    state = found.get(member.release.spec.service)
                    if state is not None:
                        self._entries[member.target] = _Entry(state, deadline)
        return errors

    def observe(self, loaded: LoadedRelease) -> ServiceState | ServiceMissing:
        """The batched observation if one is waiting and fresh, else a fresh describe."""
        with self._lock:
            entry = self._entries.pop(loaded.target, None)
        if entry is not None and entry.taken_by >= time.monotonic():
            return entry.state
        spec = loaded.release.spec
        found = self._gateway_for(loaded.region, spec.role_arn).describe_services(
            spec.cluster, [spec.service]
        )
        return found.get(spec.service) or ServiceMissing(spec.cluster, spec.service, "not returned")

    def invalidate(self, loaded: LoadedRelease) -> None:
        with self._lock:
            self._entries.pop(loaded.target, None)


def observation_of(gateway: EcsGateway, state: ServiceState) -> Observation:
    """The decision's input for ``state``: it plus the task definitions it references.

    Task definitions are immutable and cached by the gateway, so in steady
    state this costs no AWS call.
    """
    arns = {state.task_definition, *(d.task_definition for d in state.deployments)}
    if last_good := state.tags.get(TAG_LAST_GOOD):
        arns.add(TaskDefinitionArn(last_good))
    return Observation(
        service=state, task_definitions={arn: gateway.task_definition(arn) for arn in arns}
    )
