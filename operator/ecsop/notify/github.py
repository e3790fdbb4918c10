"""GitHub: commit statuses, and optionally deployments, on the commit that set the spec.

A commit status (``POST /repos/{owner}/{repo}/statuses/{sha}``, context
``ecsop/{release}``) moves with the release's rollout, so a pull request shows
what its merge did in production:

| event | state | description |
|---|---|---|
| deploy.started | pending | deploying to CLUSTER/SERVICE |
| deploy.succeeded | success | deployed to CLUSTER/SERVICE |
| deploy.rolled_back | failure | rolled back: DETAIL (or: rolled back by ECS: ...) |
| deploy.failed | failure | failed, not rolled back: DETAIL |
| spec.invalid | error | spec invalid: FILE:LINE: FIELD: MESSAGE |

With ``deployments: true`` each rollout is also a GitHub deployment
(``POST /repos/{owner}/{repo}/deployments``, environment ``{release}``) whose
status follows it (``in_progress``, ``success``, ``failure``). The deployment
is found again for the outcome by its payload (the ECS deployment id), in this
process or, after a restart, by listing the commit's deployments.

Requests carry ``Authorization: Bearer TOKEN``, ``Accept:
application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28``. GitHub's
rate limits (403 or 429 with ``Retry-After``, or ``x-ratelimit-remaining: 0``
until ``x-ratelimit-reset``) are retried like any 429.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import OrderedDict
from typing import Any

from ecsop.notify.config import GitHubProvider
from ecsop.notify.events import DEPLOY_EVENTS, Event, EventType
from ecsop.notify.http import (
    USER_AGENT,
    DeliveryError,
    HttpClient,
    HttpRequest,
    HttpResponse,
    retry_after,
)
from ecsop.notify.links import Links, console

API_VERSION = "2022-11-28"
MAX_DESCRIPTION = 140
"""GitHub truncates nothing: a longer description is refused (422)."""
DEPLOYMENTS_REMEMBERED = 1000

_STATES = {
    EventType.DEPLOY_STARTED: ("pending", "in_progress"),
    EventType.DEPLOY_SUCCEEDED: ("success", "success"),
    EventType.DEPLOY_ROLLED_BACK: ("failure", "failure"),
    EventType.DEPLOY_FAILED: ("failure", "failure"),
    EventType.SPEC_INVALID: ("error", ""),
}
"""Event -> (commit status state, deployment status state)."""


def description(event: Event) -> str:
    """The status description, at most 140 characters."""
    where = f"{event.cluster}/{event.service}"
    if event.type is EventType.DEPLOY_STARTED:
        text = f"deploying to {where}"
    elif event.type is EventType.DEPLOY_SUCCEEDED:
        text = f"deployed to {where}"
    elif event.type is EventType.DEPLOY_ROLLED_BACK:
        by = " by ECS" if event.rolled_back_by == "ecs" else ""
        text = f"rolled back{by}: {event.detail or event.failure}"
    elif event.type is EventType.DEPLOY_FAILED:
        text = f"failed, not rolled back: {event.detail or event.failure}"
    else:
        text = f"spec invalid: {event.message}"
    text = " ".join(text.split())
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def rate_limited(response: HttpResponse, now: float) -> float | None:
    """Seconds to wait when GitHub's answer is a rate limit, else None."""
    if response.status not in (403, 429):
        return None
    wait = retry_after(response.headers.get("retry-after"), now)
    if wait is not None:
        return wait
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        return max(0.0, float(reset) - now) if reset.isdigit() else 60.0
    return None


class GitHub:
    def __init__(self, config: GitHubProvider, links: Links) -> None:
        self.name = config.name
        self._config = config
        self._links = links
        self._api = config.api_url.get_secret_value().rstrip("/")
        self._lock = threading.Lock()
        self._deployments: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        """(commit, environment, ECS deployment id) -> GitHub deployment id."""

    @property
    def repository(self) -> str | None:
        """owner/repo: the provider's, the configuration's, or the spec directory's remote."""
        return self._config.repository or self._links.repository()

    def wants(self, event: Event) -> bool:
        return event.type in _STATES and len(event.commit) >= 40

    def deliver(self, event: Event, client: HttpClient) -> None:
        if self.repository is None:
            raise DeliveryError(
                "NoRepository",
                "no GitHub repository: set the provider's repository, repository.github, "
                "or a git remote 'origin' in the spec directory",
                retryable=False,
            )
        state, deployment_state = _STATES[event.type]
        body = {
            "state": state,
            "target_url": console(event.region, event.cluster, event.service),
            "description": description(event),
            "context": self._config.context.replace("{release}", event.release),
        }
        self._post(client, f"statuses/{event.commit}", body)
        if self._config.deployments and event.type in DEPLOY_EVENTS:
            deployment = self._deployment(event, client)
            self._post(
                client,
                f"deployments/{deployment}/statuses",
                {
                    "state": deployment_state,
                    "description": description(event),
                    "log_url": console(event.region, event.cluster, event.service),
                    "auto_inactive": event.type is EventType.DEPLOY_SUCCEEDED,
                },
            )

    # --- deployments ---------------------------------------------------------------

    def _deployment(self, event: Event, client: HttpClient) -> int:
        """The GitHub deployment of this rollout: remembered, found, or created."""
        environment = (
            self._config.environment.replace("{release}", event.release)
            .replace("{cluster}", event.cluster)
            .replace("{service}", event.service)
        )
        key = (event.commit, environment, event.deployment)
        with self._lock:
            known = self._deployments.get(key)
        if known is None and event.type is not EventType.DEPLOY_STARTED:
            known = self._find(client, event, environment)
        if known is None:
            created = self._post(
                client,
                "deployments",
                {
                    "ref": event.commit,
                    "task": "deploy",
                    "environment": environment,
                    "description": description(event),
                    "auto_merge": False,
                    "required_contexts": [],
                    "payload": {
                        "ecsop": {"release": event.release, "deployment": event.deployment}
                    },
                },
            )
            known = int(created["id"])
        with self._lock:
            self._deployments[key] = known
            while len(self._deployments) > DEPLOYMENTS_REMEMBERED:
                self._deployments.popitem(last=False)
        return known

    def _find(self, client: HttpClient, event: Event, environment: str) -> int | None:
        """The newest deployment of this commit and environment made for this rollout."""
        query = urllib.parse.urlencode(
            {"sha": event.commit, "environment": environment, "task": "deploy", "per_page": 30}
        )
        found = self._request(client, "GET", f"deployments?{query}", None)
        for item in found if isinstance(found, list) else ():
            ours = (item.get("payload") or {}).get("ecsop") or {}
            if ours.get("release") == event.release and (
                not event.deployment or ours.get("deployment") == event.deployment
            ):
                return int(item["id"])
        return None

    # --- requests --------------------------------------------------------------------

    def _post(self, client: HttpClient, path: str, body: dict[str, Any]) -> Any:
        return self._request(client, "POST", path, body)

    def _request(
        self, client: HttpClient, method: str, path: str, body: dict[str, Any] | None
    ) -> Any:
        url = f"{self._api}/repos/{self.repository}/{path}"
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._config.token.get_secret_value()}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        data = b""
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        response = client.send(
            HttpRequest(method, url, headers, data),
            rate_limited=lambda answer: rate_limited(answer, time.time()),
        )
        try:
            return json.loads(response.body) if response.body else None
        except ValueError:
            return None
