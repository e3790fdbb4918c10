"""Each provider's request, as its receiver documents it: headers, body, signature.

Every request goes to a local receiver through the real notifier (HTTP, its
worker threads), so what is checked is what would leave the daemon.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ecsop.notify import payload as payload_schema
from ecsop.notify.config import GitHubProvider, SlackProvider, WebhookProvider
from ecsop.notify.delivery import Notifier
from ecsop.notify.events import EventType
from ecsop.notify.github import GitHub, description, rate_limited
from ecsop.notify.http import HttpResponse
from ecsop.notify.links import Links
from ecsop.notify.slack import Slack
from ecsop.notify.webhook import Webhook
from receivers import FakeGitHub, Receiver

from .conftest import SHA, event

Build = Callable[..., Notifier]
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "notification-v1.schema.json"
LINKS = Links("acme/specs", "https://github.com/acme/specs/commit/{commit}")


# --- the generic webhook -----------------------------------------------------------------


def test_webhook_posts_the_versioned_payload_signed_with_hmac_sha256(
    receiver: Receiver, notifier_for: Build
) -> None:
    provider = WebhookProvider(
        name="audit",
        type="webhook",
        url=f"{receiver.url}/ecsop",
        secret=SecretStr("s3cret"),
        headers={"X-Team": "platform"},
    )
    notifier_for(Webhook(provider, LINKS)).publish(event())
    (request,) = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/ecsop"
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("ecsop/")
    assert headers["x-ecsop-event"] == "deploy.rolled_back"
    assert headers["idempotency-key"] == event().id
    assert headers["x-team"] == "platform"
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-ecsop-signature-256"], f"sha256={expected}")
    body = request.json()
    jsonschema.validate(body, json.loads(SCHEMA.read_text()))
    assert body["apiVersion"] == "ecsop.dev/v1" and body["kind"] == "Notification"
    assert body["id"] == headers["idempotency-key"]
    assert body["release"] == {
        "name": "shop",
        "labels": {"team": "shop"},
        "region": "us-east-1",
        "cluster": "prod",
        "service": "shop",
    }
    assert body["from"]["images"]["app"].endswith("c" * 64)
    assert body["to"]["taskDefinition"].endswith("task-definition/shop:1")
    assert body["failure"] == {
        "reason": "failed_tasks",
        "detail": "3 failed tasks (maxFailedTasks 1)",
        "stopReason": "EssentialContainerExited: container app exit code 1",
        "rolledBackBy": "ecsop",
    }
    assert body["commit"] == {"sha": SHA, "url": f"https://github.com/acme/specs/commit/{SHA}"}
    assert body["sender"]["name"] == "ecsop"


def test_webhook_without_a_secret_sends_no_signature(
    receiver: Receiver, notifier_for: Build
) -> None:
    provider = WebhookProvider(name="plain", type="webhook", url=receiver.url)
    notifier_for(Webhook(provider, Links())).publish(event(EventType.DEPLOY_STARTED, failure=""))
    (request,) = receiver.wait_for(1)
    assert "x-ecsop-signature-256" not in request.headers
    body = request.json()
    assert body["failure"] is None and body["commit"]["url"] is None


def test_the_schema_file_is_the_payload_model() -> None:
    """docs/notification-v1.schema.json is generated from the model: regenerate, never edit."""
    generated = json.dumps(payload_schema.json_schema(), indent=2) + "\n"
    assert SCHEMA.read_text() == generated, (
        "run: python -c 'import json; from ecsop.notify.payload import json_schema; "
        "print(json.dumps(json_schema(), indent=2))' > docs/notification-v1.schema.json"
    )


# --- Slack ---------------------------------------------------------------------------------


def test_slack_gets_a_readable_message(receiver: Receiver, notifier_for: Build) -> None:
    provider = SlackProvider(
        name="ops", type="slack", url=SecretStr(f"{receiver.url}/services/T/B/X")
    )
    notifier_for(Slack(provider, LINKS)).publish(event())
    (request,) = receiver.wait_for(1)
    assert request.path == "/services/T/B/X"
    assert request.headers["content-type"] == "application/json"
    message = request.json()
    assert set(message) == {"text", "blocks"}
    assert message["text"] == "shop rolled back: failed_tasks: 3 failed tasks (maxFailedTasks 1)"
    head, details, context = message["blocks"]
    assert head["type"] == "section" and head["text"]["type"] == "mrkdwn"
    assert "*shop rolled back by ecsop*" in head["text"]["text"]
    assert "prod/shop (us-east-1)" in head["text"]["text"]
    assert "*Why:* failed_tasks: 3 failed tasks" in head["text"]["text"]
    fields = {f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1] for f in details["fields"]}
    assert fields["*From*"] == "`app` `shop@sha256:cccccccccccc`"
    assert fields["*To*"] == "`app` `shop@sha256:111111111111`"
    assert fields["*Commit*"] == f"<https://github.com/acme/specs/commit/{SHA}|{SHA[:7]}>"
    assert context["type"] == "context"
    assert "console.aws.amazon.com/ecs/v2/clusters/prod/services/shop" in json.dumps(context)


def test_slack_text_is_escaped(receiver: Receiver, notifier_for: Build) -> None:
    provider = SlackProvider(name="ops", type="slack", url=SecretStr(receiver.url))
    notifier_for(Slack(provider, Links())).publish(event(detail="<!channel> & <script>", commit=""))
    (request,) = receiver.wait_for(1)
    text = request.json()["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;script&gt;" in text
    assert "<!channel>" not in request.body.decode()


# --- GitHub --------------------------------------------------------------------------------


def github_provider(api: FakeGitHub, **changes: object) -> GitHub:
    config = GitHubProvider(
        name="gh",
        type="github",
        token=SecretStr("ghp_t0ken"),
        api_url=SecretStr(api.url),
        **changes,  # type: ignore[arg-type]
    )
    return GitHub(config, LINKS)


def test_github_commit_status_pending_then_failure(github: FakeGitHub, notifier_for: Build) -> None:
    notifier = notifier_for(github_provider(github))
    notifier.publish(event(EventType.DEPLOY_STARTED, id="start", failure="", detail=""))
    notifier.publish(event(detail="alarm shop-5xx is in ALARM", failure="alarm"))
    first, second = github.receiver.wait_for(2)
    assert first.path == f"/repos/acme/specs/statuses/{SHA}"
    assert first.headers["authorization"] == "Bearer ghp_t0ken"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert first.json() == {
        "state": "pending",
        "target_url": "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/prod/services/shop"
        "/deployments?region=us-east-1",
        "description": "deploying to prod/shop",
        "context": "ecsop/shop",
    }
    assert second.json()["state"] == "failure"
    assert second.json()["description"] == "rolled back: alarm shop-5xx is in ALARM"
    assert github.states(SHA, "ecsop/shop") == ["pending", "failure"]


@pytest.mark.parametrize(
    ("kind", "changes", "state", "text"),
    [
        pytest.param(
            EventType.DEPLOY_SUCCEEDED, {}, "success", "deployed to prod/shop", id="succeeded"
        ),
        pytest.param(
            EventType.DEPLOY_ROLLED_BACK,
            {"rolled_back_by": "ecs", "detail": "circuit breaker"},
            "failure",
            "rolled back by ECS: circuit breaker",
            id="rolled-back-by-ecs",
        ),
        pytest.param(
            EventType.DEPLOY_FAILED,
            {"detail": "timeout"},
            "failure",
            "failed, not rolled back: timeout",
            id="failed",
        ),
        pytest.param(
            EventType.SPEC_INVALID,
            {"message": "shop.yaml:7: spec.containers: required field is missing"},
            "error",
            "spec invalid: shop.yaml:7: spec.containers: required field is missing",
            id="invalid",
        ),
    ],
)
def test_github_states(kind: EventType, changes: dict[str, str], state: str, text: str) -> None:
    assert description(event(kind, **changes)) == text
    from ecsop.notify.github import _STATES

    assert _STATES[kind][0] == state


def test_github_description_fits_140_characters() -> None:
    text = description(event(detail="x" * 500))
    assert len(text) == 140 and text.endswith("…")


def test_github_hears_only_what_concerns_a_commit(github: FakeGitHub) -> None:
    provider = github_provider(github)
    assert provider.wants(event())
    assert not provider.wants(event(commit=""))
    assert not provider.wants(event(EventType.RELEASE_DEGRADED))


def test_github_without_a_repository_drops_and_counts(
    notifier_for: Build, registry: CollectorRegistry
) -> None:
    no_repo = GitHub(GitHubProvider(name="gh", type="github", token=SecretStr("t")), Links())
    notifier_for(no_repo).publish(event())
    deadline = time.monotonic() + 5
    labels = {"provider": "gh", "reason": "rejected"}
    while not registry.get_sample_value("ecsop_notifications_dropped_total", labels):
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        pytest.param(403, {"retry-after": "7"}, 7.0, id="secondary-limit-retry-after"),
        pytest.param(
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1060"},
            60.0,
            id="primary-limit-reset",
        ),
        pytest.param(429, {"retry-after": "3"}, 3.0, id="429"),
        pytest.param(403, {}, None, id="plain-403-is-a-refusal"),
        pytest.param(500, {"retry-after": "3"}, None, id="not-a-rate-limit"),
    ],
)
def test_github_rate_limits(status: int, headers: dict[str, str], wait: float | None) -> None:
    assert rate_limited(HttpResponse(status, headers), now=1000.0) == wait


def test_github_rate_limited_status_is_retried(github: FakeGitHub, notifier_for: Build) -> None:
    github.receiver.answer((403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}, b"{}"))
    notifier_for(github_provider(github)).publish(event())
    github.receiver.wait_for(2)
    assert github.states(SHA, "ecsop/shop") == ["failure"]


def test_github_deployments_follow_the_rollout_even_across_a_restart(
    github: FakeGitHub, notifier_for: Build
) -> None:
    started = event(EventType.DEPLOY_STARTED, id="start", failure="")
    notifier_for(github_provider(github, deployments=True)).publish(started)
    github.receiver.wait_for(3)
    (deployment,) = github.deployments
    assert deployment["ref"] == SHA and deployment["environment"] == "shop"
    assert deployment["payload"] == {"ecsop": {"release": "shop", "deployment": "ecs-svc/2"}}
    assert deployment["required_contexts"] == [] and deployment["auto_merge"] is False
    # A new provider (a restarted daemon) finds the deployment by its payload.
    restarted = notifier_for(github_provider(github, deployments=True), metrics=CollectorRegistry())
    restarted.publish(event())
    github.receiver.wait_for(6)
    assert len(github.deployments) == 1
    states = [s["state"] for s in github.deployment_statuses[deployment["id"]]]
    assert states == ["in_progress", "failure"]
    assert github.states(SHA, "ecsop/shop") == ["pending", "failure"]
