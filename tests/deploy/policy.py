"""Reading IAM policy documents and comparing them with the AWS calls ecsop makes.

The pure half of ``test_iam_policy.py``: parse a policy, list the actions it
allows, turn an observed (service, operation) pair into the IAM action that
authorises it, and say what is missing and what is granted but never used.
Deliberately small: it evaluates actions and resource patterns, not conditions.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session

IAM_PREFIX_OVERRIDES: Mapping[str, str] = {"monitoring": "cloudwatch", "api.ecr": "ecr"}
"""IAM service prefixes that differ from botocore's signing name.

botocore signs CloudWatch requests as ``monitoring``, but IAM names its actions
``cloudwatch:*``; the daemon's metrics name ECR by its endpoint prefix ``api.ecr``,
IAM by ``ecr:*``. Every other service ecsop talks to (``ecs``, ``sts``, ``iam``,
``elasticloadbalancing`` for the ``elbv2`` client) uses its signing name.
"""

IMPLIED: Mapping[str, Mapping[str, str]] = {
    "ecs:RegisterTaskDefinition": {
        "ecs:TagResource": "tag-on-create: a clone is registered with tags, and ECS then "
        "also authorises ecs:TagResource (condition ecs:CreateAction)",
        "iam:PassRole": "a task definition naming a task or execution role needs "
        "iam:PassRole on it; ECS checks it, the client never calls IAM",
    },
    "ecs:RunTask": {
        "ecs:TagResource": "tag-on-create: a step's task is started with tags (condition "
        "ecs:CreateAction RunTask)",
        "iam:PassRole": "a task whose task definition names a task or execution role needs "
        "iam:PassRole on them, checked by ECS at RunTask",
    },
}
"""Actions AWS authorises on the caller's behalf when it calls another one."""

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def iam_prefix(signing_name: str) -> str:
    """The IAM action prefix of a service, from botocore's signing (or endpoint) name."""
    return IAM_PREFIX_OVERRIDES.get(signing_name, signing_name)


def iam_prefix_of_client(client_name: str) -> str:
    """The IAM action prefix of a boto3 client name (``elbv2`` -> ``elasticloadbalancing``)."""
    model = botocore.session.get_session().get_service_model(client_name)
    return iam_prefix(model.signing_name or model.endpoint_prefix)


def iam_action(service: str, operation: str) -> str:
    """``("monitoring", "DescribeAlarms")`` -> ``"cloudwatch:DescribeAlarms"``.

    For every API ecsop calls the IAM action has the operation's own name.
    """
    return f"{iam_prefix(service)}:{operation}"


BATCH_ACTIONS: Mapping[str, str] = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}
"""API calls IAM authorises as another action: "You cannot set permissions explicitly for
... DeleteMessageBatch ... setting permissions for ... DeleteMessage ... sets permissions
for the corresponding batch versions" ("Amazon SQS batch actions", SQS Developer Guide)."""

NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
"""Calls IAM never denies: "No permissions are required to perform this operation"
(STS API Reference, GetCallerIdentity)."""


def required_actions(calls: Iterable[tuple[str, str]]) -> dict[str, str]:
    """IAM actions needed for ``calls`` ((service, operation) pairs), each with why."""
    needed: dict[str, str] = {}
    for service, operation in calls:
        action = iam_action(service, operation)
        action = BATCH_ACTIONS.get(action, action)
        if action in NO_PERMISSION_NEEDED:
            continue
        needed.setdefault(action, f"called: {service} {operation}")
        for implied, reason in IMPLIED.get(action, {}).items():
            needed.setdefault(implied, f"implied by {action}: {reason}")
    return needed


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def render(document: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """``document`` with every ``${NAME}`` replaced; unknown names are an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for placeholder ${{{name}}}")
        return values[name]

    rendered: dict[str, Any] = json.loads(_PLACEHOLDER.sub(substitute, json.dumps(document)))
    return rendered


def placeholders(document: Mapping[str, Any]) -> set[str]:
    return set(_PLACEHOLDER.findall(json.dumps(document)))


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: Mapping[str, Any]


def statements(document: Mapping[str, Any]) -> list[Statement]:
    raw = document.get("Statement", [])
    out = []
    for item in [raw] if isinstance(raw, dict) else raw:
        out.append(
            Statement(
                sid=str(item.get("Sid", "")),
                effect=str(item["Effect"]),
                actions=tuple(_as_list(item.get("Action"))),
                resources=tuple(_as_list(item.get("Resource"))),
                conditions=dict(item.get("Condition", {})),
            )
        )
    return out


def allowed_actions(document: Mapping[str, Any]) -> set[str]:
    """Every action an ``Allow`` statement names, as written (wildcards included)."""
    return {a for s in statements(document) if s.effect == "Allow" for a in s.actions}


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: * and ?; action names compare case-insensitively, ARNs do not.
    return fnmatch.fnmatchcase(value, pattern)


def action_allowed(document: Mapping[str, Any], action: str) -> bool:
    return any(_matches(pattern.lower(), action.lower()) for pattern in allowed_actions(document))


def resource_allowed(document: Mapping[str, Any], action: str, arn: str) -> bool:
    """Some ``Allow`` statement covers ``action`` on ``arn`` (conditions not evaluated)."""
    return any(
        s.effect == "Allow"
        and any(_matches(p.lower(), action.lower()) for p in s.actions)
        and any(_matches(r, arn) for r in s.resources)
        for s in statements(document)
    )


@dataclass(frozen=True)
class Comparison:
    missing: dict[str, str]
    """Needed by an observed call, not allowed by the policy: action -> why it is needed."""
    unused: set[str]
    """Allowed by the policy, never needed and not excused."""
    excused_but_used: set[str]
    """Excused as never exercised, yet the calls needed them: the excuse is stale."""


def compare(
    document: Mapping[str, Any], needed: Mapping[str, str], excused: Mapping[str, str]
) -> Comparison:
    missing = {a: why for a, why in needed.items() if not action_allowed(document, a)}
    needed_lower = {a.lower() for a in needed}
    excused_lower = {a.lower() for a in excused}
    unused = {
        a
        for a in allowed_actions(document)
        if a.lower() not in needed_lower and a.lower() not in excused_lower
    }
    return Comparison(
        missing=missing,
        unused=unused,
        excused_but_used={a for a in excused if a.lower() in needed_lower},
    )
