"""Observing services cheaply and never stale: batched DescribeServices, versioned by writes.

This plays the part of an informer's cache in client-go. At each resync the
controller calls ``refresh`` for every release: services are described ten at
a time, per (region, role, cluster), the cheapest ECS allows. Each batched
observation is then *taken* once by the worker that reconciles that release;
any other pass (a rollout being watched, a spec change, a retry after an
error) describes its one service afresh.

An observation must never be older than ecsop's own last write to that
service, or a pass acts twice on one change (a deploy landing while a batched
refresh is in flight was deployed twice). So every write calls ``wrote``,
which bumps the service's generation; a batch keeps only the answers for
services whose generation did not move while it was in flight, and an entry
is used only if its generation is still current. Versions and dates are per
DescribeServices call of ten, not per refresh: a write during a long refresh
discards only the answers read before it, and each entry is as old as its own
answer (a long refresh neither expires its own results nor makes its first
answers look younger than they are).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ecsop.aws.ecs import DESCRIBE_SERVICES_BATCH, EcsGateway
from ecsop.decision.ecs_state import ServiceMissing, ServiceState
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.model import ServiceIdentity

GatewayFor = Callable[[str, str | None], EcsGateway]
"""(region, role ARN) -> the gateway for that account and region."""

Key = ServiceIdentity


@dataclass(frozen=True)
class _Entry:
    state: ServiceState | ServiceMissing
    answered_at: float
    """Monotonic time of the DescribeServices answer it came from."""
    generation: int


class ServiceCache:
    def __init__(
        self,
        gateway_for: GatewayFor,
        max_age_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gateway_for = gateway_for
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}
        self._generations: dict[Key, int] = defaultdict(int)

    def refresh(
        self,
        releases: Iterable[LoadedRelease],
        on_batch: Callable[[list[LoadedRelease]], None] = lambda batch: None,
    ) -> list[Exception]:
        """Describe every release's service in batches; return the errors met (per batch).

        ``on_batch`` hears each batch as soon as its answers are cached, so the
        caller can reconcile them while the rest are described: an answer is then
        taken seconds after it came, not a whole refresh later (at 10,000
        releases a refresh takes longer than an answer stays fresh).
        """
        groups: dict[tuple[str, str | None, str], list[LoadedRelease]] = defaultdict(list)
        for loaded in releases:
            groups[
                (loaded.region, loaded.release.spec.role_arn, loaded.release.spec.cluster)
            ].append(loaded)
        errors: list[Exception] = []
        for (region, role, cluster), members in groups.items():
            for start in range(0, len(members), DESCRIBE_SERVICES_BATCH):
                batch = members[start : start + DESCRIBE_SERVICES_BATCH]
                error = self._describe(region, role, cluster, batch)
                if error is not None:  # one account's failure must not stop the others
                    errors.append(error)
                    break
                on_batch(batch)
        return errors

    def _describe(
        self, region: str, role: str | None, cluster: str, batch: list[LoadedRelease]
    ) -> Exception | None:
        """One DescribeServices: keep each answer unless ecsop wrote to it meanwhile.

        Versioned and dated per call, not per refresh: a write during a long
        refresh discards only the answers read before it, and an answer's age
        is its own.
        """
        with self._lock:
            before = {m.target: self._generations[m.target] for m in batch}
        try:
            found = self._gateway_for(region, role).describe_services(
                cluster, [m.release.spec.service for m in batch]
            )
        except Exception as exc:
            return exc
        answered = self._monotonic()
        with self._lock:
            for member in batch:
                state = found.get(member.release.spec.service)
                generation = self._generations[member.target]
                if state is not None and generation == before[member.target]:
                    self._entries[member.target] = _Entry(state, answered, generation)
        return None

    def observe(self, loaded: LoadedRelease) -> ServiceState | ServiceMissing:
        """The batched observation if one is waiting, fresh and current, else a fresh describe."""
        with self._lock:
            entry = self._entries.pop(loaded.target, None)
            current = self._generations[loaded.target]
        if (
            entry is not None
            and entry.generation == current
            and self._monotonic() - entry.answered_at <= self._max_age
        ):
            return entry.state
        spec = loaded.release.spec
        found = self._gateway_for(loaded.region, spec.role_arn).describe_services(
            spec.cluster, [spec.service]
        )
        state = found.get(spec.service)
        return state if state is not None else ServiceMissing(spec.cluster, spec.service, "none")

    def peek(self, loaded: LoadedRelease) -> ServiceState | ServiceMissing:
        """Another release's service, for a check of this one (promotion, dependsOn).

        A waiting batched answer, fresh and current, is read and left for that
        release's own pass; otherwise one DescribeServices, not kept.
        """
        with self._lock:
            entry = self._entries.get(loaded.target)
            current = self._generations[loaded.target]
        if (
            entry is not None
            and entry.generation == current
            and self._monotonic() - entry.answered_at <= self._max_age
        ):
            return entry.state
        spec = loaded.release.spec
        found = self._gateway_for(loaded.region, spec.role_arn).describe_services(
            spec.cluster, [spec.service]
        )
        state = found.get(spec.service)
        return state if state is not None else ServiceMissing(spec.cluster, spec.service, "none")

    def generation(self, loaded: LoadedRelease) -> int:
        """How many writes and invalidations this service has had: an observation made
        under one generation is outdated by the next."""
        with self._lock:
            return self._generations[loaded.target]

    def take_if_unchanged(self, loaded: LoadedRelease, seen: ServiceState, generation: int) -> bool:
        """Whether the batched answer waiting for this release says what ``seen`` did,
        with no write or invalidation since ``generation``; if so it is consumed here,
        the pass it was for being unneeded (``ecsop.controller.settled``)."""
        with self._lock:
            entry = self._entries.get(loaded.target)
            if (
                entry is None
                or entry.generation != generation
                or self._generations[loaded.target] != generation
                or not isinstance(entry.state, ServiceState)
                or not entry.state.says_what(seen)
            ):
                return False
            del self._entries[loaded.target]
            return True

    def wrote(self, loaded: LoadedRelease) -> None:
        """ecsop is about to write to (or just wrote to) this service: what was read is stale."""
        with self._lock:
            self._generations[loaded.target] += 1
            self._entries.pop(loaded.target, None)

    invalidate = wrote
    """A spec change makes a waiting observation unfit too (same effect)."""
