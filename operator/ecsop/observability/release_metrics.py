"""Per-release metric families kept as plain values and exposed at scrape time.

A release has about twenty series (its phase one-hot, a rollback counter per
reason and a deployment counter per outcome created at 0 so ``increase()``
sees the first one, its info and sync state, its reconcile results).
``prometheus_client`` keeps each series as an object with its own lock and
creation time, about 700 bytes: 150 MB at 10,000 releases. ``ReleaseFamily``
keeps one float per series that was set (or none: a label whose values are
a fixed ``domain`` exposes every value of it, 0 unless set) and builds the
exposition when ``/metrics`` is scraped. The exposition is the same series,
without the ``_created`` samples of these counters.

It offers the part of ``prometheus_client``'s metric API that ``Metrics``
uses (``labels(...).inc()``/``.set()``, ``remove``, ``collect``), with every
label value passed through ``metrics.label``'s escaping.

Callers: ``ecsop.observability.metrics.Metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

Kind = Literal["counter", "gauge"]


class _Child:
    """One series of a ``ReleaseFamily``: what ``labels(...)`` returns."""

    __slots__ = ("_family", "_key")

    def __init__(self, family: ReleaseFamily, key: tuple[str, ...]) -> None:
        self._family = family
        self._key = key

    def inc(self, amount: float = 1.0) -> None:
        self._family.add(self._key, amount)

    def set(self, value: float) -> None:
        self._family.put(self._key, value)


class ReleaseFamily:
    """A metric family whose first label is ``release``.

    With ``domain``, each release that was ever named exposes every value of
    ``domain`` for its last label (0 unless set): a one-hot phase or counters
    born at 0 cost nothing until they move. A value outside ``domain`` is kept
    and exposed as a series of its own, as ``prometheus_client`` would.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        kind: Kind,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        escape: Callable[[object], str],
        domain: Sequence[str] = (),
    ) -> None:
        self._name = name.removesuffix("_total") if kind == "counter" else name
        self._documentation = documentation
        self._kind: Kind = kind
        self._labelnames = tuple(labelnames)
        self._escape = escape
        self._domain = tuple(domain)
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], float] = {}
        """Set series (with ``domain``: only those not 0), keyed by label values."""
        self._releases: dict[tuple[str, ...], None] = {}
        """With ``domain``: the label values but the last of every release named."""
        registry.register(self)

    def labels(self, *values: object) -> _Child:
        """The series with these label values, created (at 0) if new."""
        key = tuple(self._escape(v) for v in values)
        if len(key) != len(self._labelnames):
            raise ValueError(f"{self._name}: expected labels {self._labelnames}, got {key}")
        with self._lock:
            if key[-1] in self._domain:
                self._releases.setdefault(key[:-1], None)
            else:
                self._values.setdefault(key, 0.0)
        return _Child(self, key)

    def add(self, key: tuple[str, ...], amount: float) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def put(self, key: tuple[str, ...], value: float) -> None:
        with self._lock:
            if value == 0 and key[-1] in self._domain:
                self._values.pop(key, None)
            else:
                self._values[key] = value

    def remove(self, *values: object) -> None:
        """Remove one series (``KeyError`` if absent); with ``domain``, the release's all."""
        key = tuple(self._escape(v) for v in values)
        with self._lock:
            if key[-1] in self._domain:
                del self._releases[key[:-1]]
                for value in self._domain:
                    self._values.pop((*key[:-1], value), None)
            else:
                del self._values[key]

    def forget(self, release: str) -> None:
        """Remove every series of ``release``."""
        name = self._escape(release)
        with self._lock:
            for key in [k for k in self._values if k[0] == name]:
                del self._values[key]
            for key in [k for k in self._releases if k[0] == name]:
                del self._releases[key]

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        with self._lock:
            for head in self._releases:
                for value in self._domain:
                    key = (*head, value)
                    family.add_metric(list(key), self._values.get(key, 0.0))
            for key, number in self._values.items():
                if key[-1] not in self._domain:
                    family.add_metric(list(key), number)
        return [family]

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        if self._kind == "counter":
            return CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        return GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)
