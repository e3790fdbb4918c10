"""The simulator's small parts: the clock, image plans, the breaker threshold."""

from __future__ import annotations

import random

import pytest
from sandbox_harness import CRASH, GOOD, IMAGES, PULL_ERROR, UNHEALTHY

from ecsop.sandbox.behaviours import ContainerImage, ImageCatalog
from ecsop.sandbox.breaker import threshold as breaker_threshold
from ecsop.sandbox.clock import SimClock
from ecsop.sandbox.scenario import ImageBehaviour


def test_frozen_clock_steps_by_hand() -> None:
    clock = SimClock(speed=0, start=1000.0)
    assert clock.now() == 1000.0
    clock.advance(30)
    assert clock.now() == 1030.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_clock_speed_scales_real_time() -> None:
    clock = SimClock(speed=1000, start=0.0)
    first = clock.now()
    second = clock.now()
    assert second >= first
    clock.speed = 0
    frozen = clock.now()
    assert clock.now() == frozen


def catalog() -> ImageCatalog:
    return ImageCatalog({k: ImageBehaviour.model_validate(v) for k, v in IMAGES.items()})


def containers(*images: str, essential: bool = True) -> list[ContainerImage]:
    return [ContainerImage(f"c{i}", image, essential, False) for i, image in enumerate(images)]


@pytest.mark.parametrize(
    ("images", "expect"),
    [
        pytest.param((GOOD, CRASH), "crash", id="crash-beats-healthy"),
        pytest.param((UNHEALTHY, PULL_ERROR), "pull", id="pull-error-beats-unhealthy"),
        pytest.param((GOOD, "nowhere/x@sha256:" + "0" * 64), "pull", id="unknown-fails-to-pull"),
        pytest.param((GOOD, UNHEALTHY), "unhealthy", id="unhealthy"),
        pytest.param((GOOD,), "healthy", id="healthy"),
    ],
)
def test_worst_behaviour_wins(images: tuple[str, ...], expect: str) -> None:
    plan = catalog().plan(containers(*images), random.Random(0))
    outcome = (
        "pull"
        if plan.pull_error
        else "crash"
        if plan.crash_after is not None
        else "unhealthy"
        if plan.unhealthy
        else "healthy"
    )
    assert outcome == expect


def test_non_essential_containers_do_not_decide() -> None:
    tasks = [*containers(GOOD), ContainerImage("sidecar", CRASH, False, False)]
    assert catalog().plan(tasks, random.Random(0)).crash_after is None


def test_images_match_by_digest() -> None:
    tagged = GOOD.replace("@sha256:", ":v1@sha256:")
    assert catalog().lookup(tagged) is not None


@pytest.mark.parametrize(
    ("desired", "config", "threshold"),
    [
        pytest.param(1, {}, 3, id="minimum-3"),
        pytest.param(10, {}, 5, id="half"),
        pytest.param(11, {}, 6, id="half-rounded-up"),
        pytest.param(1000, {}, 200, id="maximum-200"),
        pytest.param(10, {"thresholdConfiguration": {"type": "COUNT", "value": 2}}, 2, id="count"),
        pytest.param(
            1000,
            {"thresholdConfiguration": {"type": "UNBOUNDED_PERCENT", "value": 50}},
            500,
            id="unbounded",
        ),
    ],
)
def test_breaker_threshold(desired: int, config: dict[str, object], threshold: int) -> None:
    assert breaker_threshold(desired, config) == threshold
