"""The two alternatives ecsop is measured against, written the way they are usually written.

``script`` is the common per-service deploy-and-watch script a CI job runs on
a merge: read the service's task definition, register a copy with the new
image, UpdateService, then poll DescribeServices every 30 (simulated) seconds
and put the previous task definition back as soon as ``failedTasks > 0``. It
is launched as a fresh process per deploy, as a pipeline step would be (its
queueing time in a real CI system is not counted: the bench starts it the
instant the commit exists).

``naive`` is a naive reconciler: every interval it reads the spec directory
and, for each release, describes its service with its own DescribeServices and
the running task definition with DescribeTaskDefinition (no batching, no
cache), deploys on a difference and rolls back a rollout of its own as soon as
``failedTasks > 0`` (then leaves that release alone until its spec changes).
It uses as many threads as ecsop has workers.

``watch`` is the script's watching phase for a whole fleet at once (N scripts
polling one service each): what the script approach costs while N services are
being watched.

``floor`` is the botocore floor of one ecsop resync: every interval it makes
only the calls ecsop's resync cannot avoid, exactly as ecsop sends them
(DescribeServices of every service, ``ecsop.aws.ecs.DESCRIBE_SERVICES_BATCH``
names per call, ``include=["TAGS"]``) through a client built by ecsop's own
``ecsop.aws.clients.ClientFactory`` (its retry mode, timeouts and timestamp
parser), and does nothing with the answers: building, signing, sending and
parsing them is what any botocore-based operator pays per resync.

Run as ``python -m bench.baselines {script,naive,watch,floor} ...``; the
benchmark sets ``AWS_ENDPOINT_URL`` and a per-contender access key. ``naive``,
``watch`` and ``floor`` write a JSON report (per-pass wall and CPU time, peak
RSS) to ``--report``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

READ_ONLY_TASK_DEFINITION_FIELDS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
)
"""What the usual ``jq 'del(...)'`` strips before ``register-task-definition``."""


def ecs_client() -> Any:
    import boto3
    from botocore.config import Config

    retries = {"mode": "standard", "max_attempts": 10}
    return boto3.client("ecs", config=Config(retries=retries, max_pool_connections=32))


def register_copy(ecs: Any, described: dict[str, Any], images: dict[str, str]) -> str:
    """Register ``described`` (a DescribeTaskDefinition answer) with ``images`` swapped in."""
    body = {
        k: v
        for k, v in described["taskDefinition"].items()
        if k not in READ_ONLY_TASK_DEFINITION_FIELDS
    }
    for container in body["containerDefinitions"]:
        if container["name"] in images:
            container["image"] = images[container["name"]]
    if described.get("tags"):
        body["tags"] = described["tags"]
    arn: str = ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    return arn


def primary_of(service: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in service["deployments"] if d["status"] == "PRIMARY")


# --- the deploy-and-watch script ----------------------------------------------------


def deploy_and_watch(
    cluster: str, service: str, container: str, image: str, poll: float, timeout: float
) -> str:
    ecs = ecs_client()
    current = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    previous = current["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition=previous, include=["TAGS"])
    new = register_copy(ecs, described, {container: image})
    ecs.update_service(cluster=cluster, service=service, taskDefinition=new)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(poll)
        watched = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        primary = primary_of(watched)
        if primary.get("failedTasks", 0) > 0:
            ecs.update_service(cluster=cluster, service=service, taskDefinition=previous)
            return "rolled_back"
        if primary.get("rolloutState") == "COMPLETED":
            return "succeeded"
    return "timed_out"


# --- the naive reconciler -----------------------------------------------------------


def read_releases(specs: Path) -> list[dict[str, Any]]:
    releases = []
    for path in sorted(specs.rglob("*.yaml")):
        if any(part.startswith(".") for part in path.relative_to(specs).parts):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ServiceRelease":
                releases.append(doc)
    return releases


class NaiveReconciler:
    def __init__(self, specs: Path, workers: int) -> None:
        self.specs = specs
        self.workers = workers
        self.ecs = ecs_client()
        self._lock = threading.Lock()
        self.deployed_from: dict[str, str] = {}
        """release -> the task definition it ran before our deploy (to roll back to)."""
        self.failed: dict[str, str] = {}
        """release -> images (as JSON) that failed: not deployed again until the spec changes."""

    def run_pass(self) -> None:
        releases = read_releases(self.specs)
        with ThreadPoolExecutor(self.workers) as pool:
            for _ in pool.map(self.reconcile, releases):
                pass

    def reconcile(self, release: dict[str, Any]) -> None:
        name, spec = release["metadata"]["name"], release["spec"]
        cluster, service_name = spec["cluster"], spec["service"]
        desired: dict[str, str] = spec["containers"]
        wanted = json.dumps(desired, sort_keys=True)
        service = self.ecs.describe_services(cluster=cluster, services=[service_name])["services"][
            0
        ]
        described = self.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
        primary = primary_of(service)
        with self._lock:
            previous = self.deployed_from.get(name)
            failed = self.failed.get(name)
        if primary.get("rolloutState") == "IN_PROGRESS":
            if previous and primary.get("failedTasks", 0) > 0 and failed != wanted:
                with self._lock:
                    self.failed[name] = wanted
                self.ecs.update_service(
                    cluster=cluster, service=service_name, taskDefinition=previous
                )
            return
        running = {
            c["name"]: c["image"] for c in described["taskDefinition"]["containerDefinitions"]
        }
        if all(running.get(c) == i for c, i in desired.items()) or failed == wanted:
            return
        new = register_copy(self.ecs, described, desired)
        with self._lock:
            self.deployed_from[name] = service["taskDefinition"]
        self.ecs.update_service(cluster=cluster, service=service_name, taskDefinition=new)


# --- the script's watch phase, for a fleet ------------------------------------------


def watch_round(ecs: Any, cluster: str, services: list[str], workers: int) -> None:
    def poll(service: str) -> None:
        ecs.describe_services(cluster=cluster, services=[service])

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(poll, services):
            pass


# --- the botocore floor of a resync ----------------------------------------------------


def floor_client() -> Any:
    """ECS client as ecsop's daemon builds it (without its metrics, fence and budget hooks,
    which are ecsop's own cost): ``ClientFactory``'s botocore ``Config`` and session."""
    from ecsop.aws.clients import ClientFactory

    return ClientFactory().client("ecs", None)


def floor_round(ecs: Any, cluster: str, services: list[str], workers: int) -> None:
    """DescribeServices of every service in ecsop's batches, answers dropped."""
    from ecsop.aws.ecs import DESCRIBE_SERVICES_BATCH

    batches = [
        services[start : start + DESCRIBE_SERVICES_BATCH]
        for start in range(0, len(services), DESCRIBE_SERVICES_BATCH)
    ]

    def describe(batch: list[str]) -> None:
        ecs.describe_services(cluster=cluster, services=batch, include=["TAGS"])

    if workers <= 1:
        for batch in batches:
            describe(batch)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(describe, batches):
            pass


