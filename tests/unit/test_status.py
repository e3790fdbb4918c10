"""Release status: conditions checked the way Flux checks its own, and `ecsop status`'s table.

Flux turns its condition conventions into checks (fluxcd/pkg
runtime/conditions/check/fail.go); these are ours, as properties over any
sequence of phases a release can go through.
"""

from __future__ import annotations

import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ecsop.cli import status as status_cli
from ecsop.decision.reasons import Phase, Reason
from ecsop.observability.status import ReleaseStatus, Rollout, StatusStore

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TYPES = ("Ready", "Progressing", "Degraded")
DIGEST = "repo/app@sha256:" + "ab" * 32

steps = st.lists(
    st.tuples(
        st.sampled_from(list(Phase)),
        st.sampled_from([r.value for r in Reason] + ["AccessDeniedException"]),
        st.text(max_size=40),
        st.integers(min_value=0, max_value=3600),
    ),
    min_size=1,
    max_size=30,
)


def status(phase: Phase, reason: str = "InSync", message: str = "") -> ReleaseStatus:
    return ReleaseStatus(
        name="shop",
        region="us-east-1",
        cluster="prod",
        service="shop",
        file="specs/shop.yaml",
        commit="0" * 40,
        phase=phase,
        reason=reason,
        message=message,
    )


@settings(max_examples=300, deadline=None)
@given(steps)
def test_conditions_over_any_sequence_of_phases(
    sequence: list[tuple[Phase, str, str, int]],
) -> None:
    store = StatusStore()
    now = START
    before = None
    for phase, reason, message, seconds in sequence:
        now += timedelta(seconds=seconds)
        stored = store.put(status(phase, reason, message), now)
        conditions = {c.type: c for c in stored.conditions}

        # Ready is always there; exactly one condition of each type, statuses spelled right.
        assert [c.type for c in stored.conditions] == list(TYPES)
        assert {c.status for c in stored.conditions} <= {"True", "False", "Unknown"}
        # Never progressing and degraded at once; Ready excludes both.
        assert not (conditions["Progressing"].status == conditions["Degraded"].status == "True")
        if conditions["Ready"].status == "True":
            assert conditions["Progressing"].status == conditions["Degraded"].status == "False"
        assert (conditions["Ready"].status == "True") == (phase is Phase.SYNCED)
        assert (conditions["Degraded"].status == "True") == (
            phase in (Phase.DEGRADED, Phase.INVALID)
        )
        assert (conditions["Progressing"].status == "True") == (
            phase in (Phase.PROGRESSING, Phase.ROLLING_BACK)
        )
        # The latest reason and message are on every condition.
        assert {(c.reason, c.message) for c in stored.conditions} == {(reason, message)}

        # lastTransitionTime moves exactly when a condition's status flips.
        old = {c.type: c for c in before.conditions} if before else {}
        for kind, condition in conditions.items():
            if kind in old and old[kind].status == condition.status:
                assert condition.last_transition_time == old[kind].last_transition_time
            else:
                assert condition.last_transition_time == now
            assert condition.last_transition_time <= now
        # lastChange moves exactly when the phase changes.
        if before is not None and before.phase is phase:
            assert stored.last_change == before.last_change
        else:
            assert stored.last_change == now
        assert stored.updated_at == now
        assert store.get("shop") == stored
        before = stored


def test_status_json_is_camel_case_with_iso_times() -> None:
    store = StatusStore()
    store.put(status(Phase.PROGRESSING, "Deploying", "deploying"), START)
    stored = store.put(
        replace(
            status(Phase.DEGRADED, "ReleaseFailed", "it failed"),
            last_rollout=Rollout("rolled_back", "failed_tasks", "2 failed tasks", START),
            desired_images={"app": DIGEST},
        ),
        START + timedelta(minutes=5),
    )
    data = stored.to_json()
    assert data["phase"] == "Degraded"
    assert data["desiredImages"] == {"app": DIGEST}
    assert {
        "outcome": "rolled_back",
        "reason": "failed_tasks",
        "detail": "2 failed tasks",
        "at": START.isoformat(),
    }.items() <= data["lastRollout"].items()
    assert data["lastChange"] == (START + timedelta(minutes=5)).isoformat()
    ready = next(c for c in data["conditions"] if c["type"] == "Ready")
    assert ready == {
        "type": "Ready",
        "status": "False",
        "reason": "ReleaseFailed",
        "message": "it failed",
        "lastTransitionTime": START.isoformat(),
    }


def test_the_store_lists_releases_by_name_and_forgets_them() -> None:
    store = StatusStore()
    for name in ("web", "api", "shop"):
        store.put(replace(status(Phase.SYNCED), name=name), START)
    assert [s.name for s in store.all()] == ["api", "shop", "web"]
    store.remove("shop")
    store.remove("shop")
    assert [s.name for s in store.all()] == ["api", "web"]



