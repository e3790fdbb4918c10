"""A step of a release: a one-off ECS task run on the release's own revision.

``spec.preDeploy`` (migrations, before the service is updated) and
``spec.verify`` (smoke tests, before the revision is proven) are lists of
these; ``ecsop.decision.steps`` decides when each runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from ecsop.spec.strict_model import StrictModel

STEP_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_STEPS = 5
"""Steps per list (``preDeploy``, ``verify``): each keeps one tag on the revision it runs on."""
MAX_STEP_OVERRIDES = 8192
"""RunTask's limit on ``overrides``, in characters of its JSON (API_RunTask)."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Step(StrictModel):
    """A one-off ECS task run on the release's own task definition revision.

    ``preDeploy`` steps run before the service is updated (migrations), in
    order, each once per release fingerprint; ``verify`` steps run once the
    rollout completed, during the bake (smoke tests). A step succeeds when
    ``container`` exits 0 within ``timeoutSeconds``. ecsop starts it with the
    service's own launch type or capacity provider strategy, network
    configuration and platform version, and overrides only that container's
    command (and ``environment``, when given).
    """

    name: str = Field(
        min_length=1,
        max_length=32,
        description="Unique among the release's steps: lowercase letters, digits and '-', "
        "at most 32 characters.",
    )
    container: str = Field(
        min_length=1,
        max_length=255,
        description="The container of the service's task definition that runs the command; "
        "its exit code is the step's outcome.",
    )
    command: list[str] = Field(
        min_length=1,
        max_length=100,
        description="The command, exec form (as the task definition's containerDefinitions"
        "[].command), e.g. [python, manage.py, migrate, --noinput].",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables added to (or replacing) the container's own, "
        "for this step only. Plain values: put secrets in the task definition's secrets.",
    )
    timeout_seconds: int = Field(
        default=900,
        ge=10,
        le=86400,
        description="Stop the task (StopTask) and fail the step when the container has not "
        "exited this many seconds after the task was created.",
    )

    @field_validator("name")
    @classmethod
    def _step_name(cls, name: str) -> str:
        if not STEP_NAME_PATTERN.match(name):
            raise ValueError(
                f"{name!r} is not valid: must be lowercase letters, digits and '-', starting "
                "and ending with a letter or digit, at most 32 characters"
            )
        return name

    @field_validator("command")
    @classmethod
    def _command(cls, command: list[str]) -> list[str]:
        if not command[0]:
            raise ValueError("the command's first word (the program) must not be empty")
        return command

    @field_validator("environment")
    @classmethod
    def _environment(cls, environment: dict[str, str]) -> dict[str, str]:
        for name in environment:
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"environment variable name {name!r} must be letters, digits and '_', "
                    "not starting with a digit"
                )
        return environment

    @model_validator(mode="after")
    def _fits_run_task(self) -> Step:
        size = len(json.dumps(self.override()))
        if size > MAX_STEP_OVERRIDES:
            raise ValueError(
                f"command and environment are {size} characters as RunTask overrides; "
                f"ECS accepts at most {MAX_STEP_OVERRIDES}"
            )
        return self

    def override(self) -> dict[str, Any]:
        """The RunTask ``containerOverrides`` entry for this step."""
        override: dict[str, Any] = {"name": self.container, "command": list(self.command)}
        if self.environment:
            override["environment"] = [
                {"name": k, "value": v} for k, v in sorted(self.environment.items())
            ]
        return override
