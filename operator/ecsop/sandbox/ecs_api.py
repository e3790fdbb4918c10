"""The ECS JSON API of the sandbox: operation name + request -> response.

ECS calls never reach moto: the simulator owns clusters, task definitions,
services, tasks and their tags, so one source of truth answers every ECS read
(moto's ECS model keeps a single deployment per service, ignores
``deploymentConfiguration`` and cannot run a rollout).  Operations not listed
in ``OPERATIONS`` are answered with ``UnsupportedFeatureException`` naming the
operation, never silently.

The operations live in ``ecs_resources`` (clusters, task definitions, tasks,
tags), ``ecs_services`` (services) and ``ecs_service_deployments`` (service
deployments and revisions); this module dispatches.
Limits mirror the ECS API reference: DescribeServices takes at most 10
services, DescribeTasks 100; tags hold 50 per resource, keys of 128 and values
of 256 characters (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Tag.html).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecsop.sandbox.simulator import EcsError, Simulator

Handler = Callable[[Simulator, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {}

MAX_TAGS = 50


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler

    return register


def handle(sim: Simulator, name: str, request: dict[str, Any]) -> dict[str, Any]:
    from ecsop.sandbox import (  # noqa: F401  (they register)
        ecs_resources,
        ecs_run_task,
        ecs_service_deployments,
        ecs_services,
    )

    handler = OPERATIONS.get(name)
    if handler is None:
        raise EcsError(
            "UnsupportedFeatureException", f"The ecsop sandbox does not implement ECS {name}."
        )
    with sim.lock:
        return handler(sim, request)


def include_tags(request: dict[str, Any]) -> bool:
    return "TAGS" in (request.get("include") or [])


def paginate(
    items: list[str], request: dict[str, Any], key: str, default: int, limit: int
) -> dict[str, Any]:
    """The List* response: one page of ``items`` under ``key``, and ``nextToken`` if more."""
    size = int(request.get("maxResults") or default)
    if not 1 <= size <= limit:
        raise EcsError("InvalidParameterException", f"maxResults must be between 1 and {limit}.")
    start = int(request.get("nextToken") or 0)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


def tags_in(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags}


def check_tags(tags: list[dict[str, str]], existing: dict[str, str] | None = None) -> None:
    for tag in tags:
        key, value = tag.get("key", ""), tag.get("value", "")
        if not 1 <= len(key) <= 128:
            raise EcsError(
                "InvalidParameterException", f"Tag key {key!r} must be 1 to 128 characters."
            )
        if len(value) > 256:
            raise EcsError(
                "InvalidParameterException", f"Tag value of {key!r} exceeds 256 characters."
            )
        if key.lower().startswith("aws:"):
            raise EcsError("InvalidParameterException", "Tag keys may not begin with 'aws:'.")
    merged = {**(existing or {}), **tags_in(tags)}
    if len(merged) > MAX_TAGS:
        raise EcsError("InvalidParameterException", f"A resource holds at most {MAX_TAGS} tags.")
