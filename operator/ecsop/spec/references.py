"""Names one release gives of others: ``dependsOn`` and ``promotion.from``, checked together.

A directory-wide rule of ``ecsop.spec.loader``: every name must be a release
of the directory (valid or not: an invalid release still exists and is
waited for), a release never names itself, and neither ``dependsOn`` nor
``promotion.from``, nor the two together, has a cycle (a cycle would hold
every release in it forever). Each problem is reported at the line of the offending entry; a
release with one is not managed, like any invalid release, so its last valid
spec keeps being watched.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Callable, Collection, Mapping
from typing import Protocol


class Named(Protocol):
    """The parts of a loaded release these rules read (``loader.LoadedRelease``)."""

    @property
    def name(self) -> str: ...

    @property
    def depends_on(self) -> list[str]: ...

    @property
    def promoted_from(self) -> list[str]: ...


def check(releases: Mapping[str, Named], known: Collection[str]) -> list[tuple[Named, str, str]]:
    """Every reference problem, as (release, field, message)."""
    problems: list[tuple[Named, str, str]] = []
    choices: dict[str, str] = {}  # per unknown name: a renamed release many depend on
    # Most releases name no other: at 10,000 releases this check runs at every spec
    # change, so only the ones that do are looked at past this line.
    linked = [r for r in releases.values() if r.depends_on or r.promoted_from]
    for loaded in linked:
        for field, names in (
            ("spec.dependsOn", loaded.depends_on),
            ("spec.promotion.from", loaded.promoted_from),
        ):
            for index, name in enumerate(names):
                where = f"{field}[{index}]"
                if name == loaded.name:
                    problems.append((loaded, where, f"{name!r} is this release itself"))
                elif name not in known:
                    if name not in choices:
                        choices[name] = _choices(name, known)
                    problems.append(
                        (
                            loaded,
                            where,
                            f"no release named {name!r} in the spec directory ({choices[name]})",
                        )
                    )
    reported: set[frozenset[str]] = set()
    for field, word, edges in (
        ("spec.dependsOn", "dependsOn", _depends_on),
        ("spec.promotion.from", "promotion", _promoted_from),
    ):
        for cycle in cycles(releases, edges):
            reported.add(frozenset(cycle))
            path = " -> ".join([*cycle, cycle[0]])
            for index, name in enumerate(cycle):
                loaded = releases[name]
                after = cycle[(index + 1) % len(cycle)]
                where = f"{field}[{edges(loaded).index(after)}]"
                problems.append((loaded, where, f"{word} cycle: {path}"))
    # Both are "waits for" edges: a dependsOn b while b is promoted from a holds each
    # behind the other as soon as both change, like a cycle of one kind.
    for cycle in cycles(releases, _waits_for):
        if frozenset(cycle) in reported:
            continue
        path = " -> ".join([*cycle, cycle[0]])
        for index, name in enumerate(cycle):
            loaded = releases[name]
            after = cycle[(index + 1) % len(cycle)]
            if after in loaded.depends_on:
                where = f"spec.dependsOn[{loaded.depends_on.index(after)}]"
            else:
                where = f"spec.promotion.from[{loaded.promoted_from.index(after)}]"
            problems.append((loaded, where, f"dependsOn and promotion cycle: {path}"))
    return problems


LISTED_RELEASES = 20
"""Up to this many releases in the directory, an unknown name's error lists them all."""
CLOSEST_SHOWN = 5
CLOSE_ENOUGH = 0.6
"""difflib's similarity ratio a name needs to be offered (``get_close_matches``'s cutoff)."""


def _choices(name: str, known: Collection[str]) -> str:
    """What the name could have been: every release in a small directory, else the closest.

    A directory of thousands of releases would otherwise put all their names in
    one error line (and in ``/status``, a log line and an alert's annotation).
    """
    if len(known) <= LISTED_RELEASES:
        return "releases: " + (", ".join(sorted(known)) or "none")
    close = _closest(name, known)
    if not close:
        return f"none of its {len(known)} releases has a close name"
    return f"closest of its {len(known)} releases: " + ", ".join(close)


def _closest(name: str, known: Collection[str]) -> list[str]:
    """The most similar names, ties broken by the longer common prefix, then by name.

    ``difflib.get_close_matches`` breaks ties by the alphabetically last name, which
    offers ``svc-09123`` before ``svc-01230`` for ``svc-0123x``.
    """
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name)
    scored: list[tuple[float, int, str]] = []
    for candidate in known:
        matcher.set_seq1(candidate)
        if (
            matcher.real_quick_ratio() >= CLOSE_ENOUGH
            and matcher.quick_ratio() >= CLOSE_ENOUGH
            and (ratio := matcher.ratio()) >= CLOSE_ENOUGH
        ):
            scored.append((-ratio, -_common_prefix(candidate, name), candidate))
    return [candidate for _, _, candidate in heapq.nsmallest(CLOSEST_SHOWN, scored)]


def _common_prefix(one: str, other: str) -> int:
    """How many leading characters the two names share."""
    for index, (a, b) in enumerate(zip(one, other, strict=False)):
        if a != b:
            return index
    return min(len(one), len(other))


def _depends_on(release: Named) -> list[str]:
    return release.depends_on


def _promoted_from(release: Named) -> list[str]:
    return release.promoted_from


def _waits_for(release: Named) -> list[str]:
    """Every release this one waits for: its dependencies and its upstreams."""
    return list(dict.fromkeys([*release.depends_on, *release.promoted_from]))


def cycles(releases: Mapping[str, Named], edges: Callable[[Named], list[str]]) -> list[list[str]]:
    """Each elementary cycle found by a depth-first walk, once (self-loops excluded).

    The walk starts only from releases with edges: one naming no other cannot be on a
    cycle, and at 10,000 releases most name none."""
    found: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        path.append(name)
        for after in edges(releases[name]):
            if after == name or after not in releases:
                continue
            if state.get(after) == 1:
                cycle = path[path.index(after) :]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append(cycle)
            elif after not in state:
                walk(after)
        path.pop()
        state[name] = 2

    for name in sorted(name for name, release in releases.items() if edges(release)):
        if name not in state:
            walk(name)
    return found
