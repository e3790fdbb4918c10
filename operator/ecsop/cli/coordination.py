"""Several replicas: ``ecsop coordination create-table``, the ``run`` flags, ``--replicas``.

``cli.app`` registers the subcommand (``add_parser``) and the run flags
(``add_run_flags``), and asks ``settings`` for the ``CoordinationSettings`` of
a ``run`` (None: no ``--coordination``, one replica, as before).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ecsop.controller.replica import CoordinationSettings, parse_coordination
from ecsop.runtime.lease import LeaseSettings
from ecsop.runtime.shards import new_replica_id


def _env(name: str, default: Any, kind: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"ecsop: environment variable {name}={raw!r} is not valid") from None


def add_run_flags(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group(
        "several replicas",
        "Without --coordination the daemon must run as one replica. With it, any number "
        "of replicas share the work: releases are spread over --shards leases in a DynamoDB "
        "table, and a replica acts only on the releases of the shards it holds.",
    )
    group.add_argument(
        "--coordination",
        metavar="dynamodb:TABLE",
        default=_env("ECSOP_COORDINATION", None),
        help="coordinate replicas through this DynamoDB table (env ECSOP_COORDINATION; "
        "create it with `ecsop coordination create-table TABLE`)",
    )
    group.add_argument(
        "--shards",
        metavar="N",
        type=int,
        default=_env("ECSOP_SHARDS", 1, int),
        help="leases the releases are spread over, by a stable hash of their names; every "
        "replica must use the same N (env ECSOP_SHARDS; default %(default)s)",
    )
    defaults = LeaseSettings()
    group.add_argument(
        "--lease-duration",
        metavar="SECONDS",
        type=float,
        default=_env("ECSOP_LEASE_DURATION", defaults.lease_seconds, float),
        help="how long a replica waits after a lease last changed before taking it "
        "(env ECSOP_LEASE_DURATION; default %(default)s, client-go's)",
    )
    group.add_argument(
        "--renew-deadline",
        metavar="SECONDS",
        type=float,
        default=_env("ECSOP_RENEW_DEADLINE", defaults.renew_deadline_seconds, float),
        help="a holder that could not renew for this long stops acting; must be shorter "
        "than --lease-duration (env ECSOP_RENEW_DEADLINE; default %(default)s)",
    )
    group.add_argument(
        "--retry-period",
        metavar="SECONDS",
        type=float,
        default=_env("ECSOP_RETRY_PERIOD", defaults.retry_period_seconds, float),
        help="between two rounds of renewing and acquiring (env ECSOP_RETRY_PERIOD; "
        "default %(default)s)",
    )
    group.add_argument(
        "--replica-id",
        metavar="ID",
        default=_env("ECSOP_REPLICA_ID", None),
        help="this replica's name in the table and in writer= (env ECSOP_REPLICA_ID; "
        "default: the host name and a random suffix, new on every start)",
    )
    group.add_argument(
        "--advertise-url",
        metavar="URL",
        default=_env("ECSOP_ADVERTISE_URL", None),
        help="where other replicas reach this one's HTTP endpoint, for /status and "
        "forwarded requeues (env ECSOP_ADVERTISE_URL; default http://<host IP>:<metrics port>)",
    )
    group.add_argument(
        "--replicas",
        metavar="N",
        type=int,
        default=1,
        help="with --sandbox only: run N replicas in this process (ports --metrics-port, "
        "+1, ...), coordinated through a table in the sandbox; the demo of several replicas",
    )


def settings(args: argparse.Namespace, metrics_host: str, port: int) -> CoordinationSettings | None:
    """The coordination of one ``run`` from its flags; None without ``--coordination``."""
    if not args.coordination:
        if args.shards != 1:
            raise SystemExit("ecsop run: --shards needs --coordination dynamodb:TABLE")
        return None
    try:
        table = parse_coordination(args.coordination)
        lease = LeaseSettings(
            lease_seconds=args.lease_duration,
            renew_deadline_seconds=args.renew_deadline,
            retry_period_seconds=args.retry_period,
        )
    except ValueError as exc:
        raise SystemExit(f"ecsop run: {exc}") from None
    if args.shards < 1:
        raise SystemExit("ecsop run: --shards must be at least 1")
    if args.replica_id and not re.fullmatch(r"[A-Za-z0-9._:-]{1,48}", args.replica_id):
        raise SystemExit(
            "ecsop run: --replica-id: 1 to 48 letters, digits, '.', '_', ':' or '-' "
            "(it is written into ECS tags)"
        )
    return CoordinationSettings(
        table=table,
        replica_id=args.replica_id or new_replica_id(socket.gethostname()),
        url=args.advertise_url or _default_url(metrics_host, port),
        shards=args.shards,
        lease=lease,
    )


def _default_url(host: str, port: int) -> str:
    if host not in ("", "0.0.0.0", "::"):
        return f"http://{host}:{port}"
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = socket.gethostname()
    return f"http://{address}:{port}"


SANDBOX_TABLE = "ecsop-sandbox"


def sandbox_table(args: argparse.Namespace, region: str) -> None:
    """``--sandbox --replicas N``: the coordination table in the sandbox (and enough shards)."""
    from ecsop.aws.clients import ClientFactory
    from ecsop.aws.coordination import create_table

    args.coordination = args.coordination or f"dynamodb:{SANDBOX_TABLE}"
    if args.shards == 1:
        args.shards = 2 * args.replicas  # so the demo shows the work spread, not only fail-over
    create_table(ClientFactory().client("dynamodb", region), parse_coordination(args.coordination))


def run_replicas(daemon_settings: Any, replicas: int) -> int:
    """``ecsop run --sandbox --replicas N``: N coordinated daemons in this process."""
    from ecsop.controller.daemon import Daemon

    coordination = daemon_settings.coordination
    assert coordination is not None
    daemons = []
    for index in range(replicas):
        port = daemon_settings.metrics_port + index
        daemons.append(
            Daemon(
                replace(
                    daemon_settings,
                    metrics_port=port,
                    coordination=replace(
                        coordination,
                        replica_id=f"{coordination.replica_id}-{index}",
                        url=f"http://127.0.0.1:{port}",
                    ),
                )
            )
        )
    stop = threading.Event()
    threads = [
        threading.Thread(target=daemon.run, args=(stop,), name=f"replica-{i}", daemon=True)
        for i, daemon in enumerate(daemons)
    ]
    for thread in threads:
        thread.start()
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return 0


def add_parser(sub: Any) -> None:
    command = sub.add_parser(
        "coordination",
        help="set up the DynamoDB table that lets several replicas share the work",
        description="The table behind `ecsop run --coordination dynamodb:TABLE`.",
    )
    verbs = command.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser(
        "create-table",
        help="create the coordination table (on-demand capacity, TTL) if it does not exist",
        description="Create TABLE with partition key `pk`, on-demand capacity and TTL on "
        "`ttl`, and wait until it is ACTIVE. Idempotent. Needs dynamodb:CreateTable, "
        "DescribeTable, DescribeTimeToLive and UpdateTimeToLive (the daemon itself needs "
        "only Scan and UpdateItem on the table).",
    )
    create.add_argument("table", metavar="TABLE")
    create.add_argument(
        "--region",
        metavar="REGION",
        default=_env("ECSOP_REGION", "")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION", ""),
        help="region of the table (env ECSOP_REGION, else AWS_REGION / AWS_DEFAULT_REGION)",
    )
    create.set_defaults(handler=_create_table)


def _create_table(args: argparse.Namespace) -> int:
    from ecsop.aws.clients import AwsError, ClientFactory
    from ecsop.aws.coordination import create_table

    if not args.region:
        print("ecsop coordination: no region: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    client = ClientFactory().client("dynamodb", args.region)
    try:
        outcome = create_table(client, args.table)
    except AwsError as exc:
        print(f"ecsop coordination: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{args.table}: {outcome}; run replicas with --coordination dynamodb:{args.table}")
    return 0
