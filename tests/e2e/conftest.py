"""End-to-end harness: the sandbox endpoint and the daemon, each a real process.

Specs live in a real git repository that tests commit to; the daemon watches
it like a git-sync checkout. Time is the simulator's: the sandbox runs its
clock fast, and the daemon reads AWS time from responses, so a 60-second bake
takes a fraction of a real second and nothing here sleeps long.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import ServiceMemory
from ecsop.spec.model import fingerprint

REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop"


def digest(label: str) -> str:
    import hashlib

    return f"{REGISTRY}@sha256:{hashlib.sha256(label.encode()).hexdigest()}"


GOOD_V1 = digest("v1")
GOOD_V2 = digest("v2")
GOOD_V3 = digest("v3")
CRASH = digest("crash")
PULL_ERROR = digest("pull-error")
"""Fails to start (CannotPullContainerError): the failure ECS's circuit breaker counts."""
SIDECAR = digest("sidecar")


def scenario(clock_speed: float = 20.0, throttle: float = 0.0) -> dict[str, Any]:
    def service(desired: int, breaker: bool) -> dict[str, Any]:
        return {
            "desiredCount": desired,
            "deploymentConfiguration": {
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker},
            },
            "taskDefinition": {
                "family": "shop",
                "containerDefinitions": [
                    {
                        "name": "app",
                        "image": GOOD_V1,
                        "essential": True,
                        "memory": 256,
                        "secrets": [
                            {
                                "name": "DB_PASSWORD",
                                "valueFrom": "arn:aws:ssm:us-east-1:111122223333:parameter/db",
                            }
                        ],
                    },
                    {"name": "sidecar", "image": SIDECAR, "essential": False, "memory": 64},
                ],
                "tags": [{"key": "team", "value": "shop"}],
            },
        }

    return {
        "region": "us-east-1",
        "clockSpeed": clock_speed,
        "seed": 7,
        "images": {
            GOOD_V1: {"behavior": "healthy", "startSeconds": 5},
            GOOD_V2: {"behavior": "healthy", "startSeconds": 5},
            GOOD_V3: {"behavior": "healthy", "startSeconds": 5},
            SIDECAR: {"behavior": "healthy", "startSeconds": 1},
            CRASH: {"behavior": "crashloop", "exitCode": 1, "crashAfterSeconds": 5},
            PULL_ERROR: {"behavior": "pull-error"},
        },
        "clusters": {
            "prod": {
                "services": {
                    "shop": service(2, breaker=False),
                    "shop-breaker": {
                        **service(2, breaker=True),
                        "taskDefinition": {
                            **service(2, True)["taskDefinition"],
                            "family": "shop-breaker",
                        },
                    },
                }
            }
        },
        "faults": {"throttleRate": throttle, "errorRate": 0.0},
    }


