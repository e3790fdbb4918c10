"""Shard leases: the client-go timings, take-over, hand-over, and never two replicas acting.

Replicas share one in-memory table and one manual clock (``lease_world``);
every round and every clock step checks that no shard is acted on by two
replicas at once. The property test drives random schedules of rounds,
pauses, crashes, cut links and lost answers through the same check.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lease_world import World

from ecsop.controller.ownership import shard_of
from ecsop.runtime.lease import LeaseSettings, Seen

S = LeaseSettings()


@pytest.mark.parametrize(
    ("view", "own", "now", "takeable"),
    [
        pytest.param(Seen(None, "", 0, 100.0), None, 100.0, True, id="no-item-yet"),
        pytest.param(Seen("v1", "", 3, 100.0), None, 100.0, True, id="released"),
        pytest.param(Seen("v1", "me", 3, 100.0), 3, 100.0, True, id="our-own-stale-item"),
        pytest.param(Seen("v1", "me", 3, 100.0), None, 100.0, False, id="our-id-not-our-token"),
        pytest.param(Seen("v1", "me", 3, 100.0), 2, 100.0, False, id="our-id-a-later-token"),
        pytest.param(Seen("v1", "me", 3, 100.0), None, 115.0, True, id="our-id-quiet-a-lease"),
        pytest.param(Seen("v1", "other", 3, 100.0), None, 114.9, False, id="other-within-lease"),
        pytest.param(Seen("v1", "other", 3, 100.0), None, 115.0, True, id="other-quiet-a-lease"),
        pytest.param(Seen(None, "other", 3, 100.0), None, 114.9, False, id="deleted-while-held"),
        pytest.param(Seen(None, "other", 3, 100.0), None, 115.0, True, id="deleted-a-lease-ago"),
        pytest.param(Seen(None, "me", 3, 100.0), 3, 100.0, True, id="deleted-while-ours"),
    ],
)
def test_when_a_lease_may_be_taken(view: Seen, own: int | None, now: float, takeable: bool) -> None:
    assert view.takeable(now, "me", S, own) is takeable


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"lease_seconds": 10, "renew_deadline_seconds": 10}, id="deadline-too-long"),
        pytest.param({"retry_period_seconds": 9}, id="retry-too-long-for-deadline"),
        pytest.param({"retry_period_seconds": 0}, id="no-retry-period"),
    ],
)
def test_settings_keep_client_gos_ordering(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LeaseSettings(**kwargs)


def test_client_go_defaults() -> None:
    assert (S.lease_seconds, S.renew_deadline_seconds, S.retry_period_seconds) == (15, 10, 2)
    assert S.margin_seconds == 5


def test_shard_of_is_stable_and_spreads() -> None:
    names = [f"release-{i}" for i in range(300)]
    shards = [shard_of(n, 8) for n in names]
    assert shard_of("payments-api", 8) == shard_of("payments-api", 8)
    assert shard_of("payments-api", 8) == 0  # a stable hash: the same in every process
    counts = [shards.count(s) for s in range(8)]
    assert min(counts) >= 20 and max(counts) <= 75, counts  # mean 37.5


def test_a_lone_replica_takes_every_shard_after_seeing_the_table_twice() -> None:
    world = World(shards=4)
    world.add("a")
    world.round()
    assert world.held() == {"a": []}, "no take before a second read"
    world.round()
    assert world.held() == {"a": [0, 1, 2, 3]}
    assert sorted(t[2] for t in world.table.takes) == [1, 1, 1, 1]


def test_three_replicas_spread_eight_shards_three_three_two() -> None:
    world = World(shards=8)
    for name in "abc":
        world.add(name)
    world.rounds(12)
    held = world.held()
    assert sorted(len(s) for s in held.values()) == [2, 3, 3]
    assert sorted(s for shards in held.values() for s in shards) == list(range(8))


def test_a_replica_joining_gets_its_share_one_hand_over_at_a_time() -> None:
    world = World(shards=8)
    world.add("a")
    world.add("b")
    world.rounds(6)
    assert sorted(len(s) for s in world.held().values()) == [4, 4]
    world.add("c")
    world.round()
    released = sum(1 for r in world.replicas for kind, _ in r.listener.events if kind == "released")
    assert released <= 2, "one hand-over per replica per round, not a stampede"
    world.rounds(10)
    held = world.held()
    assert sorted(len(s) for s in held.values()) == [2, 3, 3]
    assert sorted(s for shards in held.values() for s in shards) == list(range(8))


def test_a_dead_replicas_shards_move_after_one_lease_duration_not_before() -> None:
    world = World(shards=4)
    a, b = world.add("a"), world.add("b")
    world.rounds(6)
    dead = a.coordinator.held()
    assert dead and b.coordinator.held()
    a.crashed = True
    died = world.clock.now
    while not set(dead) <= set(b.coordinator.held()):
        world.round(step=0.5)
        assert world.clock.now - died < S.lease_seconds + 2 * S.retry_period_seconds + 1
    assert world.clock.now - died >= S.lease_seconds - S.retry_period_seconds
    assert sorted(b.coordinator.held()) == [0, 1, 2, 3]


def test_a_paused_holder_stops_acting_by_its_renew_deadline_and_stays_out() -> None:
    world = World(shards=2)
    a, b = world.add("a"), world.add("b")
    world.rounds(6)
    (shard, *_) = a.coordinator.held()
    before = a.coordinator.holding(shard)
    assert before is not None
    a.paused = True  # SIGSTOP: no rounds, but time goes on
    world.rounds(12)
    assert shard in b.coordinator.held()
    assert a.coordinator.holding(shard) is None
    assert not a.coordinator.still_holds(before)
    a.paused = False  # SIGCONT
    world.rounds(3)
    assert shard not in a.coordinator.held()
    assert ("lost", shard) in a.listener.events


def test_table_down_no_replica_acts_past_its_deadline_and_none_takes() -> None:
    world = World(shards=4)
    replicas = [world.add(n) for n in "ab"]
    world.rounds(6)
    for replica in replicas:
        replica.link.down = True
    down_at = world.clock.now
    world.rounds(int(S.renew_deadline_seconds / S.retry_period_seconds) + 1)
    assert world.clock.now - down_at >= S.renew_deadline_seconds
    assert world.held() == {"a": [], "b": []}
    for replica in replicas:
        ok, _ = replica.coordinator.health()
        assert ok is (world.clock.now - down_at <= S.lease_seconds)
    world.rounds(4)
    assert all(not r.coordinator.health()[0] for r in replicas)
    assert "has not answered" in replicas[0].coordinator.health()[1]
    for replica in replicas:
        replica.link.down = False
    world.rounds(6)
    assert sorted(s for shards in world.held().values() for s in shards) == [0, 1, 2, 3]


def test_lost_answers_do_not_make_two_holders() -> None:
    world = World(shards=2)
    a = world.add("a")
    world.add("b")
    a.link.lose_answers = True
    world.rounds(10)
    a.link.lose_answers = False
    world.rounds(10)
    assert sorted(s for shards in world.held().values() for s in shards) == [0, 1]


def test_hand_over_releases_so_the_next_owner_need_not_wait_a_lease() -> None:
    world = World(shards=2)
    a = world.add("a")
    world.rounds(3)
    assert a.coordinator.held() == [0, 1]
    b = world.add("b")
    world.rounds(3)
    assert len(b.coordinator.held()) == 1, "took the released shard without waiting 15 s"
    assert world.clock.now < 1000 + 6 * S.retry_period_seconds + S.lease_seconds


def test_hand_over_waits_for_work_in_flight_or_lets_the_lease_expire() -> None:
    world = World(shards=1)
    a = world.add("a")
    world.rounds(3)
    with a.coordinator.acting(0) as tenure:
        assert tenure is not None
        a.coordinator.stop(release=True)  # drain_seconds=0: work still in flight
        assert a.coordinator.holding(0) is None, "closed to new work at once"
    assert world.table.leases[0].holder == "a", "not released while a pass was in flight"


def test_tokens_grow_with_every_take() -> None:
    world = World(shards=1)
    a, b = world.add("a"), world.add("b")
    for _ in range(4):
        world.rounds(8)
        holder = a if a.coordinator.held() else b
        holder.crashed = True
        world.rounds(10)
        holder.crashed = False
        holder.coordinator._tenures.clear()  # a restart forgets everything
    tokens = [token for shard, _, token in world.table.takes if shard == 0]
    assert tokens == sorted(set(tokens)) and len(tokens) >= 4


def test_a_replica_with_another_shard_count_acts_on_nothing() -> None:
    world = World(shards=4)
    world.add("a")
    b = world.add("b", shards=8)
    world.rounds(6)
    assert b.coordinator.held() == []
    ok, why = b.coordinator.health()
    assert not ok and "4 shards" in why


@pytest.mark.parametrize("who", ["holder-first", "candidate-first", "holder-paused"])
def test_a_lease_item_deleted_by_hand_is_not_taken_while_its_holder_may_act(who: str) -> None:
    """Someone deletes ``lease#0`` in the console. Its holder acts until its renewal
    fails (then takes its own item again at once) or, paused, until its deadline: the
    others wait a lease duration, as for any holder gone quiet."""
    world = World(shards=1)
    a, b = world.add("a"), world.add("b")
    world.rounds(4)
    holder, other = (a, b) if a.coordinator.held() else (b, a)
    token = world.table.leases[0].token
    world.replicas = [other, holder] if who == "candidate-first" else [holder, other]
    holder.paused = who == "holder-paused"
    del world.table.leases[0]
    deleted = world.clock.now
    while not world.table.leases.get(0) or not world.table.leases[0].holder:
        world.round(step=0.5)  # checks at every step: never both acting
        assert world.clock.now - deleted < S.lease_seconds + 3 * S.retry_period_seconds
    taker = holder if holder.coordinator.held() else other
    assert taker is (other if who == "holder-paused" else holder)
    if taker is other:
        assert world.clock.now - deleted >= S.lease_seconds
    assert world.table.leases[0].token > token, "the fencing token never starts again"


@pytest.mark.parametrize("first", ["new-count-first", "old-count-first"])
def test_a_shard_count_changed_under_running_replicas_never_lets_two_act_on_a_release(
    first: str,
) -> None:
    """Someone deletes the ``config`` item to change ``--shards`` and rolls the replicas
    one by one instead of stopping them all: a release then maps to two different lease
    items, one under each count. No release is ever acted on by two replicas; once the
    replicas of the old count are gone, the new count takes every shard."""
    world = World(shards=4)
    old = [world.add("a"), world.add("b")]
    world.rounds(6)
    assert sorted(s for r in old for s in r.coordinator.held()) == [0, 1, 2, 3]
    new = world.add("c", shards=8)
    world.rounds(3)  # acts on nothing: the table says 4
    assert new.coordinator.held() == []
    world.table.shards = None
    world.replicas = [new, *old] if first == "new-count-first" else [*old, new]
    names = [f"release-{i}" for i in range(64)]

    def check() -> None:
        for name in names:
            acting = [
                r.name
                for r in world.replicas
                if not r.crashed
                and r.coordinator.holding(shard_of(name, r.coordinator.shards)) is not None
            ]
            assert len(acting) <= 1, f"{name} acted on by {acting} at {world.clock.now}"

    world.check = check  # type: ignore[method-assign]
    world.rounds(12)
    for replica in old:  # the rollout stops the old replicas
        replica.coordinator.stop(release=True)
        replica.crashed = True
    world.rounds(20)
    winner = world.table.shards
    survivors = [r for r in world.replicas if not r.crashed]
    if winner == 8:
        assert sorted(s for r in survivors for s in r.coordinator.held()) == list(range(8))


@pytest.mark.parametrize("old", ["running", "paused"])
def test_two_processes_with_one_replica_id_never_act_together(old: str) -> None:
    """``ECSOP_REPLICA_ID`` fixed in a task definition: a new task starts while the old one
    still runs (a rolling update) or is merely paused. The lease's holder is "its own
    name", but not its own tenure: it waits a lease duration like any other replica."""
    world = World(shards=2)
    first = world.add("ecsop")
    world.rounds(4)
    assert first.coordinator.held() == [0, 1]
    first.paused = old == "paused"
    second = world.add("ecsop")  # world.check: never both acting on a shard
    world.rounds(20)
    if old == "paused":
        assert second.coordinator.held() == [0, 1]
        first.paused = False
        world.rounds(4)
        assert first.coordinator.held() == []