# --- running and reporting ------------------------------------------------------------


def peak_rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_passes(
    one_pass: Callable[[], None],
    interval: float,
    passes: int | None,
    duration: float | None,
    report: Path | None,
) -> None:
    """Run ``one_pass`` every ``interval`` seconds; report each pass's wall and CPU time."""
    records: list[dict[str, float]] = []
    started = time.monotonic()
    stop = threading.Event()
    count = 0
    try:
        while not stop.is_set():
            begin_wall, begin_cpu = time.time(), time.process_time()
            one_pass()
            end_wall, end_cpu = time.time(), time.process_time()
            records.append({"start": begin_wall, "end": end_wall, "cpu": end_cpu - begin_cpu})
            count += 1
            if report is not None:
                _write(report, records)
            if passes is not None and count >= passes:
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
            stop.wait(max(0.0, interval - (end_wall - begin_wall)))
    finally:
        if report is not None:
            _write(report, records)


def _write(report: Path, records: Iterable[dict[str, float]]) -> None:
    tmp = report.with_suffix(".tmp")
    tmp.write_text(json.dumps({"passes": list(records), "peak_rss_kib": peak_rss_kib()}))
    tmp.replace(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    script = sub.add_parser("script", help="deploy one image to one service and watch it")
    script.add_argument("--cluster", required=True)
    script.add_argument("--service", required=True)
    script.add_argument("--container", required=True)
    script.add_argument("--image", required=True)
    script.add_argument("--poll", type=float, default=30.0, help="real seconds between polls")
    script.add_argument("--timeout", type=float, default=900.0)
    naive = sub.add_parser("naive", help="the naive reconciler")
    naive.add_argument("--specs", type=Path, required=True)
    naive.add_argument("--interval", type=float, default=30.0)
    naive.add_argument("--workers", type=int, default=4)
    naive.add_argument("--passes", type=int)
    naive.add_argument("--duration", type=float)
    naive.add_argument("--report", type=Path)
    watch = sub.add_parser("watch", help="N deploy-and-watch scripts' polling, for a fleet")
    watch.add_argument("--cluster", required=True)
    watch.add_argument("--services", type=Path, required=True, help="file: one name per line")
    watch.add_argument("--interval", type=float, default=30.0)
    watch.add_argument("--workers", type=int, default=4)
    watch.add_argument("--passes", type=int)
    watch.add_argument("--duration", type=float)
    watch.add_argument("--report", type=Path)
    floor = sub.add_parser("floor", help="the botocore calls one ecsop resync cannot avoid")
    floor.add_argument("--cluster", required=True)
    floor.add_argument("--services", type=Path, required=True, help="file: one name per line")
    floor.add_argument("--interval", type=float, default=30.0)
    floor.add_argument("--workers", type=int, default=4, help="threads; 1: one at a time")
    floor.add_argument("--passes", type=int)
    floor.add_argument("--duration", type=float)
    floor.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    if args.command == "script":
        outcome = deploy_and_watch(
            args.cluster, args.service, args.container, args.image, args.poll, args.timeout
        )
        print(outcome, flush=True)
        return 0 if outcome == "succeeded" else 1
    if args.command == "naive":
        reconciler = NaiveReconciler(args.specs, args.workers)
        run_passes(reconciler.run_pass, args.interval, args.passes, args.duration, args.report)
        return 0
    names = [line.strip() for line in args.services.read_text().splitlines() if line.strip()]
    ecs = floor_client() if args.command == "floor" else ecs_client()
    one_round = floor_round if args.command == "floor" else watch_round
    run_passes(
        lambda: one_round(ecs, args.cluster, names, args.workers),
        args.interval,
        args.passes,
        args.duration,
        args.report,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
