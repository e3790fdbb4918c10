"""CloudWatch GetMetricData for analysis gates: the newest value of one query.

``ecsop.probes.analysis`` calls ``newest_value`` with an analysis's queries
(the spec's camelCase ``metricDataQueries``, placeholders filled) on its own
thread pool. The queries are sent as the API takes them (``api_shape``
capitalises each key: ``metricStat`` -> ``MetricStat``), over whole minutes:
CloudWatch aligns periods to the start time ("GetMetricData",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html),
and the current, partial minute would read low. Metric math is evaluated by
CloudWatch (by the sandbox's ``metric_math`` in tests, since moto does not).

``cloudwatch:GetMetricData`` has no resource-level permissions: the IAM
policies grant it on ``*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ecsop.aws import clients as aws

MAX_PAGES = 10
"""Pages of one GetMetricData read at most; a window of minutes holds far fewer points."""


def api_shape(value: Any) -> Any:
    """The spec's camelCase query as GetMetricData takes it: every key capitalised."""
    if isinstance(value, Mapping):
        return {str(k)[:1].upper() + str(k)[1:]: api_shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [api_shape(item) for item in value]
    return value


def window(
    end: datetime, lookback_seconds: int, since: datetime | None = None, period: int = 60
) -> tuple[datetime, datetime]:
    """(start, end) of the read: whole minutes, the minute ``end`` falls in excluded.

    ``since`` (the judged deployment's creation) moves the start up to the first
    whole minute after it: a datapoint of an earlier minute is (partly) the old
    revision's. Moved, the window keeps whole ``period``s ending at ``end`` (periods
    align to the start: a partial one would read low), so ``start == end`` means
    no whole period of the deployment yet, nothing to read.
    """
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    start = (end - timedelta(seconds=lookback_seconds)).replace(second=0, microsecond=0)
    if since is not None:
        since = since.astimezone(UTC)
        first = since.replace(second=0, microsecond=0)
        first += timedelta(minutes=1) if first < since else timedelta(0)
        if first > start:
            step = timedelta(seconds=max(period, 60))
            start = end - max(0, (end - first) // step) * step
    return start, end


def newest_value(
    cloudwatch: Any,
    queries: Sequence[Mapping[str, Any]],
    result_id: str,
    start: datetime,
    end: datetime,
) -> tuple[float, datetime] | None:
    """The newest data point of query ``result_id`` between ``start`` and ``end``, or None.

    Raises ``AwsError`` for an AWS error, and for a result CloudWatch could not
    compute (``StatusCode`` ``InternalError``, or ``Forbidden`` for another
    account's metric), with CloudWatch's messages.
    """
    request: dict[str, Any] = {
        "MetricDataQueries": api_shape(list(queries)),
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampDescending",
    }
    newest: tuple[float, datetime] | None = None
    for _ in range(MAX_PAGES):
        with aws.translated_errors("GetMetricData"):
            page = cloudwatch.get_metric_data(**request)
        for result in page.get("MetricDataResults") or ():
            if result.get("Id") != result_id:
                continue
            status = str(result.get("StatusCode") or "Complete")
            if status in ("InternalError", "Forbidden"):
                said = "; ".join(
                    str(m.get("Value") or m.get("Code")) for m in result.get("Messages") or ()
                )
                raise aws.AwsError(status, said or f"query {result_id}: {status}", "GetMetricData")
            for stamp, value in zip(
                result.get("Timestamps") or (), result.get("Values") or (), strict=False
            ):
                if newest is None or stamp > newest[1]:
                    newest = (float(value), stamp)
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    if newest is not None and math.isnan(newest[0]):
        return None
    return newest
