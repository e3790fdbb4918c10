"""The release flow in the spec: promotion, deploy windows, and the directory's ReleasePolicy.

Pure models, validated like the rest of the spec (``ecsop.spec.model``):

- ``Promotion``: ``spec.promotion.from``, the releases whose *proven* images
  this one may deploy (``ecsop.decision.release_flow.promotion``);
- ``DeployWindow``: an allow or deny window, a cron ``schedule`` (five
  fields, parsed by croniter: ecsop never parses cron itself), a
  ``durationMinutes`` and a ``timeZone``, with Argo CD's sync-window meaning
  (https://argo-cd.readthedocs.io/en/release-3.3/user-guide/sync_windows/):
  no window, deploy any time; some allow window, deploy only while one is
  open; an open deny window always wins;
- ``ReleasePolicy``: the document of the directory-level policy file
  (``ecsop-policy.yaml``) giving windows to every release whose
  ``metadata.labels`` match its ``selector``.

Cross-document rules (names that exist, no ``dependsOn`` cycle) are the
loader's (``ecsop.spec.loader``).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from croniter import CroniterBadDateError, croniter
from pydantic import Field, field_validator

from ecsop.spec.strict_model import StrictModel

POLICY_KIND = "ReleasePolicy"
POLICY_FILES = ("ecsop-policy.yaml", "ecsop-policy.yml")
"""The directory-level policy file: the only files that may hold ReleasePolicy documents."""
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
"""A release (or policy) name, as ``metadata.name`` (``ecsop.spec.model``)."""
MAX_WINDOW_MINUTES = 366 * 24 * 60
_CRON_PROBE_START = datetime(2000, 1, 1, tzinfo=UTC)
"""Where ``cron_problem`` looks for a schedule's first run (a leap year: 29 February fires)."""
HOST_ZONES = ("localtime",)
"""Zone names that mean the daemon host's zone, not a place: refused (time is AWS's)."""
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class Promotion(StrictModel):
    """Deploy only images every named release has proven (run to last-good after its bake)."""

    from_: list[str] = Field(
        alias="from",
        min_length=1,
        max_length=5,
        description="Releases (metadata.name in this spec directory) that must each have "
        "proven every image this release deploys, matched per container by digest.",
    )

    @field_validator("from_")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        return release_names(names)


class DeployWindow(StrictModel):
    """A time window, recurring on a cron schedule, in which deploys are allowed or denied."""

    kind: Literal["allow", "deny"] = Field(
        description="allow: deploys happen only inside an allow window (when any applies); "
        "deny: no deploy while it is open (deny wins over allow)."
    )
    schedule: str = Field(
        min_length=1,
        max_length=100,
        description="When the window opens: a five-field cron expression (minute hour "
        "day-of-month month day-of-week, e.g. '0 9 * * MON-THU') or @daily, @weekly, ...",
    )
    duration_minutes: int = Field(
        ge=1, le=MAX_WINDOW_MINUTES, description="How long the window stays open, in minutes."
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone the schedule is read in, e.g. Europe/Berlin. Default UTC.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        problem = cron_problem(schedule)
        if problem:
            raise ValueError(problem)
        return schedule

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            if name in HOST_ZONES:
                raise ValueError(name)
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problem = f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
            raise ValueError(problem) from None
        return name

    def describe(self) -> str:
        """``deny window '0 17 * * FRI' (3840 min, Europe/Paris)``, for messages."""
        return (
            f"{self.kind} window {self.schedule!r} ({self.duration_minutes} min, {self.time_zone})"
        )


class Selector(StrictModel):
    match_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Releases whose metadata.labels contain every one of these pairs; "
        "empty: every release.",
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels.items())


class PolicyMetadata(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Unique policy name.")


class PolicySpec(StrictModel):
    selector: Selector = Field(description="Which releases the policy applies to.")
    deploy_windows: list[DeployWindow] = Field(
        min_length=1, max_length=50, description="Windows every selected release observes."
    )


class ReleasePolicy(StrictModel):
    """Deploy windows for every release a label selector picks (``ecsop-policy.yaml``)."""

    api_version: Literal["ecsop.dev/v1"] = Field(description="Always ecsop.dev/v1.")
    kind: Literal["ReleasePolicy"] = Field(description="Always ReleasePolicy.")
    metadata: PolicyMetadata
    spec: PolicySpec

    @property
    def name(self) -> str:
        return self.metadata.name


def cron_problem(schedule: str) -> str | None:
    """What is wrong with a window's cron schedule, or None (croniter judges the fields)."""
    text = schedule.strip()
    if text in CRON_MACROS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return (
            f"{schedule!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week) or an @daily-style macro"
        )
    if not croniter.is_valid(text):
        return f"{schedule!r} is not a valid cron expression"
    try:  # valid fields can still name no date ('0 0 31 2 *'): croniter then finds no run
        croniter(text, _CRON_PROBE_START).get_next(datetime)
    except CroniterBadDateError:
        return f"{schedule!r} never fires: no date matches its day-of-month and month"
    return None


def release_names(names: list[str]) -> list[str]:
    """Validate a list of release names (``promotion.from``, ``dependsOn``)."""
    for name in names:
        if not re.match(NAME_PATTERN, name) or len(name) > 63:
            raise ValueError(f"{name!r} is not a release name (metadata.name)")
    if len(set(names)) != len(names):
        raise ValueError("release names must not repeat")
    return names


def windows_for(
    labels: Mapping[str, str], policies: tuple[ReleasePolicy, ...]
) -> tuple[DeployWindow, ...]:
    """Every window the directory's policies give a release with ``labels``."""
    return tuple(
        window
        for policy in policies
        if policy.spec.selector.matches(labels)
        for window in policy.spec.deploy_windows
    )
