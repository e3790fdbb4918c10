"""HTTP endpoints standing for the load balancer listeners of traffic-shifting services.

moto's ELBv2 keeps listeners and rules but serves no traffic. For each
scenario service with ``advancedConfiguration`` the sandbox serves, on its own
port of 127.0.0.1, one endpoint per listener (production, and test when the
service has a test listener rule) that routes every request the way an
Application Load Balancer does: a target group chosen by the listener rule's
forward-action weights, then one of that group's healthy registered targets
("Listener rules for your Application Load Balancer", weighted target groups,
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-listeners.html).
The task answers as its image behaves: an image failing its health checks
answers its ``healthCheckCodes``, an image with an ``errorRate`` answers 500
that often (seeded), anything else 200; no healthy target is ALB's 503.

So an HTTP check pointed at the test listener really judges green, and a
request to the production listener really reaches whichever revision ECS's
weights send it to. Every answer is counted per listener and task definition
(``GET /_sandbox/listeners``): how much production traffic a bad revision got.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ecsop.sandbox.model import LoadBalancerBinding, Service, Task, TaskStatus

if TYPE_CHECKING:
    from ecsop.sandbox.scenario import Scenario
    from ecsop.sandbox.simulator import Simulator


@dataclass
class _Listener:
    service: Service
    binding: LoadBalancerBinding
    kind: str
    """``production`` or ``test``."""
    rule_arn: str
    server: ThreadingHTTPServer | None = None
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(task definition ARN, HTTP status) -> requests answered so."""

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


class ListenerEndpoints:
    """One HTTP endpoint per listener of every traffic-shifting service."""

    def __init__(self, sim: Simulator, scenario: Scenario) -> None:
        self._sim = sim
        self._rng = random.Random(scenario.seed ^ 0x5EED)
        self._listeners: list[_Listener] = []
        ports = _fixed_ports(scenario)
        with sim.lock:
            for service in sim.services.values():
                for binding in service.load_balancers:
                    advanced = binding.advanced or {}
                    for kind, key in (
                        ("production", "productionListenerRule"),
                        ("test", "testListenerRule"),
                    ):
                        if advanced.get(key):
                            self._listeners.append(
                                _Listener(service, binding, kind, str(advanced[key]))
                            )
        for listener in self._listeners:
            port = ports.get((listener.service.key, listener.kind), 0)
            listener.server = self._serve(listener, port)

    def describe(self) -> dict[str, Any]:
        """``GET /_sandbox/listeners``: each service's listener URLs and what they answered."""
        out: dict[str, Any] = {}
        with self._sim.lock:
            for listener in self._listeners:
                key = "/".join(listener.service.key)
                answers: dict[str, dict[str, int]] = {}
                for (task_definition, status), count in sorted(listener.answers.items()):
                    answers.setdefault(task_definition, {})[str(status)] = count
                out.setdefault(key, {})[listener.kind] = {
                    "url": listener.url,
                    "rule": listener.rule_arn,
                    "answers": answers,
                }
        return {"listeners": out}

    def close(self) -> None:
        for listener in self._listeners:
            if listener.server is not None:
                listener.server.shutdown()
                listener.server.server_close()

    def _serve(self, listener: _Listener, port: int) -> ThreadingHTTPServer:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = endpoints.answer(listener)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                """Quiet: a check every second would drown the sandbox's log."""

        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError:  # the asked-for port is taken (another sandbox): any free one
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-listener-{listener.kind}",
            daemon=True,
        ).start()
        return server

    def answer(self, listener: _Listener) -> tuple[int, dict[str, Any]]:
        """Route one request as the ALB would, and answer as the chosen task would."""
        sim = self._sim
        sim.sync()
        with sim.lock:
            weights = sim.rules.weights(listener.rule_arn)
            groups = [(group, weight) for group, weight in weights.items() if weight > 0]
            if not groups:
                return 503, {"error": "no target group has weight"}
            group = self._rng.choices([g for g, _ in groups], weights=[w for _, w in groups])[0]
            serving = _serving(listener.service, listener.binding)
            targets = [t for t in serving if t.target_group(listener.binding) == group]
            if not targets:
                return 503, {"error": f"no healthy target in {group.rsplit('/', 2)[-2]}"}
            task = self._rng.choice(targets)
            status = _status_of(task, self._rng)
            listener.answers[(task.task_definition_arn, status)] += 1
            return status, {
                "task": task.id,
                "taskDefinition": task.task_definition_arn,
                "targetGroup": group,
            }


def _fixed_ports(scenario: Scenario) -> dict[tuple[tuple[str, str], str], int]:
    """(service key, listener kind) -> the local port the scenario asks for."""
    ports: dict[tuple[tuple[str, str], str], int] = {}
    for cluster_name, cluster in scenario.clusters.items():
        for name, spec in cluster.services.items():
            advanced = spec.load_balancer.advanced if spec.load_balancer else None
            if advanced is None or spec.count != 1:
                continue
            if advanced.local_production_port:
                ports[((cluster_name, name), "production")] = advanced.local_production_port
            if advanced.local_test_port:
                ports[((cluster_name, name), "test")] = advanced.local_test_port
    return ports


def _serving(service: Service, binding: LoadBalancerBinding) -> list[Task]:
    return [
        task
        for deployment in service.deployments
        for task in deployment.tasks.values()
        if task.last_status is TaskStatus.RUNNING and task.registered_target and task.healthy
    ]


def _status_of(task: Task, rng: random.Random) -> int:
    plan = task.plan
    if plan.unhealthy:
        codes = [int(c) for c in plan.health_check_codes.strip("[]").split(",") if c.strip()]
        return codes[0] if codes else 500
    if plan.traffic is not None and rng.random() < plan.traffic.error_rate:
        return 500
    return 200