def release_doc(name: str, service: str, image: str, **rollout: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ecsop.dev/v1",
        "kind": "ServiceRelease",
        "metadata": {"name": name},
        "spec": {
            "cluster": "prod",
            "service": service,
            "containers": {"app": image},
            "rollout": {"timeoutSeconds": 600, "bakeSeconds": 30, "maxFailedTasks": 1, **rollout},
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the endpoint may be starting, or throttling
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


SANDBOX_ANNOUNCEMENT = re.compile(r"ecsop sandbox: (http://[^\s]+) ")


def announced_url(
    proc: subprocess.Popen[bytes], log: Path, announcement: re.Pattern[str], timeout: float
) -> str:
    """The URL a process printed once it listened; fails at once, with its log, if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        found = announcement.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise AssertionError(
                f"{proc.args!r} exited with {proc.returncode} before it listened:\n"
                + log.read_text(errors="replace")[-4000:]
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{proc.args!r} did not listen within {timeout}s:\n"
                + log.read_text(errors="replace")[-4000:]
            )
        time.sleep(0.05)


def stop_process(
    proc: subprocess.Popen[bytes], grace: float = 10, sig: int = signal.SIGTERM
) -> int:
    """Signal ``proc``, wait ``grace`` seconds, then kill it; its exit code (-9 if killed)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return -9


class Sandbox:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        path = tmp / "scenario.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "sandbox.log"
        self.log = self.log_path.open("w")
        # Port 0: the sandbox binds a free port itself and prints its URL. A port picked
        # here and bound later can be taken in between by another worker's process.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecsop", "sandbox", "--scenario", str(path), "--port", "0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self.url = announced_url(self.proc, self.log_path, SANDBOX_ANNOUNCEMENT, 60)
            self.port = int(self.url.rsplit(":", 1)[1])
            wait_for(lambda: self.control("GET", "clock"), 30, "sandbox endpoint")
        except BaseException:
            self.stop()  # a fixture that never yields never tears down: no orphan process
            raise
        self.ecs = boto3.client(
            "ecs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def aws_env(self) -> dict[str, str]:
        """Environment pointing boto3 (and so ecsop) at this sandbox with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def calls(self, operation: str) -> int:
        found = self.control("GET", "calls")["calls"]
        return sum(c["count"] for c in found if c["operation"] == operation)

    def call_log(self, operation: str) -> list[dict[str, Any]]:
        """Each ``operation`` call, oldest first: ``sim`` time, ``caller``, ``request``."""
        found: list[dict[str, Any]] = self.control("GET", f"calls/log?operation={operation}")[
            "calls"
        ]
        return found

    def service(self, name: str) -> dict[str, Any]:
        svc: dict[str, Any] = self.ecs.describe_services(
            cluster="prod", services=[name], include=["TAGS"]
        )["services"][0]
        return svc

    def tags(self, name: str) -> dict[str, str]:
        return {t["key"]: t["value"] for t in self.service(name).get("tags", [])}

    def memory(self, name: str) -> ServiceMemory:
        """ecsop's memory of the service, read from its tags as the daemon reads it."""
        return ServiceMemory.read(self.tags(name))

    def failed(self, name: str) -> str:
        """The fingerprint recorded as failed on the service ("" if none)."""
        failed = self.memory(name).failed
        return failed.fingerprint if failed else ""

    def failed_reason(self, name: str) -> str:
        failed = self.memory(name).failed
        return failed.failure.value if failed else ""

    def remember_last_good(self, name: str, release: str) -> None:
        """Tag the service as ecsop does once its running revision is proven good (for a
        release whose one container is ``app``, as ``release_doc`` writes them)."""
        service = self.service(name)
        images = {"app": self.app_image(service["taskDefinition"])}
        memory = ServiceMemory(release=release).proven(
            service["serviceArn"],
            release,
            service["taskDefinition"],
            fingerprint=Fingerprint(fingerprint(images)),
        )
        self.ecs.tag_resource(
            resourceArn=service["serviceArn"],
            tags=[{"key": k, "value": v} for k, v in memory.tags().items()],
        )

    def image_of(self, name: str) -> str:
        return self.app_image(self.service(name)["taskDefinition"])

    def register_by_hand(self, family: str, image: str) -> str:
        """A revision of ``family`` with ``image`` in ``app``, registered as a person would
        (no ecsop tags): the newest revision's containers with the image swapped."""
        base = self.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        containers = [
            {**c, "image": image} if c["name"] == "app" else c
            for c in base["containerDefinitions"]
        ]
        registered = self.ecs.register_task_definition(
            family=family, containerDefinitions=containers
        )
        return str(registered["taskDefinition"]["taskDefinitionArn"])

    def app_image(self, arn: str) -> str:
        """The ``app`` container's image in task definition ``arn``."""
        td = self.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        return next(c["image"] for c in td["containerDefinitions"] if c["name"] == "app")

    def steady_on(self, name: str, image: str) -> bool:
        """One deployment, COMPLETED, on ``image``: all read from one DescribeServices
        (two reads let an UpdateService land between them: the old deployment
        COMPLETED beside the new task definition)."""
        deployments = self.service(name)["deployments"]
        return (
            len(deployments) == 1
            and deployments[0].get("rolloutState") == "COMPLETED"
            and self.app_image(deployments[0]["taskDefinition"]) == image
        )

    def revisions(self, family: str) -> int:
        return len(self.ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"])

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


class SpecRepo:
    """A real git repository of release specs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
        }
        out = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True
        )
        return out.stdout.decode().strip()

    def commit(self, files: dict[str, Any], message: str) -> str:
        for name, content in files.items():
            text = (
                content
                if isinstance(content, str)
                else yaml.safe_dump_all(content if isinstance(content, list) else [content])
            )
            (self.path / name).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def remove(self, name: str, message: str) -> str:
        self.git("rm", "-q", name)
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")


class PortTaken(Exception):
    """The daemon's port was bound by someone else between choosing and binding it."""


class Daemon:
    def __init__(
        self, tmp: Path, sandbox: Sandbox, specs: Path, *extra: str, caller: str = "testing"
    ) -> None:
        """``caller``: the access key id its AWS calls are signed with (the call log's
        ``caller``), to tell several daemons' calls apart."""
        self.caller = caller or "testing"
        env = {**os.environ, **sandbox.aws_env(), "AWS_ACCESS_KEY_ID": self.caller}
        # The daemon's port is its identity among replicas, so it is chosen here; a port
        # another worker's process takes before the daemon binds it costs one more start.
        for _attempt in range(5):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log_path = tmp / f"daemon-{self.port}.log"
            self.log = self.log_path.open("w")
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ecsop",
                    "run",
                    "--specs",
                    str(specs),
                    "--metrics-host",
                    "127.0.0.1",
                    "--metrics-port",
                    str(self.port),
                    "--resync-interval",
                    "2",
                    "--active-poll-interval",
                    "0.25",
                    "--log-format",
                    "json",
                    "--workers",
                    "2",
                    *extra,
                ],
                stdout=self.log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                self._wait_healthy(30)
                return
            except PortTaken:
                self.log.close()
            except BaseException:
                self.kill()
                raise
        raise AssertionError(
            "five free ports were all taken before the daemon bound them:\n"
            + self.log_path.read_text(errors="replace")[-4000:]
        )

    def _wait_healthy(self, timeout: float) -> None:
        """Until /healthz answers; at once if the daemon exits (PortTaken if for its port).

        /healthz is asked only once this process logged that it started: until then,
        what answers on the port may be another test's daemon that took it.
        """
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_path.read_text(errors="replace")
            if self.proc.poll() is not None:
                if "already in use" in log:
                    raise PortTaken(self.port)
                raise AssertionError(
                    f"the daemon exited with {self.proc.returncode}:\n{log[-4000:]}"
                )
            if "ecsop started" in log:
                try:
                    if self.get("/healthz"):
                        return
                except Exception:  # not answering yet
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for daemon /healthz:\n{log[-4000:]}"
                )
            time.sleep(0.1)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
            body = response.read()
            return json.loads(body) if path == "/status" else body.decode()

    def release(self, name: str) -> dict[str, Any]:
        releases = self.get("/status")["releases"]
        return next((r for r in releases if r["name"] == name), {})

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def kill(self) -> None:
        stop_process(self.proc, sig=signal.SIGKILL)
        self.log.close()

    def stop(self) -> int:
        code = stop_process(self.proc, grace=20)
        self.log.close()
        return code


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, scenario())
    yield box
    box.stop()


@pytest.fixture
def repo(tmp_path: Path) -> SpecRepo:
    return SpecRepo(tmp_path / "specs")


@pytest.fixture
def start_daemon(
    tmp_path: Path, sandbox: Sandbox, repo: SpecRepo
) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*extra: str, caller: str = "testing") -> Daemon:
        daemon = Daemon(tmp_path, sandbox, repo.path, *extra, caller=caller)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.stop()