def test_a_release_seen_unchanged_moves_only_its_updated_at() -> None:
    """A resync's unchanged release: ``updatedAt`` moves, its conditions and last change
    do not; a later status, or a removal and return, starts from what was put."""
    store = StatusStore()
    put = store.put(status(Phase.SYNCED), START)
    later = START + timedelta(minutes=5)
    store.seen("shop", later)
    store.seen("nobody", later)  # not a release: nothing appears
    seen = store.get("shop")
    assert seen is not None and [s.name for s in store.all()] == ["shop"]
    assert seen.updated_at == later == store.all()[0].updated_at
    assert (seen.conditions, seen.last_change) == (put.conditions, put.last_change)
    degraded = store.put(status(Phase.DEGRADED), later + timedelta(minutes=1))
    assert store.get("shop") == degraded
    store.seen("shop", later + timedelta(minutes=2))
    store.remove("shop")
    store.put(status(Phase.SYNCED), later + timedelta(minutes=3))
    assert store.get("shop").updated_at == later + timedelta(minutes=3)  # type: ignore[union-attr]

# --- `ecsop status` ----------------------------------------------------------------------

names = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=63)
ecs_names = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=0, max_size=255)
images = st.one_of(
    st.just(DIGEST),
    st.builds(lambda t: f"repo/app:{t}", st.text(string.ascii_letters + ".-", min_size=1)),
    st.just("nginx"),
)
release_json = st.fixed_dictionaries(
    {
        "name": names,
        "cluster": ecs_names,
        "service": ecs_names,
        "phase": st.sampled_from([p.value for p in Phase]),
        "message": st.text(alphabet=string.printable, max_size=600),
        "runningImages": st.dictionaries(names, images, max_size=2),
        "desiredImages": st.dictionaries(names, images, max_size=2),
        "lastChange": st.one_of(
            st.none(),
            st.integers(min_value=0, max_value=5 * 365 * 86400).map(
                lambda s: (START - timedelta(seconds=s)).isoformat()
            ),
        ),
        "lastRollout": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "outcome": st.sampled_from(["succeeded", "rolled_back", "failed"]),
                    "reason": st.sampled_from(["failed_tasks", "timeout", "baked"]),
                },
                optional={"stopReason": st.text(alphabet=string.printable, max_size=300)},
            ),
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(release_json, max_size=5))
def test_status_table_fits_80_columns(releases: list[dict[str, Any]]) -> None:
    text = status_cli.render(releases, START)
    lines = text.split("\n")
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert lines[0].split() == ["RELEASE", "SERVICE", "PHASE", "RUNNING", "DESIRED", "AGE"]
    summary = [line for line in lines[1:] if not line.startswith("    ")]
    assert len(summary) == len(releases)


def test_status_table_example() -> None:
    releases = [
        {
            "name": "shop",
            "cluster": "prod",
            "service": "shop",
            "phase": "Degraded",
            "message": "release 5f0c1d2e3a4b5c6d is not deployed again: it failed "
            "(failed_tasks); change the spec or run `ecsop retry shop`",
            "runningImages": {"app": "repo/app@sha256:" + "1" * 64},
            "desiredImages": {"app": "repo/app@sha256:" + "c" * 64},
            "lastChange": (START - timedelta(minutes=12)).isoformat(),
            "lastRollout": {"outcome": "rolled_back", "reason": "failed_tasks"},
        },
        {
            "name": "payments-api",
            "cluster": "prod",
            "service": "payment-service",
            "phase": "Synced",
            "message": "running 0a1b2c3d4e5f6a7b",
            "runningImages": {"api": "repo/pay@sha256:" + "e" * 64},
            "desiredImages": {"api": "repo/pay@sha256:" + "e" * 64},
            "lastChange": (START - timedelta(days=3, hours=1)).isoformat(),
        },
    ]
    lines = status_cli.render(releases, START).split("\n")
    assert lines[1].split() == ["shop", "prod/shop", "Degraded", "1111111", "ccccccc", "12m"]
    assert lines[2:5] == [
        "    release 5f0c1d2e3a4b5c6d is not deployed again: it failed (failed_tasks);",
        "    change the spec or run `ecsop retry shop`",
        "    [last rollout rolled_back: failed_tasks]",
    ]
    assert lines[5].split()[-1] == "3d"
    assert lines[6:] == ["    running 0a1b2c3d4e5f6a7b"]


def test_status_json_keeps_container_names_and_is_built_once() -> None:
    stored = StatusStore().put(
        replace(status(Phase.SYNCED), desired_images={"my_app": DIGEST}), START
    )
    first = stored.to_json()
    assert first["desiredImages"] == {"my_app": DIGEST}, "a container name is data, not a field"
    first["history"] = ["added by /status"]
    again = stored.to_json()
    assert "history" not in again and again == stored.to_json()
    assert again["desiredImages"] is first["desiredImages"], "built once per status"
