"""The generic webhook: the version-1 JSON payload, signed with HMAC-SHA256.

One POST per event to the configured URL, ``Content-Type: application/json``,
with these headers:

- ``Idempotency-Key``: the event's ``id`` (equal for a resend: drop duplicates on it);
- ``X-Ecsop-Event``: the event type (``deploy.rolled_back``, ...);
- ``X-Ecsop-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the exact body
  bytes under the configured ``secret`` (only when one is configured), as GitHub
  signs its webhooks; verify it with a constant-time comparison.

Any 2xx answer is a delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from ecsop.notify.config import WebhookProvider
from ecsop.notify.events import Event
from ecsop.notify.http import USER_AGENT, HttpClient, HttpRequest
from ecsop.notify.links import Links
from ecsop.notify.payload import payload

SIGNATURE_HEADER = "X-Ecsop-Signature-256"


def sign(secret: str, body: bytes) -> str:
    """The value of ``X-Ecsop-Signature-256`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(event: Event, links: Links) -> bytes:
    document = payload(event, links.commit(event.commit)).model_dump(mode="json", by_alias=True)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class Webhook:
    def __init__(self, config: WebhookProvider, links: Links) -> None:
        self.name = config.name
        self._config = config
        self._links = links

    def wants(self, event: Event) -> bool:
        return True

    def deliver(self, event: Event, client: HttpClient) -> None:
        body = body_of(event, self._links)
        headers = {
            **self._config.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": event.id,
            "X-Ecsop-Event": event.type.value,
        }
        if self._config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._config.secret.get_secret_value(), body)
        client.send(HttpRequest("POST", self._config.url.get_secret_value(), headers, body))
