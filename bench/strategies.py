"""Scenario 5, time to restore by strategy: the same bad release, rolled back by each.

One sandbox, one cluster, identical web services behind listeners the sandbox
serves as real HTTP (``/_sandbox/listeners``); each service's spec picks a
strategy: ``rolling`` (ecsop's rollback is a new rolling deployment of
last-good), ``blueGreen`` (green judged on the test listener before production
moves) and ``canary`` (10% of production, judged on production). Every service
then gets the same bad image: it passes its load balancer health checks and
answers 500 to every request, so only ecsop's HTTP checks can catch it (on the
production listener for rolling and canary, on the test listener for
blue/green, which is what that strategy is for). The clock runs
``strategy_clock_speed`` x real time and ecsop's active poll is its 5 s
default in simulated time.

Two figures per service, both in simulated seconds:

- **time to restore**, as ecsop measures and exports it
  (``ecsop_time_to_restore_seconds``): from the pass that saw the failure to
  the first pass that saw production traffic fully on last-good, on AWS's
  clock.
- **production on the bad version**, as a client of the service sees it: a
  client requests each production listener every ``REQUEST_EVERY`` real
  seconds from the commit until the service is back; the answers name the
  task definition that served them (the sandbox routes each request by the
  listener rule's weights, as an ALB does). Requests served by the bad revision
  x the request interval = production weight x time on the bad version
  ("100%-seconds"), and the span from the failure being seen to the last such
  answer is the restore as production saw it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import fleet
from bench.config import Config
from bench.harness import Daemon, Sandbox, SpecRepo, percentile, wait_for


@dataclass(frozen=True)
class Row:
    """One line of the table: a strategy, on services whose tasks start this fast."""

    key: str
    strategy: dict[str, Any]
    start_seconds: float
    """From RUNNING to the first passing load balancer health check."""

    @property
    def good(self) -> str:
        return fleet.image(f"good-start-{self.start_seconds:g}")

    @property
    def bad(self) -> str:
        return fleet.image(f"answers-500-start-{self.start_seconds:g}")


TYPICAL_START = 45.0
"""A web service that takes 30 s to start, plus on average half of the load
balancer's default 30 s health check interval until its first passing check (a
new target needs one: "Optimize load balancer health check parameters for Amazon
ECS", Amazon ECS Developer Guide, load-balancer-healthcheck.html)."""
FAST_START = 5.0
"""The sandbox's default: a service ready in 5 s and checked at once."""

ROWS = (
    Row("rolling", {"rolling": {}}, TYPICAL_START),
    Row("rolling-fast", {"rolling": {}}, FAST_START),
    Row("blueGreen", {"blueGreen": {"bakeMinutes": 5}}, TYPICAL_START),
    Row("canary", {"canary": {"percent": 10, "bakeMinutes": 5}}, TYPICAL_START),
)
REQUEST_EVERY = 0.1
"""Real seconds between a client's requests to one production listener."""
CLUSTER = "strategies"


def run(config: Config, workdir: Path) -> dict[str, Any]:
    speed = config.strategy_clock_speed
    rows = {f"{row.key.lower()}-{i}": row for row in ROWS for i in range(config.strategy_services)}
    names = list(rows)
    box = Sandbox(workdir, _scenario(rows, speed), name="strategies-sandbox")
    try:
        endpoints = box.control("GET", "listeners")["listeners"]
        urls = {name: endpoints[f"{CLUSTER}/{name}"] for name in names}
        repo = SpecRepo(workdir / "strategies-specs")
        repo.write({f"{n}.yaml": _release(n, rows[n], rows[n].good, urls[n]) for n in names})
        repo.commit("fleet")
        daemon = Daemon(
            workdir,
            box,
            repo.path,
            "--resync-interval",
            f"{config.resync_sim / speed:g}",
            "--active-poll-interval",
            f"{config.active_poll_sim / speed:g}",
            "--workers",
            str(max(config.workers, len(names))),
        )
        try:
            daemon.wait_settled(len(names), 120)
            blue = {
                s["serviceName"]: s["taskDefinition"]
                for start in range(0, len(names), 10)  # DescribeServices takes 10 at most
                for s in box.ecs().describe_services(
                    cluster=CLUSTER, services=names[start : start + 10]
                )["services"]
            }
            clients = {n: ProductionClient(urls[n]["production"]["url"]) for n in names}
            repo.write({f"{n}.yaml": _release(n, rows[n], rows[n].bad, urls[n]) for n in names})
            repo.commit("the same bad release everywhere")
            wait_for(lambda: _all_restored(daemon, names), 900 / speed + 120, "every rollback")
            time.sleep(3 * config.active_poll_sim / speed)  # late answers of the bad version
            for client in clients.values():
                client.stop()
            seen = _failures_seen(daemon.log_path)
            restores = _restores(daemon.log_path)
        finally:
            daemon.stop()
    finally:
        box.stop()
    per_service = {
        name: _service_result(rows[name], clients[name], blue[name], seen.get(name), speed)
        | {"ecsop_restore_sim_s": restores.get(name, float("nan"))}
        for name in names
    }
    return {
        "services_per_strategy": config.strategy_services,
        "clock_speed": speed,
        "active_poll_sim_s": config.active_poll_sim,
        "request_every_real_s": REQUEST_EVERY,
        "rows": {
            row.key: _summary([r for n, r in per_service.items() if rows[n] is row])
            | {"start_seconds": row.start_seconds}
            for row in ROWS
        },
        "services": per_service,
    }


