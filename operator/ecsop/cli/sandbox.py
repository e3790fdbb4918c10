"""``ecsop sandbox``: serve the AWS-compatible simulator endpoint until interrupted."""

from __future__ import annotations

import argparse
from typing import Any


def add(sub: Any) -> None:
    sandbox = sub.add_parser(
        "sandbox",
        help="serve the AWS-compatible sandbox endpoint (moto + ECS rollout simulator)",
        description="Serve an AWS-compatible endpoint on 127.0.0.1:PORT with the ECS "
        "rollout simulator inside, until interrupted. Point boto3 or the AWS CLI at it with "
        "--endpoint-url or AWS_ENDPOINT_URL and any dummy credentials.",
    )
    sandbox.add_argument("--scenario", required=True, help="scenario YAML file")
    sandbox.add_argument(
        "--port",
        type=int,
        default=4566,
        help="port (default: %(default)s; 0: any free port, printed with the URL at start)",
    )
    sandbox.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ecsop.sandbox import server

    code: int = server.main(scenario_path=args.scenario, port=args.port)
    return code
