"""Which image does what: from a task's container images to the task's fate.

The scenario maps image references to behaviours; this module turns the images
of a task's essential containers into one ``TaskPlan`` at launch: whether the
pull fails, when (and with which exit code) a container crashes, when health
checks pass or fail, and which alarm it trips.  The worst behaviour wins: a
pull error beats a crash, a crash beats failing health checks, and so on.

An image the scenario does not know fails to pull, as on ECS.  Images are
matched by the exact reference first, then by digest (so
``repo@sha256:abc`` and ``repo:tag@sha256:abc`` are the same image), which is
how ECS resolves them too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ecsop.sandbox.scenario import ImageBehaviour
from ecsop.sandbox.traffic import DEFAULT_LATENCY_MS, Traffic


@dataclass(frozen=True)
class ContainerImage:
    name: str
    image: str
    essential: bool
    has_health_check: bool


@dataclass(frozen=True)
class TaskPlan:
    """What will happen to one task, decided when it is launched."""

    pull_error: str | None = None
    """Image that cannot be pulled; the task stops in PENDING."""
    crash_after: float | None = None
    """Seconds after RUNNING when an essential container exits."""
    crash_container: str = ""
    exit_code: int = 1
    unhealthy: bool = False
    """Health checks fail (ELB target, or the container health check)."""
    health_check_codes: str = "[500]"
    start_seconds: float = 0.0
    """Seconds after RUNNING until health checks pass (or fail, when ``unhealthy``)."""
    alarms: tuple[str, ...] = ()
    """Alarm name templates this task trips while it serves."""
    digests: Mapping[str, str] = field(default_factory=dict)
    """Container name -> image digest reported once it runs."""
    traffic: Traffic | None = None
    """How it serves, when an essential image sets ``errorRate`` or ``latencyMs``
    (``app_metrics``); ``requests_per_second`` 0 means the scenario's default."""


def image_digest(image: str) -> str:
    """The digest ECS reports: the pinned one, else a stable stand-in for a tag."""
    if "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1]
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


class ImageCatalog:
    """The mutable image -> behaviour table (the control API can add images)."""

    def __init__(self, images: Mapping[str, ImageBehaviour]) -> None:
        self._exact: dict[str, ImageBehaviour] = {}
        self._by_digest: dict[str, ImageBehaviour] = {}
        self.withdrawn: set[str] = set()
        """Digests removed from the registry (``ecr_images``): they fail to pull."""
        self.update(images)

    def update(self, images: Mapping[str, ImageBehaviour]) -> None:
        for ref, behaviour in images.items():
            self._exact[ref] = behaviour
            if "@sha256:" in ref:
                self._by_digest[image_digest(ref)] = behaviour

    def snapshot(self) -> dict[str, ImageBehaviour]:
        return dict(self._exact)

    def lookup(self, image: str) -> ImageBehaviour | None:
        found = self._exact.get(image)
        if found is None and "@sha256:" in image:
            found = self._by_digest.get(image_digest(image))
        return found

    def plan(self, containers: Iterable[ContainerImage], rng: random.Random) -> TaskPlan:
        containers = list(containers)
        digests = {c.name: image_digest(c.image) for c in containers}
        essential = [c for c in containers if c.essential] or containers
        crash: tuple[float, str, int] | None = None
        unhealthy = False
        codes = "[500]"
        start = 0.0
        alarms: list[str] = []
        instrumented: list[ImageBehaviour] = []
        for container in essential:
            behaviour = self.lookup(container.image)
            if (
                behaviour is None
                or behaviour.behavior == "pull-error"
                or digests[container.name] in self.withdrawn
            ):
                return TaskPlan(pull_error=container.image, digests=digests)
            start = max(start, behaviour.effective_start_seconds)
            if behaviour.error_rate is not None or behaviour.latency_ms is not None:
                instrumented.append(behaviour)
            kind = behaviour.behavior
            if kind == "flaky":
                # One draw per flaky container, in container order: the same
                # scenario and seed give the same sequence of fates.
                kind = "crashloop" if rng.random() < behaviour.fail_rate else "healthy"
            if kind == "crashloop":
                candidate = (behaviour.crash_after_seconds, container.name, behaviour.exit_code)
                crash = candidate if crash is None else min(crash, candidate)
            elif kind == "unhealthy":
                unhealthy = True
                codes = behaviour.health_check_codes
            elif kind == "alarm" and behaviour.alarm:
                alarms.append(behaviour.alarm)
        return TaskPlan(
            crash_after=None if crash is None else crash[0],
            crash_container="" if crash is None else crash[1],
            exit_code=1 if crash is None else crash[2],
            unhealthy=unhealthy,
            health_check_codes=codes,
            start_seconds=start,
            alarms=tuple(alarms),
            digests=digests,
            traffic=_traffic(instrumented),
        )


def _traffic(behaviours: list[ImageBehaviour]) -> Traffic | None:
    """The worst error rate and latency of the instrumented essential images."""
    if not behaviours:
        return None
    rates = [b.requests_per_second for b in behaviours if b.requests_per_second is not None]
    return Traffic(
        error_rate=max(b.error_rate or 0.0 for b in behaviours),
        latency_ms=max(b.latency_ms or DEFAULT_LATENCY_MS for b in behaviours),
        requests_per_second=rates[0] if rates else 0.0,
    )