# --- the property: never two replicas acting on one shard ----------------------------------

STEP = st.one_of(
    st.tuples(st.just("round"), st.floats(0.1, 3.0)),
    st.tuples(st.just("pause"), st.integers(0, 2)),
    st.tuples(st.just("resume"), st.integers(0, 2)),
    st.tuples(st.just("crash"), st.integers(0, 2)),
    st.tuples(st.just("restart"), st.integers(0, 2)),
    st.tuples(st.just("twin"), st.integers(0, 2)),
    st.tuples(st.just("cut"), st.integers(0, 2)),
    st.tuples(st.just("heal"), st.integers(0, 2)),
    st.tuples(st.just("lossy"), st.integers(0, 2)),
    st.tuples(st.just("sleep"), st.floats(0.1, 20.0)),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(STEP, min_size=5, max_size=80),
    seed=st.integers(0, 1000),
    skews=st.lists(st.floats(-86_400.0, 86_400.0), min_size=3, max_size=3),
)
def test_never_two_replicas_act_on_one_shard(
    steps: list[tuple[str, float]], seed: int, skews: list[float]
) -> None:
    """Clocks a day apart change nothing: only how fast each clock runs matters."""
    world = World(shards=3, seed=seed)
    replicas = [world.add(n, skew=skew) for n, skew in zip("abc", skews, strict=True)]
    for kind, value in steps:
        if kind == "round":
            world.round(step=float(value))
        elif kind == "sleep":
            world.clock.now += float(value)
            world.check()
        else:
            replica = replicas[int(value)]
            if kind == "pause":
                replica.paused = True
            elif kind == "resume":
                replica.paused = False
            elif kind == "crash":
                replica.crashed = True
            elif kind == "restart" and replica.crashed:
                fresh = world.add(f"{replica.name}{len(world.replicas)}")
                replicas[int(value)] = fresh
            elif kind == "twin" and len(world.replicas) < 8:
                world.add(replica.name)  # another process given the same --replica-id
            elif kind == "cut":
                replica.link.down = True
            elif kind == "heal":
                replica.link.down = False
                replica.link.lose_answers = False
            elif kind == "lossy":
                replica.link.lose_answers = True
    tokens: dict[int, list[int]] = {}
    for shard, _, token in world.table.takes:
        tokens.setdefault(shard, []).append(token)
    for taken in tokens.values():
        assert taken == sorted(taken) and len(taken) == len(set(taken)), "fencing tokens grow"
    # Healed and left alone, the survivors hold every shard exactly once.
    for replica in world.replicas:
        replica.paused = False
        replica.link.down = False
        replica.link.lose_answers = False
    if all(r.crashed for r in world.replicas):
        world.add("fresh")
    world.rounds(20)
    held = [s for r in world.replicas if not r.crashed for s in r.coordinator.held()]
    assert sorted(held) == [0, 1, 2]
