"""Scenario 8, the hot path's timestamp parsing: botocore's default parser against ecsop's.

A DescribeServices answer of ten services, each with one deployment and the
hundred events ECS keeps (1,020 epoch timestamps, as ECS sends them), is
parsed by botocore's own JSON parser for ECS's output shape, once with
botocore's default timestamp parser and once with ``ecsop.aws.timestamps``
installed the way the daemon installs it (the session's
``response_parser_factory``, ``set_parser_defaults``). In process, no
network: only the parsing is timed. A resync of 10,000 releases parses 1,000
such answers.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import botocore.parsers

from bench.config import Config
from ecsop.aws import timestamps

NOW = 1764480000.123
EVENTS = 100
"""ECS keeps a service's 100 newest events, and DescribeServices returns them all."""


def response() -> dict[str, Any]:
    def service(index: int) -> dict[str, Any]:
        arn = "arn:aws:ecs:us-east-1:111122223333"
        return {
            "serviceArn": f"{arn}:service/fleet/svc-{index}",
            "serviceName": f"svc-{index}",
            "clusterArn": f"{arn}:cluster/fleet",
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "pendingCount": 0,
            "taskDefinition": f"{arn}:task-definition/fleet:1",
            "createdAt": NOW,
            "deployments": [
                {
                    "id": "ecs-svc/1",
                    "status": "PRIMARY",
                    "taskDefinition": f"{arn}:task-definition/fleet:1",
                    "desiredCount": 2,
                    "runningCount": 2,
                    "createdAt": NOW,
                    "updatedAt": NOW,
                    "rolloutState": "COMPLETED",
                }
            ],
            "events": [
                {
                    "id": f"e{j}",
                    "createdAt": NOW - j,
                    "message": f"(service svc-{index}) has reached a steady state.",
                }
                for j in range(EVENTS)
            ],
            "tags": [{"key": "ecsop:state", "value": "v=1 release=x"}],
        }

    body = json.dumps({"services": [service(i) for i in range(10)], "failures": []})
    return {"status_code": 200, "headers": {}, "body": body.encode()}


def run(config: Config, workdir: Path) -> dict[str, Any]:
    core = timestamps.session()
    shape = core.get_service_model("ecs").operation_model("DescribeServices").output_shape
    answer = response()
    rows: dict[str, Any] = {}
    for name, defaults in (
        ("botocore", {}),
        ("ecsop", {"timestamp_parser": timestamps.parse}),
    ):
        factory = botocore.parsers.ResponseParserFactory()
        factory.set_parser_defaults(**defaults)
        parser = factory.create_parser("json")
        parsed = parser.parse(answer, shape)
        rounds = []
        for _ in range(config.timestamp_rounds):
            began = time.perf_counter()
            for _ in range(config.timestamp_parses):
                parser.parse(answer, shape)
            rounds.append((time.perf_counter() - began) / config.timestamp_parses)
        rows[name] = {
            "ms_per_answer": statistics.median(rounds) * 1000,
            "s_per_10k_resync": statistics.median(rounds) * 1000,
            "tz": str(parsed["services"][0]["createdAt"].tzinfo),
        }
    same = _same_instants(answer, shape)
    return {"rows": rows, "timestamps_per_answer": 10 * (EVENTS + 2), "same_instants": same}


def _same_instants(answer: dict[str, Any], shape: Any) -> bool:
    """Both parsers read every timestamp as the same instant."""
    stock = botocore.parsers.ResponseParserFactory().create_parser("json").parse(answer, shape)
    factory = botocore.parsers.ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=timestamps.parse)
    ours = factory.create_parser("json").parse(answer, shape)
    pairs = [
        (a["createdAt"], b["createdAt"])
        for a, b in zip(stock["services"], ours["services"], strict=True)
    ] + [
        (a["createdAt"], b["createdAt"])
        for s, o in zip(stock["services"], ours["services"], strict=True)
        for a, b in zip(s["events"], o["events"], strict=True)
    ]
    return all(a == b for a, b in pairs)
