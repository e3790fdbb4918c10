"""Whether this replica's spec checkout has the commit the service was deployed from.

The reconcile pass asks ``SpecCommits.read`` once it has classified the
release; it looks a commit up only when ``spec_behind.asks`` names one: the
pass would deploy (or revert to last-good) and the revision the service runs
carries an ``ecsop:commit`` other than the spec's. A steady release, or a
deploy from the very commit the service runs, costs no fork.

It remembers, in the process:

- commits found, so each is asked of git once: this replica has had it, so a
  spec older than it is a branch reset, not a lag, even once git-sync's
  ``git gc`` has pruned it;
- the date of the spec's own commit, read only when the service's is missing;
- per release, the commit found missing and when (AWS's time) it was first
  found so, which bounds the hold (``Options.spec_behind_grace_seconds``); a
  restarted process waits one more grace at most;
- per commit, the spec commit at which it was found missing: it stays missing,
  for every release, while the spec is at that commit, even once git has it.
  git-sync fetches first and switches the checkout after, and a pass reads the
  spec the directory held when it was last read, so "fetched" alone would let
  the stale spec through in between (a branch reset, by contrast, finds the
  commit it leaves already there on its first look).

Nothing is logged here: a missing commit is the rule, not news, with git-sync's
shallow checkouts; the decision's hold (or its deploy after the grace) is the
pass's log line.

Callers: ``ecsop.controller.reconciler`` (the daemon and ``ecsop plan``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ecsop.decision import spec_behind
from ecsop.decision.observation import Observation, Options
from ecsop.decision.situation import View
from ecsop.decision.spec_behind import ServiceCommit
from ecsop.spec import commits
from ecsop.spec.loader import LoadedRelease

MAX_KNOWN = 4096
"""Commits remembered as found; past it the set starts again (one more fork each)."""


@dataclass(frozen=True)
class _Missing:
    """A release's service commit this process found missing from the spec repository."""

    commit: str
    since: datetime
    """The first pass that found it missing (AWS's time): the hold's grace counts from it."""


class SpecCommits:
    """The spec repository's answers about commits, and how long each was missing."""

    def __init__(
        self,
        directory: Path,
        has_commit: Callable[[Path, str], bool] = commits.has_commit,
        committed_at: Callable[[Path, str], datetime | None] = commits.committed_at,
    ) -> None:
        self._directory = directory
        self._has_commit = has_commit
        self._committed_at = committed_at
        self._dated: tuple[str, datetime | None] | None = None
        """The spec commit whose date was read last, and its date."""
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._missing: dict[str, _Missing] = {}
        """Release -> the service commit it found missing, and since when."""
        self._lacking: dict[str, str] = {}
        """Commit -> the spec commit at which the repository last lacked it: missing for
        every release while the spec is still there, even once git has fetched it."""

    def read(
        self,
        loaded: LoadedRelease,
        observation: Observation,
        view: View,
        options: Options,
        spec_commit: str | None,
        now: datetime,
    ) -> Observation:
        """``observation`` with ``service_commit`` filled when ``spec_behind.asks``."""
        commit = spec_behind.asks(loaded.release, observation, view, options, spec_commit)
        if commit is None or spec_commit is None:
            return observation
        known = self._knows(commit)
        since: datetime | None = None
        with self._lock:
            if known and self._lacking.get(commit) == spec_commit:
                # Lacking at this very spec commit, fetched since: git-sync fetches, then
                # switches the checkout, and this pass still reads the spec from before.
                known = False
            if not known:
                if len(self._lacking) >= MAX_KNOWN:
                    self._lacking.clear()
                self._lacking[commit] = spec_commit
                missing = self._missing.get(loaded.name)
                if missing is None or missing.commit != commit:
                    missing = _Missing(commit, now)
                    self._missing[loaded.name] = missing
                since = missing.since
            else:
                self._missing.pop(loaded.name, None)
        seen = ServiceCommit(
            service=commit,
            spec=spec_commit,
            known=known,
            unknown_since=since,
            spec_committed=None if known else self._date(spec_commit),
        )
        return replace(observation, service_commit=seen)

    def _date(self, commit: str) -> datetime | None:
        with self._lock:
            dated = self._dated
        if dated is not None and dated[0] == commit:
            return dated[1]
        date = self._committed_at(self._directory, commit)
        with self._lock:
            self._dated = (commit, date)
        return date

    def _knows(self, commit: str) -> bool:
        with self._lock:
            if commit in self._known:
                return True
        if not self._has_commit(self._directory, commit):
            return False
        with self._lock:
            if len(self._known) >= MAX_KNOWN:
                self._known.clear()
            self._known.add(commit)
        return True
