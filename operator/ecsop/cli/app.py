"""The ``ecsop`` command line: one subcommand per verb.

Subcommands are declared here, with every flag's environment variable and
default in its help, so ``ecsop COMMAND --help`` is the one place a newcomer
reads; the work is done by the module that owns the concept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ecsop import __version__
from ecsop.cli import coordination as coordination_cli

DEFAULT_URL = "http://127.0.0.1:9100"


def _env(name: str, default: Any, kind: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"ecsop: environment variable {name}={raw!r} is not valid") from None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _default_region() -> str:
    return str(
        _env("ECSOP_REGION", "")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION", "")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecsop",
        description="GitOps operator for Amazon ECS: reconciles ECS services toward the image "
        "digests pinned in a directory of release specs, and rolls back failed rollouts.",
        epilog="Start with `ecsop run --sandbox` to watch it work against a local simulator.",
    )
    parser.add_argument("--version", action="version", version=f"ecsop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(sub)
    _add_plan(sub)
    _add_status(sub)
    _add_retry(sub)
    _add_validate(sub)
    _add_schema(sub)
    _add_sandbox(sub)
    coordination_cli.add_parser(sub)
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
        metavar="REGION",
        default=_default_region(),
        help="region of releases whose spec has no spec.region (env ECSOP_REGION, "
        "else AWS_REGION / AWS_DEFAULT_REGION)",
    )


def _add_run(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the reconcile daemon",
        description="Watch the spec directory and keep every ECS service it names on the "
        "images its spec pins: deploy on change, watch the rollout, roll back to the last "
        "good revision on failure. Every flag has an environment variable. AWS access uses "
        "boto3's standard chain (AWS_PROFILE, instance/task role, ...); AWS_ENDPOINT_URL points "
        "it at any AWS-compatible endpoint.",
    )
    run.add_argument(
        "--specs",
        metavar="DIR",
        default=_env("ECSOP_SPECS", None),
        help="spec directory, e.g. a git-sync checkout (env ECSOP_SPECS; "
        "default with --sandbox: ./specs)",
    )
    run.add_argument(
        "--sandbox",
        action="store_true",
        default=_env_flag("ECSOP_SANDBOX"),
        help="start the local ECS simulator in-process and run against it (env ECSOP_SANDBOX)",
    )
    run.add_argument(
        "--sandbox-scenario",
        metavar="FILE",
        default=_env("ECSOP_SANDBOX_SCENARIO", None),
        help="scenario file for --sandbox (env ECSOP_SANDBOX_SCENARIO; default: the demo "
        "scenario matching specs/)",
    )
    run.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=int,
        default=_env("ECSOP_METRICS_PORT", 9100, int),
        help="port of /metrics, /healthz, /readyz, /status (env ECSOP_METRICS_PORT; "
        "default %(default)s)",
    )
    run.add_argument(
        "--metrics-host",
        metavar="ADDRESS",
        default=_env("ECSOP_METRICS_HOST", "0.0.0.0"),
        help="address to serve them on (env ECSOP_METRICS_HOST; default %(default)s)",
    )
    run.add_argument(
        "--resync-interval",
        metavar="SECONDS",
        type=float,
        default=_env("ECSOP_RESYNC_INTERVAL", None, float),
        help="seconds between full passes over every release (env ECSOP_RESYNC_INTERVAL; "
        "default 30, divided by the clock speed with --sandbox). Costs one "
        "DescribeServices per 10 services per pass",
    )
    run.add_argument(
        "--active-poll-interval",
        metavar="SECONDS",
        type=float,
        default=_env("ECSOP_ACTIVE_POLL_INTERVAL", None, float),
        help="seconds between looks at a release whose rollout is in progress "
        "(env ECSOP_ACTIVE_POLL_INTERVAL; default 5, divided by the clock speed with "
        "--sandbox)",
    )
    run.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=_env("ECSOP_WORKERS", 4, int),
        help="releases reconciled at once (env ECSOP_WORKERS; default %(default)s)",
    )
    run.add_argument(
        "--no-self-heal",
        action="store_true",
        default=_env_flag("ECSOP_NO_SELF_HEAL"),
        help="report services changed outside ecsop instead of putting them back "
        "(env ECSOP_NO_SELF_HEAL)",
    )
    run.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=_env("ECSOP_LOG_FORMAT", "auto"),
        help="json lines, or console for people; auto = console on a terminal "
        "(env ECSOP_LOG_FORMAT; default %(default)s)",
    )
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=_env("ECSOP_LOG_LEVEL", "info"),
        help="(env ECSOP_LOG_LEVEL; default %(default)s)",
    )
    run.add_argument(
        "--aws-retry-mode",
        choices=["standard", "adaptive"],
        default=_env("ECSOP_AWS_RETRY_MODE", "adaptive"),
        help="botocore retry mode for throttling and transient errors "
        "(env ECSOP_AWS_RETRY_MODE; default %(default)s)",
    )
    run.add_argument(
        "--aws-max-attempts",
        metavar="N",
        type=int,
        default=_env("ECSOP_AWS_MAX_ATTEMPTS", 10, int),
        help="attempts per AWS call, retries included (env ECSOP_AWS_MAX_ATTEMPTS; "
        "default %(default)s)",
    )
    _spec_options(run)
    coordination_cli.add_run_flags(run)
    run.set_defaults(handler=_run)


def _add_plan(sub: Any) -> None:
    plan = sub.add_parser(
        "plan",
        help="print what the daemon would do now, changing nothing; exit 2 if it would act",
        description="Observe every release's service and print the decision the daemon would "
        "take now (in sync, deploy from X to Y, degraded because ...), without changing "
        "anything. Exit 0 when nothing would change, 2 when something would, 1 on errors.",
    )
    plan.add_argument(
        "--specs",
        metavar="DIR",
        default=_env("ECSOP_SPECS", "specs"),
        help="spec directory (env ECSOP_SPECS)",
    )
    plan.add_argument(
        "--no-self-heal",
        action="store_true",
        default=_env_flag("ECSOP_NO_SELF_HEAL"),
        help="plan as a daemon started with --no-self-heal would",
    )
    _spec_options(plan)
    plan.set_defaults(handler=_plan)


def _add_status(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="show every release's phase and why, from a running daemon",
        description="Read /status from a running daemon and print one line per release.",
    )
    status.add_argument(
        "--url",
        metavar="URL",
        default=_env("ECSOP_URL", DEFAULT_URL),
        help="the daemon's endpoint (env ECSOP_URL; default %(default)s)",
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON, for scripts")
    status.set_defaults(handler=_status)


def _add_retry(sub: Any) -> None:
    retry = sub.add_parser(
        "retry",
        help="clear a release's failed record so the daemon deploys it again",
        description="A release that failed and was rolled back is not deployed again until "
        "its spec changes. `retry` removes that record (the ecsop:failed-* tags on the "
        "service) and asks a running daemon to reconcile the release at once.",
    )
    retry.add_argument("name", help="release name (metadata.name)")
    retry.add_argument(
        "--specs",
        metavar="DIR",
        default=_env("ECSOP_SPECS", "specs"),
        help="spec directory (env ECSOP_SPECS)",
    )
    retry.add_argument(
        "--url",
        metavar="URL",
        default=_env("ECSOP_URL", DEFAULT_URL),
        help="a running daemon to wake (env ECSOP_URL; default %(default)s); "
        "unreachable is fine, it will notice on its next resync",
    )
    _spec_options(retry)
    retry.set_defaults(handler=_retry)


def _add_validate(sub: Any) -> None:
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


def _add_schema(sub: Any) -> None:
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a ServiceRelease",
        description="Print the JSON Schema of a ServiceRelease document, for editors' "
        "YAML plugins (e.g. a '# yaml-language-server: $schema=...' comment).",
    )
    schema.set_defaults(handler=_schema)


def _add_sandbox(sub: Any) -> None:
    sandbox = sub.add_parser(
        "sandbox",
        help="serve the AWS-compatible sandbox endpoint (moto + ECS rollout simulator)",
        description="Serve an AWS-compatible endpoint on 127.0.0.1:PORT with the ECS "
        "rollout simulator inside, until interrupted. Point boto3 or the AWS CLI at it with "
        "--endpoint-url or AWS_ENDPOINT_URL and any dummy credentials.",
    )
    sandbox.add_argument("--scenario", required=True, help="scenario YAML file")
    sandbox.add_argument("--port", type=int, default=4566, help="port (default: %(default)s)")
    sandbox.set_defaults(handler=_run_sandbox)


# --- handlers ----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from ecsop.aws.clients import AwsSettings
    from ecsop.controller.daemon import Daemon, DaemonSettings
    from ecsop.controller.manager import ControllerSettings
    from ecsop.observability import logs

    logs.configure(args.log_format, args.log_level)
    specs = args.specs or ("specs" if args.sandbox else None)
    if specs is None:
        print("ecsop run: --specs DIR (or ECSOP_SPECS) is required", file=sys.stderr)
        return 2
    if args.sandbox and not Path(specs).is_dir():
        print(f"ecsop run: spec directory {specs!r} does not exist", file=sys.stderr)
        return 2
    sandbox = _start_sandbox(args) if args.sandbox else None
    region = args.region or (sandbox.region if sandbox else "")
    if not region:
        print("ecsop run: no region: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    if sandbox is not None and args.replicas > 1:
        coordination_cli.sandbox_table(args, region)
    settings = DaemonSettings(
        controller=ControllerSettings(
            specs=Path(specs),
            default_region=region,
            resync_seconds=_interval(args.resync_interval, 30.0, sandbox),
            active_poll_seconds=_interval(args.active_poll_interval, 5.0, sandbox),
            workers=args.workers,
            self_heal=not args.no_self_heal,
            allow_mutable_tags=args.allow_mutable_tags,
        ),
        aws=AwsSettings(retry_mode=args.aws_retry_mode, max_attempts=args.aws_max_attempts),
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        coordination=coordination_cli.settings(args, args.metrics_host, args.metrics_port),
    )
    try:
        if sandbox is not None and args.replicas > 1:
            sandbox.explain(specs, args.metrics_port)
            return coordination_cli.run_replicas(settings, args.replicas)
        daemon = Daemon(settings)
        if sandbox is not None:
            sandbox.explain(specs, daemon.endpoint.port)
        return daemon.run()
    finally:
        if sandbox is not None:
            sandbox.stop()


def _interval(given: float | None, default: float, sandbox: Any) -> float:
    """An explicit interval as given; the default in simulated seconds on the sandbox.

    The sandbox's clock runs faster than real time, so the daemon must look as
    often in simulated time as it would on AWS, or the simulator finishes a
    whole circuit-breaker rollback between two looks.
    """
    if given is not None:
        return given
    speed = sandbox.server.scenario.clock_speed if sandbox is not None else 0
    return max(0.2, default / speed) if speed > 1 else default


def _start_sandbox(args: argparse.Namespace) -> Any:
    from ecsop.sandbox import demo

    return demo.start(args.sandbox_scenario)


def _plan(args: argparse.Namespace) -> int:
    from ecsop.cli import plan

    return plan.main(
        Path(args.specs),
        default_region=args.region,
        allow_mutable_tags=args.allow_mutable_tags,
        self_heal=not args.no_self_heal,
    )


def _status(args: argparse.Namespace) -> int:
    from ecsop.cli import status as status_cli

    return status_cli.main(args.url, as_json=args.json)


def _retry(args: argparse.Namespace) -> int:
    from ecsop.cli import plan

    return plan.retry(
        Path(args.specs),
        args.name,
        url=args.url,
        default_region=args.region,
        allow_mutable_tags=args.allow_mutable_tags,
    )


def _validate(args: argparse.Namespace) -> int:
    from ecsop.spec import loader as source

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
    from ecsop.spec import model as spec

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
