"""Several replicas: ``ecsop coordination create-table``, the ``run`` flags, ``--replicas``.

``cli.app`` registers the subcommand (``add_parser``) and the run flags
(``add_run_flags``), and asks ``settings`` for the ``CoordinationSettings`` of
a ``run`` (None: no ``--coordination``, one replica, as before).
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import threading
from dataclasses import replace
from typing import Any

from ecsop.cli import options
from ecsop.controller.replica import CoordinationSettings, parse_coordination
from ecsop.runtime.lease import LeaseSettings
from ecsop.runtime.shards import new_replica_id


def add_run_flags(run: argparse.ArgumentParser) -> None:
    group = options.group(run, "several replicas")
    group.description = (
        "Without --coordination the daemon must run as one replica. With it, any number "
        "of replicas share the work: releases are spread over --shards leases in a DynamoDB "
        "table, and a replica acts only on the releases of the shards it holds."
    )
    options.add(
        group,
        "--coordination",
        env="ECSOP_COORDINATION",
        metavar="dynamodb:TABLE",
        show_default="none: one replica",
        help="coordinate replicas through this DynamoDB table (create it with "
        "`ecsop coordination create-table TABLE`)",
    )
    options.add(
        group,
        "--shards",
        env="ECSOP_SHARDS",
        kind=int,
        default=1,
        metavar="N",
        help="leases the releases are spread over, by a stable hash of their names; every "
        "replica must use the same N (1 to 10,000)",
    )
    defaults = LeaseSettings()
    options.add(
        group,
        "--lease-duration",
        env="ECSOP_LEASE_DURATION",
        kind=float,
        default=defaults.lease_seconds,
        metavar="SECONDS",
        show_default=f"{defaults.lease_seconds:g}, client-go's",
        help="how long a replica waits after a lease last changed before taking it",
    )
    options.add(
        group,
        "--renew-deadline",
        env="ECSOP_RENEW_DEADLINE",
        kind=float,
        default=defaults.renew_deadline_seconds,
        metavar="SECONDS",
        show_default=f"{defaults.renew_deadline_seconds:g}",
        help="a holder that could not renew for this long stops acting; must be shorter "
        "than --lease-duration",
    )
    options.add(
        group,
        "--retry-period",
        env="ECSOP_RETRY_PERIOD",
        kind=float,
        default=defaults.retry_period_seconds,
        metavar="SECONDS",
        show_default=f"{defaults.retry_period_seconds:g}",
        help="between two rounds of renewing and acquiring",
    )
    options.add(
        group,
        "--replica-id",
        env="ECSOP_REPLICA_ID",
        metavar="ID",
        show_default="the host name and a random suffix, new on every start",
        help="this replica's name in the table and in writer=",
    )
    options.add(
        group,
        "--advertise-url",
        env="ECSOP_ADVERTISE_URL",
        metavar="URL",
        show_default="http://<host IP>:<metrics port>",
        help="where other replicas reach this one's HTTP endpoint, for /status and "
        "forwarded requeues",
    )
    options.add(
        group,
        "--replicas",
        env="ECSOP_SANDBOX_REPLICAS",
        kind=int,
        default=1,
        metavar="N",
        help="with --sandbox only: run N replicas in this process (ports --metrics-port, "
        "+1, ...), coordinated through a table in the sandbox; the demo of several replicas",
    )


MAX_SHARDS = 10_000
"""The most ``--shards``: a shard number of four digits keeps ``writer=REPLICA@SHARD.TOKEN``
within ``ecsop:state``'s 256 characters with everything else at its longest
(``tests/unit/test_replicas.py``, the longest writer)."""

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
    if not 1 <= args.shards <= MAX_SHARDS:
        raise SystemExit(
            f"ecsop run: --shards must be 1 to {MAX_SHARDS:,} (each replica writes its shard "
            "into the services' ecsop:state tag, whose value ECS caps at 256 characters)"
        )
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
    options.add(
        create,
        "--region",
        env=options.REGION_VARIABLES,
        metavar="REGION",
        default="",
        show_default="none",
        help="region of the table",
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
