"""``ecsop run --sandbox``: the sandbox endpoint in-process, and a guided tour.

Starts ``SandboxServer`` with the demo scenario (``demo.yaml``, which matches
the example ``specs/``), points boto3 at it through the standard environment
variables, so the daemon's production code path is used unchanged, and tells
the newcomer what to edit to see a deploy and an automatic rollback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ecsop.sandbox.scenario import load_scenario
from ecsop.sandbox.server import SandboxServer

DEMO_SCENARIO = Path(__file__).with_name("demo.yaml")
API_REPOSITORY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/taskboard-api"
V1_5 = "c7aa851d3bc1db87561f200b55082aad56d29a4af40c38f242ae0154b8f5fced"
CRASHLOOP = "d4d63d598cb81576ed3871e8c2e5fabc4ec4e4157bc27f97c4590542df24344b"
UNHEALTHY = "59233b6fe80dcdad24162d3d22e28579bdfe7c2f46b2dd4e858f6608f57b3f4f"


@dataclass
class RunningSandbox:
    server: SandboxServer
    region: str

    def explain(self, specs: str, metrics_port: int) -> None:
        """Say, on stderr (stdout carries the logs), what to watch and what to try."""
        daemon = f"http://127.0.0.1:{metrics_port}"
        speed = self.server.scenario.clock_speed
        print(
            f"""
ecsop is running against a simulated ECS at {self.server.endpoint_url} (clock x{speed:g}).
  status:  ecsop status --url {daemon}        metrics: {daemon}/metrics
  staging runs one version behind its spec, so watch it deploy now.

Try it (in another terminal), editing {specs}/taskboard-api.yaml, release taskboard-api-prod:
  deploy:    set its `api` image to {API_REPOSITORY}@sha256:{V1_5}
  rollback:  set it to ...@sha256:{CRASHLOOP} (crash-loops)
  gates:     ...@sha256:{UNHEALTHY} (fails ELB health checks)
then run `ecsop status --url {daemon}`. `git checkout {specs}` puts the examples back.
Ctrl-C stops both the daemon and the sandbox.
""",
            file=sys.stderr,
            flush=True,
        )

    def stop(self) -> None:
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
    return RunningSandbox(server=server, region=scenario.region)
