"""The ``ecsop`` command line: builds the parser from one module per verb, runs the verb.

Each verb's module (``run``, ``plan_commands`` for plan and retry, ``status``,
``validate``, ``schema``, ``sandbox``) declares its flags, with every flag's
environment variable and default in its help, so ``ecsop COMMAND --help`` is
the one place a newcomer reads; ``options`` holds what the verbs share.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from ecsop import __version__
from ecsop.cli import approve as approve_cli
from ecsop.cli import coordination as coordination_cli
from ecsop.cli import (
    history,
    options,
    plan_commands,
    run,
    sandbox,
    schema,
    status,
    validate,
)
from ecsop.cli import promote as promote_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecsop",
        description="GitOps operator for Amazon ECS: reconciles ECS services toward the image "
        "digests pinned in a directory of release specs, and rolls back failed rollouts.",
        epilog="Start with `ecsop run --sandbox` to watch it work against a local simulator. "
        "`ecsop COMMAND --help` lists a command's flags and their environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"ecsop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run.add(sub)
    plan_commands.add_plan(sub)
    status.add(sub)
    plan_commands.add_retry(sub)
    approve_cli.register(sub, options.spec_options)
    promote_cli.register(sub, options.spec_options)
    history.add_parser(sub, options.spec_options)
    validate.add(sub)
    schema.add(sub)
    sandbox.add(sub)
    coordination_cli.add_parser(sub)
    return parser


EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""What a Unix tool killed by SIGPIPE exits with (``ecsop status | head``)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options.resolve(args)
        result: int = args.handler(args)
    except options.UsageError as exc:
        print(f"ecsop {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as `cat` would. Python would
        # still complain while flushing stdout at exit, so stdout goes to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return result


if __name__ == "__main__":
    sys.exit(main())
