"""``ecsop validate``: read spec files as the daemon would, print every problem."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ecsop.cli import options


def add(sub: Any) -> None:
    validate = sub.add_parser(
        "validate",
        help="check spec files and directories; exit 1 on any error",
        description="Read every *.yaml/*.yml under each PATH and report each problem as "
        "file:line: field: message. Exits 0 with a one-line summary when all is valid, "
        "1 when anything is wrong. Use it in CI before merging a spec change.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="spec file or directory")
    options.spec_options(validate)
    validate.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ecsop.spec import loader

    result = loader.load(
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
