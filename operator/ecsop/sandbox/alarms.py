"""CloudWatch alarms the scenario names, kept in moto's CloudWatch backend.

The simulator only flips their state: an ``alarm`` image that is serving keeps
its alarm in ALARM; when the last such task stops the alarm returns to OK.
Reference counting makes several services or tasks sharing one alarm behave.
DescribeAlarms and the rest of the API are moto's; the state's timestamps
(``StateUpdatedTimestamp``, ``StateTransitionedTimestamp``: "the date and
time that the alarm's StateValue most recently changed", CloudWatch API
Reference, MetricAlarm) are set on the simulated clock, like every other time the sandbox answers:
at the instant the task that flips the alarm does, or when a SetAlarmState or
PutMetricAlarm call arrives (``install_clock`` stamps moto's own changes).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def stamp(alarm: Any, before: str | None, at: float) -> None:
    """Date ``alarm``'s state change at ``at`` (simulated): updated always, transitioned
    only when the value changed (``before`` is the value it had)."""
    when = datetime.fromtimestamp(at, UTC)
    alarm.state_updated_timestamp = when
    if alarm.state_value != before:
        # Not a field moto keeps; its serializer answers any attribute the shape names.
        alarm.state_transitioned_timestamp = when


def install_clock(backend: Any, now: Callable[[], float]) -> None:
    """Make ``backend``'s SetAlarmState and PutMetricAlarm date their changes on ``now``.

    Installed once per backend (moto's backends outlive a sandbox); a later
    sandbox of the same account and region replaces the clock.
    """
    backend._sandbox_alarm_clock = now
    if getattr(backend, "_sandbox_alarm_stamps", False):
        return
    set_alarm_state = backend.set_alarm_state
    put_metric_alarm = backend.put_metric_alarm

    def set_state(alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        alarm = backend.alarms.get(alarm_name)
        before = None if alarm is None else str(alarm.state_value)
        set_alarm_state(alarm_name, reason, reason_data, state_value)
        stamp(backend.alarms[alarm_name], before, backend._sandbox_alarm_clock())

    def put(*args: Any, **kwargs: Any) -> Any:
        alarm = put_metric_alarm(*args, **kwargs)
        stamp(alarm, None, backend._sandbox_alarm_clock())  # a new alarm object, state OK
        return alarm

    setattr(backend, "set_alarm_state", set_state)  # noqa: B010
    setattr(backend, "put_metric_alarm", put)  # noqa: B010
    setattr(backend, "_sandbox_alarm_stamps", True)  # noqa: B010


class Alarms:
    def __init__(self, account_id: str, region: str, now: Callable[[], float]) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        self._backend = cloudwatch_backends[account_id][region]
        install_clock(self._backend, now)
        self._trippers: Counter[str] = Counter()

    def create(self, name: str, at: float) -> None:
        self._backend.put_metric_alarm(
            name=name,
            namespace="AWS/ApplicationELB",
            metric_name="HTTPCode_Target_5XX_Count",
            comparison_operator="GreaterThanThreshold",
            evaluation_periods=1,
            period=60,
            threshold=0.0,
            statistic="Sum",
            description=f"ecsop sandbox alarm {name}",
            dimensions=[],
            alarm_actions=[],
            treat_missing_data="notBreaching",
        )
        self._set(name, "OK", "Threshold Crossed: no datapoints were breaching the threshold", at)

    def exists(self, name: str) -> bool:
        return name in self._backend.alarms

    def state(self, name: str) -> str | None:
        alarm = self._backend.alarms.get(name)
        return None if alarm is None else str(alarm.state_value)

    def evaluation_seconds(self, name: str) -> float:
        """The window the alarm evaluates, ``Period`` x ``EvaluationPeriods``
        (0 if it does not exist)."""
        alarm = self._backend.alarms.get(name)
        if alarm is None:
            return 0.0
        return float(alarm.period) * int(alarm.evaluation_periods)

    def trip(self, name: str, at: float) -> None:
        self._trippers[name] += 1
        if self._trippers[name] == 1 and self.exists(name):
            reason = "Threshold Crossed: 1 datapoint [12.0] was greater than 0.0"
            self._set(name, "ALARM", reason, at)

    def release(self, name: str, at: float) -> None:
        if self._trippers[name] <= 0:
            return
        self._trippers[name] -= 1
        if self._trippers[name] == 0 and self.exists(name):
            reason = "Threshold Crossed: 1 datapoint [0.0] was not greater than 0.0"
            self._set(name, "OK", reason, at)

    def _set(self, name: str, state: str, reason: str, at: float) -> None:
        """Change the state as of ``at``, the simulated instant of what changed it."""
        before = str(self._backend.alarms[name].state_value)
        self._backend.set_alarm_state(name, reason, json.dumps({"version": "1.0"}), state)
        stamp(self._backend.alarms[name], before, at)  # over the clock's "now"
