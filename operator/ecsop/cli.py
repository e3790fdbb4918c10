"""The ``ecsop`` command line: one subcommand per verb.

Subcommands are registered here and implemented in the module that owns the
concept, so that ``ecsop --help`` is the one place a newcomer reads.
"""

from __future__ import annotations

import argparse
import json
import os
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

    validate = sub.add_parser(
        "validate",
        help="check spec files and directories; exit 1 on any error",
        description="Read every *.yaml/*.yml under each PATH and report each problem as "
        "file:line: field: message. Exits 0 with a one-line summary when all is valid, "
        "1 when anything is wrong. Use it in CI before merging a spec change.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="spec file or directory")
    _spec_options(validate)
    validate.set_defaults(handler=_validate)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a ServiceRelease",
        description="Print the JSON Schema of a ServiceRelease document, for editors' "
        "YAML plugins (e.g. a '# yaml-language-server: $schema=...' comment).",
    )
    schema.set_defaults(handler=_schema)

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


def _spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-mutable-tags",
        action="store_true",
        default=_env_flag("ECSOP_ALLOW_MUTABLE_TAGS"),
        help="accept images pinned by tag only (env ECSOP_ALLOW_MUTABLE_TAGS); "
        "by default every image must carry @sha256:<digest>",
    )
    parser.add_argument(
        "--region",
        default=os.environ.get("ECSOP_REGION")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION", ""),
        help="region for specs that do not set spec.region (env ECSOP_REGION, "
        "else AWS_REGION / AWS_DEFAULT_REGION)",
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _validate(args: argparse.Namespace) -> int:
    from ecsop import source

    result = source.load(
        args.paths, default_region=args.region, allow_mutable_tags=args.allow_mutable_tags
    )
    for error in result.errors:
        print(error)
    commit = f" at commit {result.commit[:12]}" if result.commit else ""
    summary = (
        f"{result.files} file(s), {len(result.releases)} valid release(s), "
        f"{len(result.errors)} error(s){commit}"
    )
    print(summary, file=sys.stderr if result.errors else sys.stdout)
    return 1 if result.errors else 0


def _schema(args: argparse.Namespace) -> int:
    from ecsop import spec

    print(json.dumps(spec.json_schema(), indent=2))
    return 0


def _run_sandbox(args: argparse.Namespace) -> int:
    from ecsop.sandbox import server

    code: int = server.main(scenario_path=args.scenario, port=args.port)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
