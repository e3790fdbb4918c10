"""The ``ecsop`` command line: one subcommand per verb.

Subcommands are registered here and implemented in the module that owns the
concept, so that ``ecsop --help`` is the one place a newcomer reads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ecsop import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecsop",
        description="GitOps operator for Amazon ECS.",
    )
    parser.add_argument("--version", action="version", version=f"ecsop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sandbox = sub.add_parser(
        "sandbox",
        help="serve the AWS-compatible sandbox endpoint (moto + ECS rollout simulator)",
        description="Serve an AWS-compatible endpoint on 127.0.0.1:PORT with the ECS "
        "rollout simulator inside, until interrupted.",
    )
    sandbox.add_argument("--scenario", required=True, help="scenario YAML file")
    sandbox.add_argument("--port", type=int, default=4566, help="port (default: %(default)s)")
    sandbox.set_defaults(handler=_run_sandbox)
    return parser


def _run_sandbox(args: argparse.Namespace) -> int:
    from ecsop.sandbox import server

    return server.main(scenario_path=args.scenario, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
