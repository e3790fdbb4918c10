"""CloudWatch alarms the scenario names, kept in moto's CloudWatch backend.

The simulator only flips their state: an ``alarm`` image that is serving keeps
its alarm in ALARM; when the last such task stops the alarm returns to OK.
Reference counting makes several services or tasks sharing one alarm behave.
DescribeAlarms and the rest of the API are moto's.
"""

from __future__ import annotations

import json
from collections import Counter


class Alarms:
    def __init__(self, account_id: str, region: str) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        self._backend = cloudwatch_backends[account_id][region]
        self._trippers: Counter[str] = Counter()

    def create(self, name: str) -> None:
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
        self._set(name, "OK", "Threshold Crossed: no datapoints were breaching the threshold")

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

    def trip(self, name: str) -> None:
        self._trippers[name] += 1
        if self._trippers[name] == 1 and self.exists(name):
            self._set(name, "ALARM", "Threshold Crossed: 1 datapoint [12.0] was greater than 0.0")

    def release(self, name: str) -> None:
        if self._trippers[name] <= 0:
            return
        self._trippers[name] -= 1
        if self._trippers[name] == 0 and self.exists(name):
            self._set(name, "OK", "Threshold Crossed: 1 datapoint [0.0] was not greater than 0.0")

    def _set(self, name: str, state: str, reason: str) -> None:
        self._backend.set_alarm_state(name, reason, json.dumps({"version": "1.0"}), state)
