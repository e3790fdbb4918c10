"""Where analysis measurements show: /status (kept after the rollout), `ecsop status NAME`,
and the metrics (counted by verdict, the latest verdict withdrawn when measuring stops)."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from builders import deployment, release, service, task_definition
from builders import image as build_image
from ecsop.cli import status as status_cli
from ecsop.controller.recorder import DecisionRecorder
from ecsop.decision.actions import Wait
from ecsop.decision.analysis import AnalysisState, Measurement, MeasurementVerdict, measured
from ecsop.decision.ecs_state import RolloutState
from ecsop.decision.observation import Health, Observation
from ecsop.decision.reasons import Phase, Reason
from ecsop.observability.metrics import Metrics
from ecsop.observability.status import StatusStore
from ecsop.spec.loader import LoadedRelease

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FAILED = MeasurementVerdict.FAILED


def failing() -> AnalysisState:
    state = AnalysisState("error-rate", 1)
    for second, value in enumerate((0.031, float("inf"))):
        text = "+Inf" if value == float("inf") else f"{value}"
        at = START + timedelta(seconds=second)
        state = measured(state, Measurement(at, FAILED, value, f"{text} > 0.01"))
    return state


def recorder() -> tuple[DecisionRecorder, StatusStore, Metrics]:
    store, metrics = StatusStore(), Metrics(CollectorRegistry())
    return DecisionRecorder(store, metrics, lambda: START), store, metrics


TD = task_definition("shop", 2, {"api": build_image("v2")})
LOADED = LoadedRelease(release(containers={"api": build_image("v2")}), "shop.yaml", 1, "us-east-1")


def observation(*analyses: AnalysisState) -> Observation:
    rolling = deployment(TD, RolloutState.IN_PROGRESS, age=60, updated_ago=10)
    return Observation(
        service=service(rolling), task_definitions={TD.arn: TD}, health=Health(analyses=analyses)
    )


def test_status_shows_the_analyses_and_keeps_them_once_the_rollout_is_over() -> None:
    record, store, _ = recorder()
    wait = Wait(Phase.PROGRESSING, Reason.ROLLOUT_IN_PROGRESS, "rolling out", 1)
    record.decided(LOADED, None, wait, observation(failing()))
    record.decided(LOADED, None, wait, observation())  # not judged any more
    stored = store.get("api-prod")
    assert stored is not None
    data = json.loads(json.dumps(stored.to_json(), allow_nan=False))  # strict JSON
    (shown,) = data["analysis"]
    assert shown["name"] == "error-rate" and shown["state"] == "failing"
    assert shown["reason"] == "error-rate +Inf > 0.01 twice in a row"
    assert (shown["failedInARow"], shown["failuresAllowed"]) == (2, 1)
    assert shown["measurements"] == [
        {
            "at": START.isoformat(),
            "verdict": "failed",
            "value": 0.031,
            "detail": "0.031 > 0.01",
        },
        {
            "at": (START + timedelta(seconds=1)).isoformat(),
            "verdict": "failed",
            "value": None,
            "detail": "+Inf > 0.01",
        },
    ]


def test_status_name_shows_each_measurement() -> None:
    record, store, _ = recorder()
    record.decided(
        LOADED, None, Wait(Phase.PROGRESSING, Reason.BAKING, "x", 1), observation(failing())
    )
    stored = store.get("api-prod")
    assert stored is not None
    lines = status_cli.render_analysis(stored.to_json()["analysis"])
    assert lines == [
        "analysis error-rate: failing: error-rate +Inf > 0.01 twice in a row",
        "  12:00:00  failed        0.031 > 0.01",
        "  12:00:01  failed        +Inf > 0.01",
    ]


analysis_json = st.fixed_dictionaries(
    {
        "name": st.text(string.ascii_lowercase + "-", min_size=1, max_size=63),
        "state": st.sampled_from(["passing", "failing", "unknown"]),
        "reason": st.text(string.printable, max_size=400),
        "measurements": st.lists(
            st.fixed_dictionaries(
                {
                    "at": st.just(START.isoformat()),
                    "verdict": st.sampled_from([v.value for v in MeasurementVerdict]),
                    "detail": st.text(string.printable, max_size=300),
                }
            ),
            max_size=10,
        ),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(analysis_json, max_size=10))
def test_the_analysis_block_fits_80_columns(analyses: list[dict[str, Any]]) -> None:
    assert all(len(line) <= 80 for line in status_cli.render_analysis(analyses))


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"release": "shop", **labels})


def test_measurements_are_counted_by_verdict_and_the_latest_is_one_hot() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.analysis_measured("shop", "error-rate", MeasurementVerdict.ERROR)
    metrics.analysis_measured("shop", "error-rate", MeasurementVerdict.PASSED)
    counts = {
        v.value: value(
            metrics, "ecsop_analysis_measurements_total", analysis="error-rate", verdict=v.value
        )
        for v in MeasurementVerdict
    }
    assert counts == {"passed": 1.0, "failed": 0.0, "inconclusive": 0.0, "error": 1.0}
    latest = {
        v.value: value(metrics, "ecsop_analysis_verdict", analysis="error-rate", verdict=v.value)
        for v in MeasurementVerdict
    }
    assert latest == {"passed": 1.0, "failed": 0.0, "inconclusive": 0.0, "error": 0.0}
    metrics.analysis_stopped("shop")
    assert value(metrics, "ecsop_analysis_verdict", analysis="error-rate", verdict="passed") is None
    assert (
        value(metrics, "ecsop_analysis_measurements_total", analysis="error-rate", verdict="passed")
        == 1.0
    ), "counts outlive the rollout"
    metrics.forget_release("shop")
    assert (
        value(metrics, "ecsop_analysis_measurements_total", analysis="error-rate", verdict="passed")
        is None
    )
