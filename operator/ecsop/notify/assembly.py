"""Building the notifier from a validated configuration: providers, routes, metrics.

``ecsop.controller.daemon`` calls ``build`` once at start with the file
``ecsop run --notifications`` read; tests call it with a fake transport.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from ecsop.notify import links as notify_links
from ecsop.notify.config import GitHubProvider, NotificationConfig, SlackProvider
from ecsop.notify.delivery import Notifier, Provider
from ecsop.notify.github import GitHub
from ecsop.notify.http import Transport, urllib_transport
from ecsop.notify.links import Links
from ecsop.notify.metrics import NotifyMetrics
from ecsop.notify.routing import Router
from ecsop.notify.slack import Slack
from ecsop.notify.webhook import Webhook

log = structlog.get_logger("ecsop.notify")


def providers(config: NotificationConfig, links: Links) -> list[Provider]:
    built: list[Provider] = []
    for provider in config.providers:
        if isinstance(provider, SlackProvider):
            built.append(Slack(provider, links))
        elif isinstance(provider, GitHubProvider):
            github = GitHub(provider, links)
            if github.repository is None:
                log.warning(
                    "github provider has no repository yet: set its repository, or "
                    "repository.github, or a git remote 'origin' in the spec directory "
                    "(looked up again every minute); until then its deliveries are dropped",
                    provider=provider.name,
                )
            built.append(github)
        else:
            built.append(Webhook(provider, links))
    return built


def build(
    config: NotificationConfig,
    specs: Path | None,
    registry: CollectorRegistry,
    *,
    transport: Transport = urllib_transport,
) -> Notifier:
    """The notifier of ``config``; links resolved against the spec directory's git remote."""
    links = notify_links.resolve(config.repository, specs)
    built = providers(config, links)
    return Notifier(
        built,
        Router(config.routes, [p.name for p in built]),
        config.delivery,
        NotifyMetrics(registry),
        transport=transport,
    )
