"""CloudWatch alarms the scenario names, kept in moto's CloudWatch backend.

The simulator only flips their state: an ``alarm`` image that is serving keeps
its alarm in ALARM; when the last such task stops the alarm returns to OK.
Reference counting makes several services or tasks sharing one alarm behave.
DescribeAlarms and the rest of the API are moto's; the state's timestamps
(``StateUpdatedTimestamp``, ``StateTransitionedTimestamp``: "the date and
time that the alarm's StateValue most recently changed", CloudWatch API
Reference, MetricAlarm) are set on the simulated clock, at the instant the
task that flips the alarm does, like every other time the sandbox answers.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime


class Alarms:
    def __init__(self, account_id: str, region: str) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        self._backend = cloudwatch_backends[account_id][region]
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
        self._backend.set_alarm_state(name, reason, json.dumps({"version": "1.0"}), state)
        alarm = self._backend.alarms[name]
        when = datetime.fromtimestamp(at, UTC)
        alarm.state_updated_timestamp = when
        # Not a field moto keeps; its serializer answers any attribute the shape names.
        alarm.state_transitioned_timestamp = when  # type: ignore[attr-defined]
