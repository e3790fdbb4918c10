"""Scenario sections for one-off tasks and application metrics.

Kept apart from ``scenario`` so that file only gains the fields that hold
these models:

- ``commands``: what a one-off task's container does (RunTask), matched by
  image and command (``oneoff``);
- ``metrics``: where the per-task Prometheus endpoints are announced and how
  much traffic a serving task sees (``app_metrics``);
- ``events``: how the ECS events the simulator publishes to EventBridge are
  delivered: late, lost or twice (``ecs_eventbridge``).

Formats are documented for users in ``docs/sandbox.md``.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class CommandBehaviour(_Model):
    """What a container of a one-off task does when it runs ``command`` in ``image``.

    ``image`` matches like the ``images`` table (exact reference, else digest);
    ``command`` matches the container's effective command (the RunTask override,
    else the task definition's ``command``) exactly; omitted, it matches any
    command of that image not matched by a more specific entry."""

    image: str
    command: list[str] | None = None
    exit_code: int = 0
    """The container's exit code once ``durationSeconds`` have passed in RUNNING."""
    duration_seconds: float = Field(default=5.0, ge=0)
    """Seconds the command runs (a hang: more than any client's timeout)."""
    fail_to_start: bool = False
    """The container cannot start: the task stops before RUNNING with
    ``TaskFailedToStart`` and a ``CannotStartContainerError`` reason."""
    ignores_sigterm: bool = False
    """On StopTask the process ignores SIGTERM and is killed (SIGKILL) after the
    container's ``stopTimeout`` (default 30 s): exit code 137 instead of 143."""


class MetricsOptions(_Model):
    """Per-task application metrics for images with ``errorRate`` or ``latencyMs``."""

    file_sd_path: str | None = None
    """Where to write the Prometheus file-based service discovery file listing the
    live tasks' endpoints (also settable with ``POST /_sandbox/metrics``)."""
    requests_per_second: float = Field(default=10.0, gt=0)
    """Requests each serving task answers per simulated second (images may override)."""
    cloud_watch_namespace: str = "Sandbox/App"
    """Namespace of the per-minute CloudWatch metrics (``PutMetricData``)."""
    cloud_watch: bool = True
    """Put ``RequestCount``, ``5xxCount`` and ``LatencyP99`` every simulated minute."""

    @model_validator(mode="after")
    def _namespace(self) -> Self:
        if not self.cloud_watch_namespace or self.cloud_watch_namespace.startswith("AWS/"):
            raise ValueError("cloudWatchNamespace must be non-empty and not start with 'AWS/'")
        return self


class EventsOptions(_Model):
    """How the ECS events on EventBridge reach the rules' targets (``ecs_eventbridge``).

    EventBridge delivers "at least once" and in no particular order, and an
    event can be late; these let a test make every one of those happen, drawn
    from the scenario's seed (the same scenario loses the same events)."""

    drop_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of events never delivered."""
    delay_seconds: float = Field(default=0.0, ge=0)
    """Simulated seconds every delivered event arrives after it happened."""
    jitter_seconds: float = Field(default=0.0, ge=0)
    """Plus a uniform draw of up to this many simulated seconds: events overtake each other."""
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of delivered events delivered a second time."""
