"""``spec.rollout.strategy``: how ECS moves traffic to a new revision.

Rolling, blue/green (with test-traffic checks), canary and linear, as ECS's
own deployment strategies name them; ``ecsop.decision.strategy`` turns the
choice into the service's ``deploymentConfiguration``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic.alias_generators import to_camel

from ecsop.spec.http_check import HttpCheck
from ecsop.spec.strict_model import StrictModel


def _tenths(value: float) -> float:
    """ECS takes traffic percentages in multiples of 0.1."""
    if abs(value * 10 - round(value * 10)) > 1e-9:
        raise ValueError(f"{value} is not a multiple of 0.1")
    return value


class TestTraffic(StrictModel):
    """Checks green must pass on the test listener before any production traffic reaches it.

    ecsop pauses the service deployment after ECS shifts test traffic (a ``PAUSE``
    lifecycle hook at ``POST_TEST_TRAFFIC_SHIFT``), runs these checks, then lets ECS
    continue, or rolls back.
    """

    __test__ = False  # not a pytest test class, whatever its name

    http_checks: list[HttpCheck] = Field(
        min_length=1,
        max_length=10,
        description="HTTP requests to the test listener that green must answer as expected.",
    )
    passes_required: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive passes each check needs before production traffic may move.",
    )
    timeout_minutes: int = Field(
        default=30,
        ge=1,
        le=20160,
        description="If the checks have not been judged this long after test traffic moved "
        "(ecsop down, say), ECS rolls back by itself.",
    )


class BlueGreen(StrictModel):
    bake_minutes: int = Field(
        default=10,
        ge=0,
        le=1440,
        description="After production traffic moved to green, blue is kept this long for an "
        "instant rollback (ECS bakeTimeInMinutes).",
    )
    test_traffic: TestTraffic | None = Field(
        default=None, description="Judge green on the test listener before production moves."
    )


class Canary(StrictModel):
    percent: Annotated[float, AfterValidator(_tenths)] = Field(
        default=5.0,
        ge=0.1,
        le=100.0,
        description="Share of production traffic green gets first (ECS canaryPercent, "
        "multiples of 0.1).",
    )
    bake_minutes: int = Field(
        default=10,
        ge=0,
        le=1440,
        description="How long the canary runs before the rest of the traffic moves "
        "(ECS canaryBakeTimeInMinutes).",
    )


class Linear(StrictModel):
    step_percent: Annotated[float, AfterValidator(_tenths)] = Field(
        default=10.0,
        ge=3.0,
        le=100.0,
        description="Share of production traffic moved per step (ECS stepPercent, multiples "
        "of 0.1).",
    )
    step_bake_minutes: int = Field(
        default=6,
        ge=0,
        le=1440,
        description="Wait between steps (ECS stepBakeTimeInMinutes).",
    )


class Rolling(StrictModel):
    """ECS's rolling update, made explicit."""


_STRATEGIES = ("rolling", "blue_green", "canary", "linear")


class Strategy(StrictModel):
    """How ECS moves traffic to the new revision: exactly one of the four."""

    rolling: Rolling | None = None
    blue_green: BlueGreen | None = None
    canary: Canary | None = None
    linear: Linear | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        chosen = [name for name in _STRATEGIES if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "strategy takes exactly one of rolling, blueGreen, canary, linear"
                + (f" (got {', '.join(to_camel(c) for c in chosen)})" if chosen else "")
            )
        return self

    @property
    def name(self) -> str:
        """ECS's name of the strategy: ROLLING, BLUE_GREEN, CANARY or LINEAR."""
        for name in _STRATEGIES:
            if getattr(self, name) is not None:
                return name.upper()
        raise AssertionError("validated: exactly one")

    @property
    def shifts_traffic(self) -> bool:
        """Blue/green, canary and linear need the load balancer's advanced configuration."""
        return self.rolling is None
