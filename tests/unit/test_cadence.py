"""The cadence: long intervals while events flow, the short ones (and why) while they do not.

Time is a fake monotonic clock; every case is a short story told to one ``Cadence``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ecsop.runtime.cadence import Cadence, CadenceSettings, CadenceState, Fallback

SETTINGS = CadenceSettings(
    events=True,
    events_poll=30,
    events_resync=300,
    fallback_poll=5,
    fallback_resync=30,
    silence_seconds=60,
    failures_before_fallback=3,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Story = Callable[[Cadence, Clock], None]


def deployed_and_reported(c: Cadence, clock: Clock) -> None:
    c.expect("shop")
    clock.now += 5
    c.heard("shop")
    clock.now += 100


def deployed_and_never_reported(c: Cadence, clock: Clock) -> None:
    c.expect("shop")
    clock.now += 61


def deployed_reported_late(c: Cadence, clock: Clock) -> None:
    deployed_and_never_reported(c, clock)
    c.check()
    c.heard("other")  # any release's event proves the rule delivers again


def two_failures(c: Cadence, clock: Clock) -> None:
    c.failed("boom")
    c.failed("boom")


def three_failures(c: Cadence, clock: Clock) -> None:
    two_failures(c, clock)
    c.failed("EndpointConnectionError: Could not connect")


def failures_interrupted_by_a_success(c: Cadence, clock: Clock) -> None:
    two_failures(c, clock)
    c.received()
    two_failures(c, clock)


def unreachable_then_back(c: Cadence, clock: Clock) -> None:
    three_failures(c, clock)
    c.received()


def silent_then_unreachable_then_only_reachable(c: Cadence, clock: Clock) -> None:
    deployed_and_never_reported(c, clock)
    c.check()
    three_failures(c, clock)
    c.received()  # reachable, but nothing heard yet: still silent


def unreachable_then_a_deploy_nobody_can_report(c: Cadence, clock: Clock) -> None:
    three_failures(c, clock)
    deployed_and_never_reported(c, clock)
    c.check()  # no event could arrive: not silence as well


@pytest.mark.parametrize(
    ("story", "flowing", "reasons"),
    [
        pytest.param(lambda c, clock: None, True, (), id="at-start"),
        pytest.param(deployed_and_reported, True, (), id="deploy-reported"),
        pytest.param(deployed_and_never_reported, False, (Fallback.SILENT,), id="silent"),
        pytest.param(deployed_reported_late, True, (), id="silent-then-heard"),
        pytest.param(two_failures, True, (), id="two-failed-receives-are-a-blip"),
        pytest.param(three_failures, False, (Fallback.UNREACHABLE,), id="unreachable"),
        pytest.param(failures_interrupted_by_a_success, True, (), id="failures-not-in-a-row"),
        pytest.param(unreachable_then_back, True, (), id="unreachable-then-received"),
        pytest.param(
            silent_then_unreachable_then_only_reachable,
            False,
            (Fallback.SILENT,),
            id="both-then-reachable-still-silent",
        ),
        pytest.param(
            unreachable_then_a_deploy_nobody_can_report,
            False,
            (Fallback.UNREACHABLE,),
            id="unreachable-is-not-also-silent",
        ),
    ],
)
def test_events_are_trusted_until_they_fail(
    story: Story, flowing: bool, reasons: tuple[Fallback, ...]
) -> None:
    clock = Clock()
    cadence = Cadence(SETTINGS, monotonic=clock)
    story(cadence, clock)
    assert cadence.flowing is flowing
    assert cadence.state().reasons == reasons
    if flowing:
        assert cadence.requeue_after(30) == 30
        assert cadence.requeue_after(12.5) == 12.5  # a bake ending sooner is kept
        assert cadence.resync_seconds() == 300
    else:
        assert cadence.requeue_after(30) == 5
        assert cadence.requeue_after(2) == 2
        assert cadence.resync_seconds() == 30
    assert cadence.requeue_after(None) is None  # nothing in flight: the resync will look


def test_without_a_queue_nothing_changes() -> None:
    clock = Clock()
    cadence = Cadence(
        CadenceSettings(events=False, fallback_poll=0.25, fallback_resync=2), monotonic=clock
    )
    cadence.expect("shop")
    clock.now += 1000
    for _ in range(5):
        cadence.failed("x")
    assert cadence.requeue_after(0.25) == 0.25
    assert cadence.resync_seconds() == 2
    assert not cadence.flowing and cadence.state().reasons == ()


def test_each_change_is_told_once_with_what_began() -> None:
    clock = Clock()
    told: list[tuple[bool, Fallback | None, str]] = []

    def on_change(state: CadenceState, began: Fallback | None) -> None:
        told.append((state.flowing, began, state.detail))

    cadence = Cadence(SETTINGS, on_change=on_change, monotonic=clock)
    cadence.expect("shop")
    clock.now += 61
    cadence.check()
    cadence.check()  # already silent: not told again
    three_failures(cadence, clock)
    cadence.failed("again")  # already unreachable: not told again
    cadence.received()
    cadence.heard("shop")
    assert [(f, b) for f, b, _ in told] == [
        (False, Fallback.SILENT),
        (False, Fallback.UNREACHABLE),
        (True, None),
    ]
    assert "no event about shop arrived within 60s" in told[0][2]
    assert "Could not connect" in told[1][2]


def test_the_oldest_expectation_counts_and_a_repeat_does_not_reset_it() -> None:
    clock = Clock()
    cadence = Cadence(SETTINGS, monotonic=clock)
    cadence.expect("shop")
    clock.now += 40
    cadence.expect("shop")  # a second deploy before any event: still 40 s overdue
    clock.now += 21
    cadence.check()
    assert not cadence.flowing