class ProductionClient:
    """Requests one production listener every ``REQUEST_EVERY`` s; keeps who answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, str, int]] = []
        """(wall time, task definition ARN, HTTP status)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(REQUEST_EVERY):
            sent = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    body, status = json.load(response), int(response.status)
            except urllib.error.HTTPError as error:
                body, status = json.loads(error.read() or b"{}"), int(error.code)
            except (OSError, ValueError):
                continue
            self.answers.append((sent, str(body.get("taskDefinition", "")), status))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _scenario(rows: dict[str, Row], speed: float) -> dict[str, Any]:
    services = {}
    images: dict[str, dict[str, Any]] = {}
    for name, row in rows.items():
        service = fleet.service_spec(name, desired=2)
        service["taskDefinition"]["containerDefinitions"][0]["image"] = row.good
        service["deploymentConfiguration"]["strategy"] = "ROLLING"
        service["healthCheckGracePeriodSeconds"] = 0
        service["loadBalancer"] = {
            "containerName": fleet.CONTAINER,
            "containerPort": 8080,
            # The same for every strategy; a common production setting (ALB's default is
            # 300 s). Production is back when the bad targets start draining, not after.
            "deregistrationDelaySeconds": 30,
            "advancedConfiguration": {"testListener": True},
        }
        services[name] = service
        images[row.good] = {"behavior": "healthy", "startSeconds": row.start_seconds}
        images[row.bad] = {
            "behavior": "healthy",
            "startSeconds": row.start_seconds,
            "errorRate": 1.0,
        }
    return fleet.scenario({CLUSTER: services}, images, clock_speed=speed)


def _release(name: str, row: Row, image: str, urls: dict[str, Any]) -> dict[str, Any]:
    doc = fleet.release(name, CLUSTER, name, image, max_failed_tasks=1, bake_seconds=60)
    rollout = doc["spec"]["rollout"]
    rollout["strategy"] = row.strategy
    check = {"intervalSeconds": 1, "failuresAllowed": 0}
    if "blueGreen" in row.strategy:
        checks = {"httpChecks": [{"url": urls["test"]["url"], **check}]}
        rollout["strategy"] = {"blueGreen": {**row.strategy["blueGreen"], "testTraffic": checks}}
    else:
        rollout["httpChecks"] = [{"url": urls["production"]["url"], **check}]
    return doc


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _failures_seen(log: Path) -> dict[str, float]:
    """Release -> wall time of the pass that decided its rollback."""
    seen: dict[str, float] = {}
    for event in _events(log):
        if event.get("action") == "Rollback" and event.get("release") not in seen:
            stamp = str(event["timestamp"]).replace("Z", "+00:00")
            seen[str(event["release"])] = _epoch(stamp)
    return seen


def _restores(log: Path) -> dict[str, float]:
    """Release -> ecsop's own time to restore (AWS clock, simulated seconds)."""
    return {
        str(e["release"]): float(e["restore_seconds"])
        for e in _events(log)
        if "restore_seconds" in e
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _all_restored(daemon: Daemon, names: list[str]) -> bool:
    restores = _restores(daemon.log_path)
    return all(name in restores for name in names)


def _service_result(
    row: Row,
    client: ProductionClient,
    blue: str,
    failure_seen: float | None,
    speed: float,
) -> dict[str, Any]:
    bad = [at for at, task_definition, _ in client.answers if task_definition not in ("", blue)]
    last_bad = max(bad, default=None)
    production_restore = (
        max(0.0, last_bad - failure_seen) * speed
        if last_bad is not None and failure_seen is not None
        else 0.0
    )
    return {
        "row": row.key,
        "production_restore_sim_s": production_restore,
        "bad_production_answers": len(bad),
        "production_answers": len(client.answers),
        "bad_weight_time_sim_s": len(bad) * REQUEST_EVERY * speed,
        "production_errors": sum(1 for *_, status in client.answers if status >= 500),
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    def values(key: str) -> list[float]:
        return [float(r[key]) for r in results]

    return {
        "samples": len(results),
        "ecsop_restore_p50_s": percentile(values("ecsop_restore_sim_s"), 50),
        "ecsop_restore_max_s": max(values("ecsop_restore_sim_s"), default=float("nan")),
        "production_restore_p50_s": percentile(values("production_restore_sim_s"), 50),
        "bad_weight_time_p50_s": percentile(values("bad_weight_time_sim_s"), 50),
        "bad_production_answers": sum(r["bad_production_answers"] for r in results),
        "production_answers": sum(r["production_answers"] for r in results),
    }
