"""Per-release status with Kubernetes-style conditions.

The controller writes one ``ReleaseStatus`` per pass; ``/status`` and
``ecsop status`` read it. Conditions are derived from the phase by one pure
function (as Argo Rollouts derives its phase), and a condition's
``lastTransitionTime`` moves only when its status flips, as Kubernetes
conventions require, so "Degraded since 10:02" means what it says.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from ecsop.decision.analysis import AnalysisState, Measurement
from ecsop.decision.reasons import Outcome, Phase


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    """"True", "False" or "Unknown", spelled as Kubernetes spells them."""
    reason: str
    message: str
    last_transition_time: datetime


@dataclass(frozen=True, slots=True)
class Rollout:
    """The outcome of the last rollout ecsop judged."""

    outcome: Outcome
    reason: str
    """The failure kind (``ecsop_rollbacks_total``'s label), or ``baked``."""
    detail: str
    at: datetime
    stop_reason: str = ""
    """ECS's reason for the first failed task of the rollout (``lastRollout.stopReason``)."""


@dataclass(frozen=True, slots=True)
class RolloutProgress:
    """Where a traffic-shifting rollout (or its rollback) is, as ECS reports it."""

    strategy: str
    stage: str
    status: str
    production_on_green: float | None = None
    """Percent of production traffic on the new revision."""
    test_on_green: float | None = None
    paused: bool = False
    """ECS waits at ecsop's pause (blue/green test traffic being judged)."""


@dataclass(frozen=True, slots=True)
class AnalysisStatus:
    """An analysis gate of the last rollout judged (``rollout.analysis``), as status shows it."""

    name: str
    state: str
    """``passing``, ``failing`` or ``unknown`` (not green: the release waits)."""
    reason: str
    """Why it fails or is not green; empty while passing."""
    failed_in_a_row: int
    failures_allowed: int
    measurements: tuple[Measurement, ...] = ()
    """The latest measurements (time, verdict, value, detail), oldest first; a value
    JSON cannot hold (+Inf) is null, its detail says it."""

    @classmethod
    def of(cls, state: AnalysisState) -> AnalysisStatus:
        return cls(
            name=state.name,
            state=state.state,
            reason=state.failure_detail if state.failing else state.unknown,
            failed_in_a_row=state.consecutive_failures,
            failures_allowed=state.failures_allowed,
            measurements=tuple(
                m if m.value is None or math.isfinite(m.value) else replace(m, value=None)
                for m in state.measurements
            ),
        )


@dataclass(frozen=True, slots=True)
class StepStatus:
    """A step (``spec.preDeploy`` or ``spec.verify``) whose task runs now."""

    name: str
    kind: str
    """``pre_deploy`` or ``verify``."""
    task: str
    """The task's ARN ("" until RunTask answered)."""
    elapsed_seconds: int
    """Since the task was created, by AWS's clock."""
    timeout_seconds: int


@dataclass(frozen=True)
class ReleaseStatus:
    name: str
    region: str
    cluster: str
    service: str
    file: str
    commit: str | None
    phase: Phase
    reason: str
    message: str
    desired_fingerprint: str = ""
    desired_images: Mapping[str, str] = field(default_factory=dict)
    running_fingerprint: str = ""
    running_images: Mapping[str, str] = field(default_factory=dict)
    running_task_definition: str = ""
    deployment_id: str = ""
    last_good: str = ""
    failed_fingerprint: str = ""
    failed_reason: str = ""
    last_rollout: Rollout | None = None
    rollout: RolloutProgress | None = None
    """Set while a traffic-shifting rollout or rollback is under way."""
    analysis: tuple[AnalysisStatus, ...] = ()
    """The analyses of the rollout judged last (kept once it is over)."""
    conditions: tuple[Condition, ...] = ()
    last_change: datetime | None = None
    """When the phase last changed."""
    updated_at: datetime | None = None
    step: StepStatus | None = None
    """The step running now, if any (``/status``'s ``step``; omitted when none)."""

    def to_json(self) -> dict[str, Any]:
        """The ``/status`` form: a new dict each call, built once per status (memoised:
        at 10,000 releases ``/status`` must not rebuild what did not change)."""
        return dict(self._json)

    @cached_property
    def _json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(self)
        rollout = data.get("lastRollout")
        if rollout is not None and not rollout.get("stopReason"):
            del rollout["stopReason"]  # optional, omitted when empty (Kubernetes' omitempty)
        if data.get("step") is None:
            data.pop("step", None)
        return data


def conditions_for(phase: Phase, reason: str, message: str) -> dict[str, tuple[str, str, str]]:
    """Ready / Progressing / Degraded as (status, reason, message), from the phase alone."""
    ready = phase is Phase.SYNCED
    progressing = phase in (Phase.PROGRESSING, Phase.ROLLING_BACK)
    degraded = phase in (Phase.DEGRADED, Phase.INVALID)
    return {
        "Ready": ("True" if ready else "False", reason, message),
        "Progressing": ("True" if progressing else "False", reason, message),
        "Degraded": ("True" if degraded else "False", reason, message),
    }


def with_conditions(new: ReleaseStatus, old: ReleaseStatus | None, now: datetime) -> ReleaseStatus:
    """Fill conditions and transition times, keeping times of conditions that did not flip."""
    previous = {c.type: c for c in old.conditions} if old else {}
    conditions = []
    for kind, (status, reason, message) in conditions_for(
        new.phase, new.reason, new.message
    ).items():
        before = previous.get(kind)
        since = before.last_transition_time if before and before.status == status else now
        conditions.append(Condition(kind, status, reason, message, since))
    last_change = old.last_change if old and old.phase is new.phase else now
    return replace(new, conditions=tuple(conditions), last_change=last_change, updated_at=now)


class StatusStore:
    """Thread-safe map of release name -> latest status.

    A resync finds most releases as their last pass left them: it only moves
    their ``updatedAt``. That time is kept apart (``seen``) and put into the
    status when one is read, so 10,000 unchanged releases cost a resync a dict
    write each rather than a copy of their status each.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, ReleaseStatus] = {}
        self._seen_at: dict[str, datetime] = {}
        """Releases observed unchanged since their status was put: when, last."""

    def get(self, name: str) -> ReleaseStatus | None:
        with self._lock:
            found = self._items.get(name)
            return None if found is None else self._as_seen(found)

    def put(self, status: ReleaseStatus, now: datetime) -> ReleaseStatus:
        with self._lock:
            stored = with_conditions(status, self._items.get(status.name), now)
            self._items[status.name] = stored
            self._seen_at.pop(status.name, None)
            return stored

    def seen(self, name: str, now: datetime) -> None:
        """The release was observed again and had not changed: only ``updatedAt`` moves."""
        with self._lock:
            if name in self._items:
                self._seen_at[name] = now

    def remove(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)
            self._seen_at.pop(name, None)

    def all(self) -> list[ReleaseStatus]:
        with self._lock:
            return sorted(map(self._as_seen, self._items.values()), key=lambda s: s.name)

    def _as_seen(self, status: ReleaseStatus) -> ReleaseStatus:
        """``status`` with the time it was last seen unchanged since it was put, if it was;
        under ``_lock``."""
        at = self._seen_at.get(status.name)
        return status if at is None else replace(status, updated_at=at)


def _jsonable(value: Any) -> Any:
    """JSON values of a status: dataclass fields camelCased, times in ISO 8601.

    Fields are read directly (no ``dataclasses.asdict``, which deep-copies every
    value); mapping keys are data (container names) and are kept as they are.
    """
    if isinstance(value, str | int | float | bool | None):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    names = _json_names(type(value))
    if names:
        return {key: _jsonable(getattr(value, name)) for name, key in names}
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_NAMES: dict[type, tuple[tuple[str, str], ...]] = {}


def _json_names(kind: type) -> tuple[tuple[str, str], ...]:
    """(field, JSON key) of a dataclass, () for anything else; computed once per type."""
    names = _NAMES.get(kind)
    if names is None:
        names = tuple((f.name, _camel(f.name)) for f in fields(kind)) if is_dataclass(kind) else ()
        _NAMES[kind] = names
    return names


def _camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)
