"""Registering a revision exactly once, even when AWS applies a call and the answer is lost."""

from __future__ import annotations

from typing import Any

import pytest

from ecsop.aws.clients import AwsError
from ecsop.aws.revisions import REGISTER_ATTEMPTS, PreparedClone, Revisions
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import RevisionMemory

ARN = "arn:aws:ecs:us-east-1:1:task-definition/api"


class FakeEcs:
    """Registers for real, but can lose the answer after the write (a 500 or a timeout)."""

    def __init__(self, lose_answers: int = 0, refuse: AwsError | None = None) -> None:
        self.registered: list[dict[str, Any]] = []
        self.lose_answers = lose_answers
        self.refuse = refuse
        self.register_calls = 0

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        if method == "list_task_definitions":
            arns = [f"{ARN}:{i + 1}" for i in range(len(self.registered))][::-1]
            return {"taskDefinitionArns": arns}
        if method == "describe_task_definition":
            revision = int(kwargs["taskDefinition"].rsplit(":", 1)[1])
            return self._described(revision)
        raise AssertionError(method)

    def register(self, method: str, **kwargs: Any) -> dict[str, Any]:
        self.register_calls += 1
        if self.refuse is not None:
            raise self.refuse
        self.registered.append(kwargs)
        if self.lose_answers:
            self.lose_answers -= 1
            raise AwsError("InternalError", "answer lost", "RegisterTaskDefinition", retryable=True)
        return self._described(len(self.registered))

    def _described(self, revision: int) -> dict[str, Any]:
        request = self.registered[revision - 1]
        return {
            "taskDefinition": {
                "taskDefinitionArn": f"{ARN}:{revision}",
                "family": "api",
                "revision": revision,
                "containerDefinitions": request["containerDefinitions"],
            },
            "tags": request["tags"],
        }


def clone(content: str = "c1") -> PreparedClone:
    revision = RevisionMemory("shop", Fingerprint("f1"), content)
    request = {
        "family": "api",
        "containerDefinitions": [{"name": "api", "image": "api:2"}],
        "tags": [{"key": k, "value": v} for k, v in revision.tags().items()],
    }
    return PreparedClone("api", request, revision)


def revisions(ecs: FakeEcs) -> Revisions:
    return Revisions(ecs.call, ecs.register, sleep=lambda seconds: None)


@pytest.mark.parametrize("lost", [1, 2])
def test_a_lost_answer_never_registers_a_second_revision(lost: int) -> None:
    """Issue 21, #17: botocore's retry used to register the same revision twice."""
    ecs = FakeEcs(lose_answers=lost)
    registered = revisions(ecs).register(clone())
    assert len(ecs.registered) == 1 and ecs.register_calls == 1
    assert registered.arn == f"{ARN}:1"


def test_a_failure_before_the_write_is_retried() -> None:
    class Throttled(FakeEcs):
        def register(self, method: str, **kwargs: Any) -> dict[str, Any]:
            if self.register_calls == 0:
                self.register_calls += 1
                raise AwsError("ThrottlingException", "slow", "Register", retryable=True)
            return super().register(method, **kwargs)

    ecs = Throttled()
    assert revisions(ecs).register(clone()).arn == f"{ARN}:1"
    assert len(ecs.registered) == 1


def test_a_refusal_is_not_retried() -> None:
    ecs = FakeEcs(refuse=AwsError("ClientException", "bad", "RegisterTaskDefinition"))
    with pytest.raises(AwsError):
        revisions(ecs).register(clone())
    assert ecs.register_calls == 1


def test_retries_are_bounded() -> None:
    ecs = FakeEcs(refuse=AwsError("ServerException", "down", "Register", retryable=True))
    with pytest.raises(AwsError):
        revisions(ecs).register(clone())
    assert ecs.register_calls == REGISTER_ATTEMPTS
