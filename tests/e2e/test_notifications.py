"""Notifications end to end: the daemon as a process, the sandbox, and local receivers.

A generic webhook, a Slack incoming webhook and a fake GitHub API run in this
process; the daemon reads ``--notifications`` from a file outside the spec
repository, its secrets from the environment and a file. The spec repository
has a GitHub ``origin``, which is where the commit statuses go.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsop.cli import app as cli
from ecsop.spec.model import fingerprint
from receivers import FakeGitHub, Receiver, Recorded

from .conftest import CRASH, GOOD_V1, Daemon, Sandbox, SpecRepo, digest, release_doc, wait_for

pytestmark = pytest.mark.e2e
StartDaemon = Callable[..., Daemon]
SECRET = "hmac-s3cret"


class Receivers:
    def __init__(self) -> None:
        self.webhook = Receiver()
        self.slack = Receiver()
        self.github = FakeGitHub()

    def webhook_events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.webhook.received()]

    def close(self) -> None:
        self.webhook.close()
        self.slack.close()
        self.github.close()


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    found = Receivers()
    yield found
    found.close()


@pytest.fixture
def notifications(
    tmp_path: Path, receivers: Receivers, repo: SpecRepo, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The --notifications file, outside the spec repository; secrets in env and a file."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "webhook.key").write_text(SECRET + "\n")
    monkeypatch.setenv("E2E_SLACK_URL", f"{receivers.slack.url}/services/T0/B0/x")
    monkeypatch.setenv("E2E_GITHUB_TOKEN", "ghp_e2e")
    document = {
        "apiVersion": "ecsop.dev/v1",
        "kind": "NotificationConfig",
        "delivery": {"initialBackoffSeconds": 0.2, "maxBackoffSeconds": 1},
        "providers": [
            {
                "name": "audit",
                "type": "webhook",
                "url": f"{receivers.webhook.url}/ecsop",
                "secret": {"file": "webhook.key"},
            },
            {"name": "team-slack", "type": "slack", "url": {"env": "E2E_SLACK_URL"}},
            {
                "name": "github",
                "type": "github",
                "token": {"env": "E2E_GITHUB_TOKEN"},
                "apiUrl": receivers.github.url,
            },
        ],
    }
    path = conf / "notifications.yaml"
    path.write_text(yaml.safe_dump(document))
    repo.git("remote", "add", "origin", "https://github.com/acme/specs.git")
    return path


def signed(request: Recorded) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("x-ecsop-signature-256", ""), expected)


def phase(daemon: Daemon, name: str = "shop") -> str:
    return str(daemon.release(name).get("phase", ""))


def told(receivers: Receivers, sha: str, count: int) -> bool:
    return (
        len(receivers.webhook.received()) >= count
        and len(receivers.slack.received()) >= count
        and len(receivers.github.states(sha, "ecsop/shop")) >= count
    )


def test_a_crash_loop_is_told_once_started_once_rolled_back(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: StartDaemon,
    receivers: Receivers,
    notifications: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt shop")
    daemon = start_daemon("--notifications", str(notifications))
    wait_for(lambda: phase(daemon) == "Synced", 20, "adopted")
    sha = repo.commit({"shop.yaml": release_doc("shop", "shop", CRASH)}, "shop crash")
    wait_for(lambda: phase(daemon) == "Degraded", 40, "rolled back, then Degraded")
    wait_for(lambda: told(receivers, sha, 2), 20, "started and rolled back told everywhere")
    time.sleep(2)  # a resync and several polls later: nothing more to tell

    events = receivers.webhook_events()
    assert [e["type"] for e in events] == ["deploy.started", "deploy.rolled_back"]
    assert all(signed(r) for r in receivers.webhook.received())
    started, rolled_back = events
    assert started["commit"] == {"sha": sha, "url": f"https://github.com/acme/specs/commit/{sha}"}
    assert started["to"]["images"] == {"app": CRASH}
    assert started["from"]["images"] == {"app": GOOD_V1}
    assert rolled_back["commit"]["sha"] == sha
    assert rolled_back["deployment"] == started["deployment"]
    assert rolled_back["failure"]["rolledBackBy"] == "ecsop"
    assert rolled_back["failure"]["reason"] == "failed_tasks"
    assert rolled_back["from"]["fingerprint"] == fingerprint({"app": CRASH})
    assert rolled_back["to"]["images"] == {"app": GOOD_V1}

    slack = [r.json()["text"] for r in receivers.slack.received()]
    assert len(slack) == 2
    assert slack[0] == "shop deploying" and slack[1].startswith("shop rolled back: failed_tasks")

    assert receivers.github.states(sha, "ecsop/shop") == ["pending", "failure"]
    statuses = receivers.github.receiver.received(f"/repos/acme/specs/statuses/{sha}")
    assert {r.headers["authorization"] for r in statuses} == {"Bearer ghp_e2e"}
    assert receivers.github.statuses[sha][1]["description"].startswith("rolled back: ")

    metrics = daemon.get("/metrics")
    assert (
        'ecsop_notifications_sent_total{event="deploy.rolled_back",provider="github"} 1.0'
        in metrics
    )
    assert "ghp_e2e" not in daemon.log_path.read_text()
    assert "/services/T0/B0/x" not in daemon.log_path.read_text()

    # The history, from AWS: /status and `ecsop history`.
    history = wait_for(
        lambda: daemon.release("shop").get("history"), 10, "/status shows the history"
    )
    newest, crash = history[0], history[1]
    assert (newest["outcome"], newest["rolledBackBy"]) == ("succeeded", "")
    assert newest["rollbackOf"]
    assert (crash["outcome"], crash["rolledBackBy"], crash["commit"]) == (
        "rolled_back",
        "ecsop",
        sha,
    )
    for name, value in sandbox.aws_env().items():
        monkeypatch.setenv(name, value)
    assert cli.main(["history", "shop", "--specs", str(repo.path), "--json"]) == 0
    assert daemon.stop() == 0


def test_a_restart_between_a_deploy_and_its_outcome_tells_each_once(
    sandbox: Sandbox,
    repo: SpecRepo,
    start_daemon: StartDaemon,
    receivers: Receivers,
    notifications: Path,
) -> None:
    slow_crash = digest("slow-crash")
    sandbox.control(
        "POST",
        "images",
        {slow_crash: {"behavior": "crashloop", "exitCode": 1, "crashAfterSeconds": 60}},
    )
    repo.commit({"shop.yaml": release_doc("shop", "shop", GOOD_V1)}, "adopt shop")
    daemon = start_daemon("--notifications", str(notifications))
    wait_for(lambda: phase(daemon) == "Synced", 20, "adopted")
    sha = repo.commit({"shop.yaml": release_doc("shop", "shop", slow_crash)}, "slow crash")
    # Every receiver, not just the first: a kill -9 loses what is still queued
    # in memory (README, "Notifications": at-least-once while the daemon runs).
    wait_for(lambda: told(receivers, sha, 1), 20, "deploy told to every receiver")
    daemon.kill()  # kill -9 after the deploy was told, before its outcome
    assert phase_now(sandbox) == "rolling out", "the outcome must come after the restart"
    restarted = start_daemon("--notifications", str(notifications))
    wait_for(lambda: phase(restarted) == "Degraded", 60, "rolled back by the new process")
    wait_for(lambda: told(receivers, sha, 2), 60, "outcome told")
    time.sleep(2)
    assert [e["type"] for e in receivers.webhook_events()] == [
        "deploy.started",
        "deploy.rolled_back",
    ]
    assert len(receivers.slack.received()) == 2
    assert receivers.github.states(sha, "ecsop/shop") == ["pending", "failure"]
    assert json.loads(receivers.webhook.received()[1].body)["commit"]["sha"] == sha
    assert restarted.stop() == 0


def phase_now(sandbox: Sandbox) -> str:
    deployments = sandbox.service("shop")["deployments"]
    return "rolling out" if len(deployments) > 1 else "steady"
