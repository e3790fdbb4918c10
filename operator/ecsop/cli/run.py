"""``ecsop run``: the reconcile daemon, from flags and environment to ``Daemon.run``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ecsop.cli import coordination, events_flags, notifications, options


def add(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the reconcile daemon",
        description="Watch the spec directory and keep every ECS service it names on the "
        "images its spec pins: deploy on change, watch the rollout, roll back to the last "
        "good revision on failure. Every flag has an environment variable. AWS access uses "
        "boto3's standard chain (AWS_PROFILE, instance/task role, ...); AWS_ENDPOINT_URL points "
        "it at any AWS-compatible endpoint.",
    )
    specs = options.group(run, "specs")
    options.add(
        specs,
        "--specs",
        env="ECSOP_SPECS",
        metavar="DIR",
        show_default="./specs with --sandbox, else required",
        help="spec directory, e.g. a git-sync checkout",
    )
    options.spec_options(specs)
    behaviour = options.group(run, "reconciling")
    options.add(
        behaviour,
        "--resync-interval",
        env="ECSOP_RESYNC_INTERVAL",
        kind=float,
        metavar="SECONDS",
        show_default="30, or 300 with --events-queue, divided by the clock speed with --sandbox",
        help="seconds between full passes over every release; each costs one "
        "DescribeServices per 10 services",
    )
    options.add(
        behaviour,
        "--active-poll-interval",
        env="ECSOP_ACTIVE_POLL_INTERVAL",
        kind=float,
        metavar="SECONDS",
        show_default="5, or 30 with --events-queue, divided by the clock speed with --sandbox",
        help="seconds between looks at a release whose rollout is in progress",
    )
    options.add(
        behaviour,
        "--workers",
        env="ECSOP_WORKERS",
        kind=int,
        default=4,
        metavar="N",
        help="releases reconciled at once",
    )
    options.add(
        behaviour,
        "--no-self-heal",
        env="ECSOP_NO_SELF_HEAL",
        flag_only=True,
        help="report services changed outside ecsop instead of putting them back",
    )
    endpoint = options.group(run, "HTTP endpoint (/metrics, /healthz, /readyz, /status)")
    options.add(
        endpoint,
        "--metrics-port",
        env="ECSOP_METRICS_PORT",
        kind=int,
        default=9100,
        metavar="PORT",
        help="port of /metrics, /healthz, /readyz, /status",
    )
    options.add(
        endpoint,
        "--metrics-host",
        env="ECSOP_METRICS_HOST",
        default="0.0.0.0",
        metavar="ADDRESS",
        help="address to serve them on",
    )
    options.api_token_option(endpoint)
    aws = options.group(run, "AWS")
    options.add(
        aws,
        "--aws-retry-mode",
        env="ECSOP_AWS_RETRY_MODE",
        default="adaptive",
        choices=["standard", "adaptive"],
        help="botocore retry mode for throttling and transient errors",
    )
    options.add(
        aws,
        "--aws-max-attempts",
        env="ECSOP_AWS_MAX_ATTEMPTS",
        kind=int,
        default=10,
        metavar="N",
        help="attempts per AWS call, retries included",
    )
    options.add(
        aws,
        "--api-budget",
        env="ECSOP_API_BUDGET",
        kind=float,
        default=0.5,
        metavar="SHARE",
        help="share of each of AWS's documented API rates (per account and region, e.g. "
        "ECS's 20 DescribeServices a second) ecsop may use: calls wait for it rather than "
        "be throttled, and the resync interval stretches when every release does not fit; "
        "0 turns the budget off",
    )
    analysis = options.group(run, "analysis gates (rollout.analysis)")
    options.add(
        analysis,
        "--prometheus-url",
        env="ECSOP_PROMETHEUS_URL",
        metavar="URL",
        help="Prometheus queried by analyses that name no address, e.g. "
        "http://prometheus.monitoring:9090; may carry user:password@ for basic auth "
        "(sent to this URL's host only, never shown)",
    )
    options.add(
        analysis,
        "--prometheus-bearer-token-file",
        env="ECSOP_PROMETHEUS_BEARER_TOKEN_FILE",
        metavar="FILE",
        show_default="the token in $ECSOP_PROMETHEUS_BEARER_TOKEN, if set",
        help="file holding a bearer token for --prometheus-url's host, read at every query",
    )
    options.add(
        analysis,
        "--analysis-workers",
        env="ECSOP_ANALYSIS_WORKERS",
        kind=int,
        default=4,
        metavar="N",
        help="analysis measurements in flight at once, across every release",
    )
    logging = options.group(run, "logging")
    options.add(
        logging,
        "--log-format",
        env="ECSOP_LOG_FORMAT",
        default="auto",
        choices=["auto", "json", "console"],
        help="json lines, or console for people; auto = console on a terminal",
    )
    options.add(
        logging,
        "--log-level",
        env="ECSOP_LOG_LEVEL",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="least severe level printed",
    )
    trial = options.group(run, "local trial")
    options.add(
        trial,
        "--sandbox",
        env="ECSOP_SANDBOX",
        flag_only=True,
        help="start the local ECS simulator in-process and run against it",
    )
    options.add(
        trial,
        "--sandbox-scenario",
        env="ECSOP_SANDBOX_SCENARIO",
        metavar="FILE",
        show_default="the demo scenario matching specs/",
        help="scenario file for --sandbox",
    )
    tell = options.group(run, "telling people")
    options.add(
        tell,
        "--notifications",
        env="ECSOP_NOTIFICATIONS",
        metavar="FILE",
        show_default="no notifications",
        help="notification providers and routes (Slack, GitHub commit statuses, webhooks); "
        "secrets come from the environment or files it names, never the file itself",
    )
    options.add(
        tell,
        "--status-history",
        env="ECSOP_STATUS_HISTORY",
        kind=int,
        default=notifications.DEFAULT_STATUS_HISTORY,
        metavar="N",
        help="recent deployments /status shows per release, read from AWS when /status is "
        "asked and cached until it changes; 0 turns it off",
    )
    events_flags.add(run)
    coordination.add_run_flags(run)
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ecsop.aws.budget import BudgetSettings
    from ecsop.aws.clients import AwsSettings
    from ecsop.controller.daemon import Daemon, DaemonSettings
    from ecsop.controller.manager import ControllerSettings
    from ecsop.observability import logs
    from ecsop.observability.server import ListenError
    from ecsop.probes.health import HealthSettings
    from ecsop.runtime.malloc import limit_arenas

    limit_arenas()  # before any thread: see ecsop.runtime.malloc
    token = options.api_token(args.api_token_file)  # refused before anything starts
    if args.api_budget < 0:
        raise options.UsageError("--api-budget (env ECSOP_API_BUDGET) cannot be negative")
    analysis = _analysis_settings(args)
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
        coordination.sandbox_table(args, region)
    settings = DaemonSettings(
        controller=ControllerSettings(
            specs=Path(specs),
            default_region=region,
            resync_seconds=_interval(
                args.resync_interval, events_flags.resync_default(args), sandbox
            ),
            active_poll_seconds=_interval(
                args.active_poll_interval, events_flags.poll_default(args), sandbox
            ),
            workers=args.workers,
            self_heal=not args.no_self_heal,
            allow_mutable_tags=args.allow_mutable_tags,
            events=events_flags.settings(
                args, lambda given, default: _interval(given, default, sandbox)
            ),
        ),
        aws=AwsSettings(retry_mode=args.aws_retry_mode, max_attempts=args.aws_max_attempts),
        health=HealthSettings(analysis=analysis),
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        api_token=token,
        coordination=coordination.settings(args, args.metrics_host, args.metrics_port),
        budget=BudgetSettings(share=args.api_budget),
        **notifications.settings(args, Path(specs)),
    )
    try:
        if sandbox is not None and args.replicas > 1:
            sandbox.explain(specs, args.metrics_port)
            return coordination.run_replicas(settings, args.replicas)
        try:
            daemon = Daemon(settings)
        except ListenError as exc:
            print(
                f"ecsop run: {exc}; choose another port with --metrics-port PORT "
                "(env ECSOP_METRICS_PORT)",
                file=sys.stderr,
            )
            return 2
        if sandbox is not None:
            sandbox.explain(specs, daemon.endpoint.port)
        return daemon.run()
    finally:
        if sandbox is not None:
            sandbox.stop()


def _analysis_settings(args: argparse.Namespace) -> Any:
    """The analysis flags, checked before anything starts (a bad URL or token file is exit 2)."""
    from ecsop.probes.analysis import TOKEN_VARIABLE, AnalysisSettings
    from ecsop.spec.analysis import address_problem

    url = args.prometheus_url or ""
    problem = address_problem(url, credentials_allowed=True) if url else None
    if problem:
        raise options.UsageError(f"--prometheus-url (env ECSOP_PROMETHEUS_URL): {problem}")
    token_file = args.prometheus_bearer_token_file or ""
    if token_file:
        try:
            readable = bool(Path(token_file).read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise options.UsageError(
                f"cannot read the Prometheus bearer token file {token_file}: {why}"
            ) from None
        if not readable:
            raise options.UsageError(f"the Prometheus bearer token file {token_file} is empty")
    if args.analysis_workers < 1:
        raise options.UsageError("--analysis-workers must be at least 1")
    return AnalysisSettings(
        prometheus_url=url,
        bearer_token_file=token_file,
        bearer_token=os.environ.get(TOKEN_VARIABLE, "").strip(),
        workers=args.analysis_workers,
    )


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
