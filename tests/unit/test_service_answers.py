"""A DescribeServices answer equal to the last one mapped for its service is not mapped
again: the resync's steady state costs one dict comparison per service."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecsop.aws import ecs_mapping
from ecsop.aws.service_answers import ServiceAnswers

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def answer(name: str = "api", running: int = 2) -> dict[str, Any]:
    """A service as botocore parses DescribeServices (times are UTC, ``ecsop.aws.timestamps``)."""
    arn = f"arn:aws:ecs:us-east-1:123456789012:service/prod/{name}"
    td = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{name}:3"
    return {
        "serviceArn": arn,
        "serviceName": name,
        "status": "ACTIVE",
        "taskDefinition": td,
        "desiredCount": 2,
        "runningCount": running,
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        "deployments": [
            {
                "id": "ecs-svc/1",
                "status": "PRIMARY",
                "taskDefinition": td,
                "desiredCount": 2,
                "runningCount": running,
                "pendingCount": 0,
                "failedTasks": 0,
                "createdAt": AT - timedelta(hours=1),
                "updatedAt": AT - timedelta(hours=1),
                "rolloutState": "COMPLETED",
            }
        ],
        "events": [
            {"id": "e1", "createdAt": AT - timedelta(minutes=50), "message": "steady state"}
        ],
        "tags": [{"key": "ecsop:state", "value": "v=2 r=api-prod"}],
        "launchType": "FARGATE",
    }


def test_an_equal_answer_is_the_state_mapped_before_dated_by_its_own_response() -> None:
    answers = ServiceAnswers()
    first = answers.state("prod", answer(), AT)
    later = AT + timedelta(seconds=30)
    again = answers.state("prod", copy.deepcopy(answer()), later)
    assert again == ecs_mapping.service_state("prod", answer(), later)
    assert again.observed_at == later
    assert again.deployments is first.deployments  # not mapped again
    assert again.says_what(first)
    assert answers.state("prod", answer(), AT) is first  # the same answer, the same instant


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda raw: raw.update(runningCount=1), id="a count"),
        pytest.param(lambda raw: raw["deployments"][0].update(failedTasks=1), id="a deployment"),
        pytest.param(
            lambda raw: raw["events"].insert(0, {"id": "e2", "createdAt": AT, "message": "x"}),
            id="an event",
        ),
        pytest.param(lambda raw: raw["tags"].clear(), id="the memory tags"),
        pytest.param(lambda raw: raw["deployments"][0].update(updatedAt=AT), id="only a time"),
    ],
)
def test_any_change_in_the_answer_is_mapped_afresh(change: Any) -> None:
    answers = ServiceAnswers()
    answers.state("prod", answer(), AT)
    changed = answer()
    change(changed)
    state = answers.state("prod", changed, AT)
    assert state == ecs_mapping.service_state("prod", changed, AT)
    assert not state.says_what(ecs_mapping.service_state("prod", answer(), AT))
    assert answers.state("prod", changed, AT) is state  # and remembered in its place


def test_the_same_answer_asked_for_another_cluster_is_mapped_for_that_cluster() -> None:
    answers = ServiceAnswers()
    answers.state("prod", answer(), AT)
    assert answers.state("other", answer(), AT).cluster == "other"


def test_it_remembers_at_most_its_capacity_dropping_the_least_recently_asked() -> None:
    answers = ServiceAnswers(capacity=2)
    a = answers.state("prod", answer("a"), AT)
    answers.state("prod", answer("b"), AT)
    assert answers.state("prod", answer("a"), AT) is a  # "a" is now the most recent
    answers.state("prod", answer("c"), AT)  # drops "b"
    assert answers.state("prod", answer("a"), AT) is a
    b_again = answers.state("prod", answer("b"), AT)
    assert b_again == ecs_mapping.service_state("prod", answer("b"), AT)
    assert len(answers) == 2
