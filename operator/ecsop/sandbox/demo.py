"""``ecsop run --sandbox``: the sandbox endpoint in-process, and a guided tour.

Starts ``SandboxServer`` with the demo scenario (``demo.yaml``, which matches
the example ``specs/``), points boto3 at it through the standard environment
variables, so the daemon's production code path is used unchanged, and tells
the newcomer what to edit to see a deploy and each kind of automatic rollback.

For the HTTP-check gate it also serves a tiny smoke endpoint,
``/<cluster>/<service>``, that answers as the service's serving tasks would:
500 while any of them runs the ``SMOKE_500`` image, 200 otherwise. Nothing
else in the sandbox answers HTTP the way an application does.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ecsop.sandbox.scenario import load_scenario
from ecsop.sandbox.server import SandboxServer
from ecsop.sandbox.simulator import Simulator

DEMO_SCENARIO = Path(__file__).with_name("demo.yaml")
API_REPOSITORY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/taskboard-api"
V1_5 = "c7aa851d3bc1db87561f200b55082aad56d29a4af40c38f242ae0154b8f5fced"
CRASHLOOP = "d4d63d598cb81576ed3871e8c2e5fabc4ec4e4157bc27f97c4590542df24344b"
UNHEALTHY = "59233b6fe80dcdad24162d3d22e28579bdfe7c2f46b2dd4e858f6608f57b3f4f"
ALARM = "a56b6c86a1b03a5bf47ef6024d06c89e9d9cc8714ef1aaf9b4549eae0d57f6f5"
SMOKE_500 = "c9d605aa6b83c59d942eb2c251ea7ae0507945e2c7daab4333f390a922e40196"
"""Healthy to ECS and the load balancer; the smoke endpoint answers 500 while it serves."""
BAD_MIGRATION = "64cceb0783172aa71c72cf599930166f132f41f27515ca368eec0c650aa02443"
"""Healthy, but its migration (the specs' pre-deploy step) exits 1: nothing is deployed."""
BAD_SMOKE = "d4aafd3f76b56aea739dea69080987ff177ad374b99d361e12f2b7aa9cf3d556"
"""Healthy, but its smoke test (the specs' verify step) exits 1: rolled back."""
WEB_REPOSITORY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/taskboard-web"
WEB_V3_1 = "9f606588de72969076b0c7773fb7ac65116f4880b1367ed6aa75394726a6ec27"
WEB_BROKEN = "5faa7b90d3822c01df89aa281331a304a3a628079e0140f02cfaa04d57c2f89f"
WEB_BAD_APP = "3b1cdd0c47d7b1c2b3cea9bc6d0e0c1b5f0c9a1e4d5f6a7b8c9d0e1f2a3b4c5d"
"""Fails its health checks: caught in the green target group, production never moves."""


class SmokeEndpoint:
    """``GET /<cluster>/<service>``: 500 while a serving task runs ``SMOKE_500``, else 200."""

    def __init__(self, sim: Simulator) -> None:
        smoke = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = smoke.status(self.path.strip("/"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._sim = sim
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="sandbox-smoke", daemon=True).start()

    def status(self, path: str) -> int:
        cluster, _, name = path.partition("/")
        self._sim.sync()
        with self._sim.lock:
            service = self._sim.services.get((cluster, name))
            if service is None:
                return 404
            serving = [t for d in service.deployments for t in d.live() if t.healthy]
            broken = any(SMOKE_500 in c.image for t in serving for c in t.containers)
        return 500 if broken else 200

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@dataclass
class RunningSandbox:
    server: SandboxServer
    region: str
    smoke: SmokeEndpoint

    def explain(self, specs: str, metrics_port: int) -> None:
        """Say, on stderr (stdout carries the logs), what to watch and what to try."""
        daemon = f"http://127.0.0.1:{metrics_port}"
        speed = self.server.scenario.clock_speed
        check_url = f"{self.smoke.url}/staging/taskboard-api"
        print(
            f"""
ecsop is running against a simulated ECS at {self.server.endpoint_url} (clock x{speed:g}).
  status:  ecsop status --url {daemon}        metrics: {daemon}/metrics
  other commands reach the sandbox with: export AWS_ENDPOINT_URL={self.server.endpoint_url} \
      AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_REGION={self.region}
  staging runs one version behind its spec, so watch it deploy now.

Try it (in another terminal): promote what staging proved to production, as the runbook says:
  ecsop promote taskboard-api-staging taskboard-api-prod --specs {specs}   # prints the diff
  ecsop approve taskboard-api-prod --specs {specs} --url {daemon}          # then it deploys
  (outside the freezes of {specs}/ecsop-policy.yaml; the worker waits for the API)
Break staging, editing {specs}/taskboard-api.yaml, release taskboard-api-staging:
  rollback:  set its `api` image to {API_REPOSITORY}@sha256:{CRASHLOOP}
             (crash-loops; ECS or ecsop rolls it back; production never gets it)
  gates, each rolled back with its own reason in status, logs and metrics:
    target_health  ...@sha256:{UNHEALTHY} (fails ELB health checks)
    alarm          ...@sha256:{ALARM} (trips taskboard-api-staging-5xx)
    http_check     ...@sha256:{SMOKE_500} (healthy to ECS), with under rollout:
                   httpChecks: [{{url: "{check_url}", intervalSeconds: 1, failuresAllowed: 1}}]
  A release is last-good only after every gate stays green for bakeSeconds after COMPLETED.
  steps: every api release runs its migration first and its smoke test in the bake:
    ...@sha256:{BAD_MIGRATION} (its migration fails: nothing deployed)
    ...@sha256:{BAD_SMOKE} (its smoke test fails: rolled back, reason verify)
Blue/green: edit {specs}/taskboard-web.yaml (release taskboard-web-prod, strategy
  blueGreen with a test-traffic check on the test listener, 127.0.0.1:39081 here):
  good     {WEB_REPOSITORY}@sha256:{WEB_V3_1} (test traffic, then all production at once)
  bad app  ...@sha256:{WEB_BAD_APP} (answers 500 on the test listener: rolled back
           before any production request reaches it; reason test_traffic)
  broken   ...@sha256:{WEB_BROKEN} (fails health checks; ECS's breaker rolls back)
  `ecsop status` shows the stage; GET /_sandbox/listeners what each listener answered.
then run `ecsop status --url {daemon}`. `git checkout {specs}` puts the examples back.
Ctrl-C stops both the daemon and the sandbox.
""",
            file=sys.stderr,
            flush=True,
        )

    def stop(self) -> None:
        self.smoke.stop()
        self.server.stop()


def start(scenario_path: str | None) -> RunningSandbox:
    scenario = load_scenario(scenario_path or str(DEMO_SCENARIO))
    server = SandboxServer(scenario).start()
    # The daemon finds the endpoint the way it would find any AWS-compatible one.
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    os.environ["AWS_ACCESS_KEY_ID"] = "sandbox"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "sandbox"
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.setdefault("AWS_REGION", scenario.region)
    return RunningSandbox(
        server=server, region=scenario.region, smoke=SmokeEndpoint(server.simulator)
    )
