"""Which providers hear which event: routes by event type and release label selector.

A route names providers, the event types it carries (none: all) and a
Kubernetes-style label selector over the release's ``metadata.labels`` (empty:
every release). An event goes to the union of the providers of every route it
matches, each provider once. A file without routes sends every event to every
provider.
"""

from __future__ import annotations

from collections.abc import Sequence

from ecsop.notify.config import Route
from ecsop.notify.events import Event


class Router:
    def __init__(self, routes: Sequence[Route], providers: Sequence[str]) -> None:
        self._routes = list(routes)
        self._providers = list(providers)

    def providers_for(self, event: Event) -> list[str]:
        """Provider names, in configuration order, that should hear ``event``."""
        if not self._routes:
            return list(self._providers)
        wanted: set[str] = set()
        for route in self._routes:
            if route.events and event.type.value not in route.events:
                continue
            if not route.selector.matches(event.labels):
                continue
            wanted.update(route.providers)
        return [name for name in self._providers if name in wanted]
