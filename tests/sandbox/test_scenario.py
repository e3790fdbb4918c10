"""The scenario file format, and the demo scenario against the example specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import moto
import pytest
import yaml
from moto.core.models import DEFAULT_ACCOUNT_ID
from pydantic import ValidationError
from sandbox_harness import GOOD, IMAGES, service_spec

from ecsop.sandbox.clock import SimClock
from ecsop.sandbox.scenario import Scenario, load_scenario
from ecsop.sandbox.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "operator" / "ecsop" / "sandbox" / "demo.yaml"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param({"clockspeed": 3}, "clockspeed", id="unknown-top-level-field"),
        pytest.param(
            {"images": {GOOD: {"behavior": "alarm"}}}, "needs 'alarm'", id="alarm-without-name"
        ),
        pytest.param(
            {"images": {GOOD: {"behavior": "sleepy"}}}, "behavior", id="unknown-behaviour"
        ),
        pytest.param(
            {
                "clusters": {
                    "c": {
                        "services": {
                            "s": {
                                **service_spec(),
                                "taskDefinition": {
                                    "family": "f",
                                    "containerDefinitions": [{"name": "a", "image": GOOD}],
                                    "familly": "typo",
                                },
                            }
                        }
                    }
                }
            },
            "familly",
            id="unknown-task-definition-field",
        ),
        pytest.param(
            {"faults": {"throttleRate": 0.7, "errorRate": 0.5}}, "exceed 1", id="rates-over-1"
        ),
        pytest.param(
            {"faults": {"operations": {"Tag": {"errorRate": 0.5, "lostAnswerRate": 0.6}}}},
            "lostAnswerRate must not exceed 1",
            id="lost-answers-over-1",
        ),
    ],
)
def test_invalid_scenarios_name_the_problem(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Scenario.model_validate(raw)
    assert fragment in str(caught.value)


def test_count_expands_service_names() -> None:
    scenario = Scenario.model_validate(
        {"clusters": {"c": {"services": {"api": service_spec(1, count=3)}}}}
    )
    assert [name for _, name, _ in scenario.services()] == ["api-0001", "api-0002", "api-0003"]


@pytest.mark.parametrize(
    ("family_per_service", "families"),
    [
        pytest.param(False, ["api", "api", "api"], id="shared-family"),
        pytest.param(True, ["api-api-0001", "api-api-0002", "api-api-0003"], id="per-service"),
    ],
)
def test_count_shares_one_revision_unless_each_has_its_family(
    family_per_service: bool, families: list[str]
) -> None:
    spec = service_spec(1, count=3, familyPerService=family_per_service)
    scenario = Scenario.model_validate(
        {"images": IMAGES, "clusters": {"c": {"services": {"api": spec}}}}
    )
    with moto.mock_aws():
        sim = Simulator(scenario, SimClock(speed=0, start=1000.0), DEFAULT_ACCOUNT_ID)
        sim.load(scenario)
        running = [sim.services[("c", f"api-000{i}")].task_definition_arn for i in (1, 2, 3)]
    assert [arn.rsplit("/", 1)[1] for arn in running] == [f"{f}:1" for f in families]


def _specs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        docs.extend(
            d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "ServiceRelease"
        )
    return docs


def test_demo_scenario_matches_the_example_specs() -> None:
    demo = load_scenario(DEMO)
    assert demo.region == "us-east-1" and demo.clock_speed == 20
    services = {(c, n): s for c, n, s in demo.services()}
    for doc in _specs():
        spec = doc["spec"]
        service = services[(spec["cluster"], spec["service"])]
        containers = {c["name"]: c for c in service.task_definition["containerDefinitions"]}
        for name, image in spec["containers"].items():
            assert name in containers, (doc["metadata"]["name"], name)
            assert demo.images[image].behavior == "healthy", image
            if spec["cluster"] == "prod":
                assert containers[name]["image"] == image  # prod is in sync
            else:
                assert containers[name]["image"] != image  # staging is one version behind
        for alarm in spec.get("rollout", {}).get("alarms", []):
            assert alarm in demo.alarms
        # every image a demo task starts with is known to the scenario
        for container in containers.values():
            assert container["image"] in demo.images


def test_demo_alarm_image_names_the_cluster_alarm() -> None:
    demo = load_scenario(DEMO)
    alarm_images = [b for b in demo.images.values() if b.behavior == "alarm"]
    assert [
        b.alarm.format(cluster="prod", service="taskboard-api") for b in alarm_images if b.alarm
    ] == ["taskboard-api-prod-5xx"]
