"""The text of an analysis query: placeholders, and the comparisons that judge it.

``{{name}}`` placeholders let one query fit every release: the probe fills
them for the deployment it judges (``fill``), and the spec refuses unknown ones
at their line (``Templated``). A comparison (``> 0.01``) is parsed here, an
operator and a number, and never evaluated as code. Pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints

from ecsop.spec.quoting import clip, quote

PLACEHOLDERS: dict[str, str] = {
    "release": "the release's metadata.name",
    "cluster": "the ECS cluster's name",
    "service": "the ECS service's name",
    "region": "the service's AWS region",
    "fingerprint": "the fingerprint (images) of the release being judged",
    "deployment": "the judged ECS deployment's id (ecs-svc/...)",
    "taskDefinition": "the judged task definition revision, family:revision",
    "revision": "the judged task definition's revision number",
    "stableTaskDefinition": "the last-good revision, family:revision (none before one is proven)",
    "stableRevision": "the last-good revision's number (none before one is proven)",
    "stableDeployment": "the id of the deployment still running the last-good revision beside "
    "the judged one, or the word none once there is no such deployment",
    "targetGroup": "the service's first target group as CloudWatch names it "
    "(targetgroup/NAME/ID; green's while traffic shifts; none without a load balancer)",
    "targetGroupName": "the service's first target group's name",
}
"""Every ``{{name}}`` a query may use, and what it is replaced with."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_COMPARISON = re.compile(
    r"^\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$"
)
_OPERATORS = ">, >=, <, <=, ==, !="


@dataclass(frozen=True)
class Comparison:
    """``> 0.01``: an operator and a number, parsed from the spec, never evaluated as code."""

    operator: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the comparison (NaN satisfies none but ``!=``)."""
        match self.operator:
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
            case "==":
                return value == self.threshold
            case _:
                return value != self.threshold

    def __str__(self) -> str:
        return f"{self.operator} {self.threshold:g}"


def comparison(text: str) -> Comparison:
    """Parse ``text`` (``"> 0.01"``, ``"<=250"``, ``"!= 0"``); ValueError says how to write it."""
    found = _COMPARISON.match(text)
    if found is None:
        hint = ""
        try:
            float(text)
        except ValueError:
            pass
        else:  # `failIf: > 0.01` unquoted is a YAML folded scalar: only the number survives
            hint = '; quote it in YAML, failIf: "> 0.01" (an unquoted > starts a folded block)'
        raise ValueError(
            f"{quote(text)} is not a comparison: write an operator ({_OPERATORS}) and a "
            f'number, e.g. "> 0.01"{hint}'
        )
    threshold = float(found["number"])
    if not math.isfinite(threshold):
        raise ValueError(f"{quote(text)}: the number must be finite")
    return Comparison(found["op"], threshold)  # type: ignore[arg-type]


def placeholders_in(text: str) -> list[str]:
    """The placeholder names ``text`` uses, in order (``{{ release }}`` -> ``release``)."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(text)]


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced; KeyError names a placeholder without a value."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _known_placeholders(text: str) -> str:
    for name in placeholders_in(text):
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{{{clip(name, 40)}}}}}: use one of "
                + ", ".join(f"{{{{{known}}}}}" for known in PLACEHOLDERS)
            )
    stray = _PLACEHOLDER.sub("", text)
    if "{{" in stray or "}}" in stray:
        raise ValueError("a placeholder is {{name}}: an unmatched '{{' or '}}' is left")
    return text


Templated = Annotated[str, AfterValidator(_known_placeholders)]
"""Text that may use placeholders; unknown ones are refused."""
Expression = Annotated[
    str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_known_placeholders)
]
Label = Annotated[str, StringConstraints(max_length=255), AfterValidator(_known_placeholders)]
