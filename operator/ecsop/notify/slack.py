"""Slack incoming webhooks: one readable message per event.

A POST of ``{"text": ..., "blocks": [...]}`` to the webhook URL
(https://api.slack.com/messaging/webhooks): ``text`` is the one-line fallback
shown in notifications, ``blocks`` the message: release, service, from → to
images (digests shortened to 12 hex), commit (linked when the repository is
known), outcome and reason. Slack answers ``200 ok``; a 429 carries
``Retry-After``, which the delivery queue honours. Slack has no idempotency
key: the queue's de-duplication is what keeps a message from being sent twice.
"""

from __future__ import annotations

import json
from typing import Any

from ecsop.notify.config import SlackProvider
from ecsop.notify.events import Event, EventType, Revision, short_digest
from ecsop.notify.http import USER_AGENT, HttpClient, HttpRequest
from ecsop.notify.links import Links, console

MAX_SECTION = 2900
"""Slack's limit on a section's text is 3000 characters."""

_HEADLINES = {
    EventType.DEPLOY_STARTED: (":rocket:", "deploying"),
    EventType.DEPLOY_SUCCEEDED: (":white_check_mark:", "deployed"),
    EventType.DEPLOY_ROLLED_BACK: (":rewind:", "rolled back"),
    EventType.DEPLOY_FAILED: (":x:", "failed"),
    EventType.RELEASE_DEGRADED: (":warning:", "is Degraded"),
    EventType.RELEASE_RECOVERED: (":large_green_circle:", "recovered"),
    EventType.SPEC_INVALID: (":memo:", "spec is invalid"),
}


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(event: Event, links: Links) -> dict[str, Any]:
    """The Slack message of ``event``."""
    emoji, verb = _HEADLINES[event.type]
    where = f"{event.cluster}/{event.service} ({event.region})"
    headline = f"{event.release} {verb}"
    if event.type is EventType.DEPLOY_ROLLED_BACK and event.rolled_back_by:
        headline += " by ECS" if event.rolled_back_by == "ecs" else " by ecsop"
    lines = [f"{emoji} *{escape(headline)}* · {escape(where)}"]
    if event.failure:
        lines.append(f"*Why:* {escape(event.failure)}: {escape(event.detail)}")
        if event.stop_reason:
            lines.append(f"*First stopped task:* {escape(event.stop_reason)}")
    else:
        lines.append(escape(event.message))
    fields = []
    if event.source is not None and event.source.images:
        fields.append(_field("From", _images(event.source)))
    if event.target is not None and event.target.images:
        fields.append(_field("To", _images(event.target)))
    if event.commit:
        url = links.commit(event.commit)
        short = event.commit[:7]
        fields.append(_field("Commit", f"<{url}|{short}>" if url else f"`{short}`"))
    fields.append(_field("Phase", escape(f"{event.phase} ({event.reason})")))
    context = [f"<{console(event.region, event.cluster, event.service)}|ECS console>"]
    if event.deployment:
        context.append(escape(f"deployment {event.deployment}"))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:MAX_SECTION]}},
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    fallback = f"{event.release} {verb}"
    if event.failure:
        fallback += f": {event.failure}: {event.detail}"
    return {"text": escape(fallback)[:MAX_SECTION], "blocks": blocks}


def _images(revision: Revision) -> str:
    return "\n".join(
        f"`{escape(name)}` `{escape(short_digest(image))}`"
        for name, image in sorted(revision.images.items())
    )


def _field(title: str, text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{title}*\n{text}"[:1990]}


class Slack:
    def __init__(self, config: SlackProvider, links: Links) -> None:
        self.name = config.name
        self._url = config.url
        self._links = links

    def wants(self, event: Event) -> bool:
        return True

    def deliver(self, event: Event, client: HttpClient) -> None:
        body = json.dumps(message(event, self._links), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        client.send(HttpRequest("POST", self._url.get_secret_value(), headers, body))
