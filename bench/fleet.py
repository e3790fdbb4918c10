"""The benchmark's ECS fleet: sandbox scenarios, images and release specs.

Every contender gets its own cluster of identical services in the same
sandbox (``ecsop``, ``script``, ``naive``), so they are measured side by side
against one ECS and never touch each other's services. Services have no
circuit breaker: the only rollback is the contender's own.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/bench"
CONTAINER = "app"
CONTENDERS = ("ecsop", "script", "naive")


def image(label: str) -> str:
    return f"{REGISTRY}@sha256:{hashlib.sha256(label.encode()).hexdigest()}"


BASE = image("base")
"""What every service runs at the start."""


def task_definition(family: str) -> dict[str, Any]:
    return {
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {
                "name": CONTAINER,
                "image": BASE,
                "essential": True,
                "environment": [{"name": "MODE", "value": "bench"}],
            }
        ],
        "tags": [{"key": "team", "value": "bench"}],
    }


def service_spec(family: str, desired: int = 2, count: int = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "desiredCount": desired,
        "deploymentConfiguration": {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        },
        "taskDefinition": task_definition(family),
    }
    if count > 1:
        spec["count"] = count
    return spec


def scenario(
    clusters: dict[str, dict[str, Any]],
    images: dict[str, dict[str, Any]],
    clock_speed: float,
) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "clockSpeed": clock_speed,
        "seed": 8,
        "images": {BASE: {"behavior": "healthy", "startSeconds": 5}, **images},
        "clusters": {name: {"services": services} for name, services in clusters.items()},
    }


def per_contender_services(
    per_cluster: int, contenders: tuple[str, ...] = CONTENDERS
) -> dict[str, dict[str, Any]]:
    """``per_cluster`` services ``svc-000``... in each contender's cluster, one family each."""
    return {
        contender: {
            service_name(i): service_spec(f"{contender}-{service_name(i)}")
            for i in range(per_cluster)
        }
        for contender in contenders
    }


def service_name(index: int) -> str:
    return f"svc-{index:03d}"


def healthy_images(labels: list[str]) -> dict[str, dict[str, Any]]:
    return {image(label): {"behavior": "healthy", "startSeconds": 5} for label in labels}


def crash_images(labels: list[str], seed: int) -> dict[str, dict[str, Any]]:
    """Crash-looping images, each crashing at its own (seeded) time after RUNNING.

    Spreading the crash times spreads the first failures over the pollers'
    phases, so no contender is lucky or unlucky by alignment.
    """
    rng = random.Random(seed)
    return {
        image(label): {
            "behavior": "crashloop",
            "exitCode": 1,
            "crashAfterSeconds": round(rng.uniform(3.0, 20.0), 2),
        }
        for label in labels
    }


def release(
    name: str,
    cluster: str,
    service: str,
    container_image: str,
    max_failed_tasks: int = 1,
    bake_seconds: int = 60,
) -> dict[str, Any]:
    return {
        "apiVersion": "ecsop.dev/v1",
        "kind": "ServiceRelease",
        "metadata": {"name": name},
        "spec": {
            "cluster": cluster,
            "service": service,
            "containers": {CONTAINER: container_image},
            "rollout": {
                "timeoutSeconds": 900,
                "bakeSeconds": bake_seconds,
                "maxFailedTasks": max_failed_tasks,
            },
        },
    }
