"""The release history: what became of each deployment (pure), and /status's cached reads.

``tests/sandbox/test_service_history.py`` reads real service deployments from the
simulator; here the judgement's rarer branches, table-driven, and the
``/status`` reader's cost: nothing while nobody asks, one read per TTL.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecsop.aws.clients import AwsError
from ecsop.aws.history import HistoryEntry, RawDeployment, entries
from ecsop.cli.history import render
from ecsop.controller.history import HistorySettings, StatusHistory
from ecsop.decision.ecs_state import Fingerprint, TaskDefinition, TaskDefinitionArn
from ecsop.decision.memory import FailedRecord
from ecsop.decision.reasons import Failure, Phase
from ecsop.observability.status import ReleaseStatus
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.model import ServiceRelease, fingerprint

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
IMAGE = {
    label: f"111122223333.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:{label * 64}"
    for label in "abc"
}
TD = {
    label: TaskDefinitionArn(f"arn:aws:ecs:us-east-1:111122223333:task-definition/shop:{n}")
    for n, label in enumerate("abc", 1)
}
REVISIONS = {
    TD[label]: TaskDefinition(TD[label], "shop", n, {"app": IMAGE[label]})
    for n, label in enumerate("abc", 1)
}
RELEASE = ServiceRelease.model_validate(
    {
        "apiVersion": "ecsop.dev/v1",
        "kind": "ServiceRelease",
        "metadata": {"name": "shop"},
        "spec": {"cluster": "prod", "service": "shop", "containers": {"app": IMAGE["a"]}},
    }
)


def raw(n: int, status: str, target: str, source: str = "", reason: str = "") -> RawDeployment:
    return RawDeployment(
        arn=f"arn:sd/{n}",
        status=status,
        status_reason="",
        created_at=T0 + timedelta(minutes=n),
        started_at=T0 + timedelta(minutes=n),
        finished_at=T0 + timedelta(minutes=n, seconds=90),
        strategy="ROLLING",
        target=TD[target],
        sources=(TD[source],) if source else (),
        ecs_reason=reason,
    )


def failed(label: str, failure: Failure) -> FailedRecord:
    return FailedRecord(Fingerprint(fingerprint({"app": IMAGE[label]})), failure)


@pytest.mark.parametrize(
    ("history", "record", "expected"),
    [
        pytest.param(
            [raw(2, "IN_PROGRESS", "b", "a")], None, [("in_progress", "", "")], id="ongoing"
        ),
        pytest.param(
            [raw(2, "ROLLBACK_IN_PROGRESS", "b", "a", "alarms in ALARM: x")],
            None,
            [("rolling_back", "ecs", "alarms in ALARM: x")],
            id="ecs-rolling-back",
        ),
        pytest.param(
            [raw(2, "ROLLBACK_FAILED", "b", "a", "breaker")],
            None,
            [("failed", "ecs", "ECS's rollback failed too: breaker")],
            id="ecs-rollback-failed",
        ),
        pytest.param(
            [raw(2, "SUCCESSFUL", "b", "a")],
            failed("b", Failure.TIMEOUT),
            [("failed", "", "timeout: not rolled back")],
            id="recorded-not-rolled-back",
        ),
        pytest.param(
            [raw(3, "SUCCESSFUL", "a", "b"), raw(2, "SUCCESSFUL", "b", "a")],
            failed("b", Failure.ALARM),
            [("succeeded", "", ""), ("rolled_back", "ecsop", "alarm (back to shop:1)")],
            id="rolled-back-during-the-bake",
        ),
        pytest.param(
            [raw(3, "STOPPED", "c", "b"), raw(2, "STOPPED", "b", "a")],
            None,
            [("stopped", "", ""), ("stopped", "", "")],
            id="superseded-is-not-a-rollback",
        ),
        pytest.param(
            [
                raw(4, "SUCCESSFUL", "b", "a"),
                raw(3, "STOPPED", "b", "a"),
                raw(2, "SUCCESSFUL", "b", "a"),
            ],
            failed("b", Failure.FAILED_TASKS),
            [
                ("failed", "", "failed_tasks: not rolled back"),
                ("stopped", "", ""),
                ("succeeded", "", ""),
            ],
            id="the-record-names-the-newest-deployment-of-its-fingerprint-only",
        ),
        pytest.param(
            [raw(2, "SUCCESSFUL", "b", "a")],
            failed("b", Failure.ROLLBACK_FAILED),
            [("failed", "", "rollback_failed: the rollback to last-good failed too")],
            id="rollback-failed",
        ),
    ],
)
def test_what_became_of_each_deployment(
    history: list[RawDeployment], record: FailedRecord | None, expected: list[tuple[str, str, str]]
) -> None:
    found = entries(history, REVISIONS, RELEASE, record)
    assert [(e.outcome.value, e.rolled_back_by, e.reason) for e in found] == expected


def test_render_for_people() -> None:
    (entry,) = entries(
        [raw(2, "STOPPED", "b", "a")], REVISIONS, RELEASE, failed("b", Failure.FAILED_TASKS)
    )
    text = render("shop", "prod/shop (us-east-1)", [entry])
    assert text.splitlines() == [
        "shop on prod/shop (us-east-1): 1 deployment(s), newest first",
        "2026-11-23 12:02:00  rolled back by ecsop                 1m30s  ROLLING",
        f"    shop:2  fingerprint {fingerprint({'app': IMAGE['b']})}  no commit",
        "    app=shop@sha256:bbbbbbbbbbbb",
        "    why: failed_tasks",
    ]
    assert entry.to_json()["rolledBackBy"] == "ecsop"
    assert entry.to_json()["createdAt"] == "2026-11-23T12:02:00+00:00"


# --- /status: read on demand, cached ---------------------------------------------------


class Gateway:
    def __init__(self) -> None:
        self.reads = 0
        self.error: Exception | None = None
        self.block = threading.Event()
        self.block.set()

    def release_history(self, *args: Any) -> list[HistoryEntry]:
        self.reads += 1
        self.block.wait(5)
        if self.error is not None:
            raise self.error
        return entries([raw(2, "SUCCESSFUL", "b", "a")], REVISIONS, RELEASE, None)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def reader(gateway: Gateway, clock: Clock, **settings: Any) -> StatusHistory:
    loaded = LoadedRelease(RELEASE, "shop.yaml", 1, "us-east-1")
    status = ReleaseStatus(
        "shop", "us-east-1", "prod", "shop", "shop.yaml", None, Phase.SYNCED, "", ""
    )
    return StatusHistory(
        lambda region, role: gateway,  # type: ignore[arg-type,return-value]
        lambda name: loaded if name == "shop" else None,
        lambda name: status,
        HistorySettings(**settings),
        clock,
    )


def test_status_history_costs_nothing_until_asked_then_once_per_ttl() -> None:
    gateway, clock = Gateway(), Clock()
    history = reader(gateway, clock, ttl_seconds=60)
    assert gateway.reads == 0
    first = history(["shop", "gone"])
    assert gateway.reads == 1
    assert first["shop"]["history"][0]["outcome"] == "succeeded"
    assert "gone" not in first
    clock.now = 59
    assert history(["shop"]) == first
    assert gateway.reads == 1
    clock.now = 61
    history(["shop"])
    assert gateway.reads == 2
    history.close()


def test_status_history_errors_are_shown_and_cached() -> None:
    gateway, clock = Gateway(), Clock()
    gateway.error = AwsError("AccessDeniedException", "not allowed", "ListServiceDeployments")
    history = reader(gateway, clock)
    assert history(["shop"]) == {"shop": {"historyError": "AccessDeniedException: not allowed"}}
    history(["shop"])
    assert gateway.reads == 1
    history.close()


def test_status_history_never_holds_status_past_its_deadline() -> None:
    gateway, clock = Gateway(), Clock()
    gateway.block.clear()
    history = reader(gateway, clock, deadline_seconds=0.1)
    assert history(["shop"]) == {}
    gateway.block.set()
    deadline = time.monotonic() + 10  # the background read finishes when it is scheduled
    while not history(["shop"]) and time.monotonic() < deadline:
        threading.Event().wait(0.02)
    assert history(["shop"])["shop"]["history"]
    assert gateway.reads == 1
    history.close()


def test_status_history_off_reads_nothing() -> None:
    gateway, clock = Gateway(), Clock()
    assert reader(gateway, clock, entries=0)(["shop"]) == {}
    assert gateway.reads == 0


def test_a_flood_of_status_requests_reads_each_release_once() -> None:
    """Attack: a dashboard (or anyone who can reach /status) sends fifty requests at once
    while a read is slow: one read per release, not one per request."""
    gateway, clock = Gateway(), Clock()
    gateway.block.clear()
    history = reader(gateway, clock, deadline_seconds=0.05)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: history(["shop"]), range(50)))
    assert all(answer == {} for answer in answers)  # none waited past its deadline
    gateway.block.set()
    deadline = time.monotonic() + 10
    while not history(["shop"]) and time.monotonic() < deadline:
        threading.Event().wait(0.02)
    assert history(["shop"])["shop"]["history"]
    assert gateway.reads == 1
    history.close()
