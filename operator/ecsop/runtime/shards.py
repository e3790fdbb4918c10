"""Spreading shards over the live replicas: one lease each, renewed, taken and handed over.

``ShardCoordinator`` runs one *round* every retry period (jittered), in its own thread:

1. read the whole table (``LeaseStore.read``) and fold it into what was seen;
2. heartbeat this replica's membership item;
3. renew every shard held; one whose renewal has not succeeded within the
   renew deadline is dropped (it was already closed to work by the clock, see
   below), and one whose renewal finds another holder is dropped at once;
4. balance: every replica aims at ``ceil(shards / live replicas)``. Above it, a
   replica hands one shard over per round (stops acting, lets the passes in
   flight on it finish, then releases the lease so the next owner need not wait
   for it to expire). Below it, it takes free or expired shards, in random
   order, at most up to its target, and only after two rounds have shown it
   the other members: a replica that joins takes its share as the others hand
   theirs over, one per round each, not all at once. A replica whose shard count
   differs from the table's hands every shard over and takes none; one takes
   none either while a live member heartbeats another count (a release maps to
   another lease under each count).

The gate is the clock, not the thread: ``acting(shard)`` yields a tenure only
while ``now < acting_until``, so a replica whose round is stuck (a paused
process, a hung connection) stops acting on time anyway. Work checks the gate
right before it starts (``acting``) and right before every write
(``still_holds``); a hand-over closes it first and then waits for the passes it
let in.

Generic: shards are integers, replicas strings; ``ShardListener`` is told of
every transition (the controller resets its per-shard memory and queues work,
metrics count).
"""

from __future__ import annotations

import math
import random
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import structlog

from ecsop.runtime.lease import LeaseSettings, LeaseStore, Seen, TableView, Tenure, seen

log = structlog.get_logger("ecsop.runtime.shards")

ROUNDS_BEFORE_TAKING = 2
"""Successful reads before a replica takes any shard: it must have seen the others."""
STORE_ERRORS_LOGGED_EVERY = 10
"""While the table fails, one warning every this many rounds (and at the first)."""


class ShardListener:
    """What a coordinator tells the rest of the process; every method may be overridden."""

    def acquiring(self, shard: int) -> None:
        """A shard was taken; called before any work may enter it (reset per-shard memory)."""

    def acquired(self, tenure: Tenure) -> None:
        """A shard was taken and is open to work (queue its items)."""

    def lost(self, shard: int, why: str) -> None:
        """This replica no longer acts on the shard (lost, or handed over)."""

    def transition(self, shard: int, kind: str) -> None:
        """``acquired``, ``lost`` or ``released``, for metrics."""

    def renew_failed(self, shard: int) -> None:
        """A renewal did not succeed (error or condition)."""

    def round_done(self, held: list[int], live: int, store_ok: bool) -> None:
        """After each round: shards held, live replicas seen, whether the table answered."""


@dataclass(frozen=True)
class Owner:
    """Who holds a shard, as this replica last read the table."""

    shard: int
    holder: str
    """"" when nobody holds it (released, never taken)."""
    token: int
    url: str
    """The holder's HTTP endpoint, from its membership item ("" if unknown)."""
    stale_seconds: float
    """How long this replica has seen the same version (an old one means a dead holder)."""


class ShardCoordinator:
    def __init__(
        self,
        store: LeaseStore,
        shards: int,
        me: str,
        url: str,
        settings: LeaseSettings,
        listener: ShardListener | None = None,
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        drain_seconds: float | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError("at least one shard")
        self._store = store
        self.shards = shards
        self.me = me
        self._url = url
        self.settings = settings
        self._listener = listener or ShardListener()
        self._clock = clock
        self._rng = rng or random.Random()
        self._drain_seconds = (
            settings.retry_period_seconds if drain_seconds is None else drain_seconds
        )
        self._lock = threading.Condition(threading.Lock())
        self._tenures: dict[int, Tenure] = {}
        self._inflight: dict[int, int] = {}
        self._seen: dict[int, Seen] = {}
        self._own: dict[int, int] = {}
        """Shard -> the token this process last held or tried to take it with."""
        self._members: dict[str, tuple[str, float, str, bool, int]] = {}
        """member -> (beat, since, url, gone, shards)."""
        self._reads_ok = 0
        self._last_read_ok: float | None = None
        self._last_write_ok: float | None = None
        self._store_errors = 0
        self._mismatch: int | None = None
        self._waiting_for: dict[str, int] = {}
        """Live replicas of another shard count this one waits for (said once)."""
        self._stop = threading.Event()
        self._quiesced = False
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(min(8, shards), thread_name_prefix="ecsop-renew")

    # --- the gate ------------------------------------------------------------------

    def holding(self, shard: int) -> Tenure | None:
        """This replica's tenure on ``shard`` if it may act on it now."""
        with self._lock:
            tenure = self._tenures.get(shard)
        return tenure if tenure is not None and tenure.valid(self._clock()) else None

    @contextmanager
    def acting(self, shard: int) -> Iterator[Tenure | None]:
        """Enter work on ``shard``: the tenure, or None if this replica may not act on it.

        A hand-over waits for the work entered here to finish before releasing.
        """
        with self._lock:
            tenure = self._tenures.get(shard)
            if tenure is None or not tenure.valid(self._clock()):
                tenure = None
            else:
                self._inflight[shard] = self._inflight.get(shard, 0) + 1
        try:
            yield tenure
        finally:
            if tenure is not None:
                with self._lock:
                    self._inflight[shard] -= 1
                    self._lock.notify_all()

    def still_holds(self, tenure: Tenure) -> bool:
        """Whether ``tenure`` is still this replica's, and within its renew deadline."""
        with self._lock:
            current = self._tenures.get(tenure.shard)
        return (
            current is not None and current.token == tenure.token and current.valid(self._clock())
        )

    def held(self) -> list[int]:
        now = self._clock()
        with self._lock:
            return sorted(s for s, t in self._tenures.items() if t.valid(now))

    # --- what others see ---------------------------------------------------------

    def owners(self) -> dict[int, Owner]:
        """Every shard's holder as last read (this replica's own tenures as they stand)."""
        now = self._clock()
        with self._lock:
            out = {}
            for shard in range(self.shards):
                view = self._seen.get(shard)
                tenure = self._tenures.get(shard)
                if tenure is not None and tenure.valid(now):
                    out[shard] = Owner(shard, self.me, tenure.token, self._url, 0.0)
                elif view is None or not view.holder or view.holder == self.me:
                    token = view.token if view else 0
                    stale = now - view.since if view else 0.0
                    out[shard] = Owner(shard, "", token, "", stale)
                else:
                    member = self._members.get(view.holder)
                    url = member[2] if member else ""
                    out[shard] = Owner(shard, view.holder, view.token, url, now - view.since)
            return out

    def live_members(self) -> dict[str, str]:
        """Live replicas (this one included) and their URLs."""
        now = self._clock()
        with self._lock:
            return self._live(now)

    def health(self) -> tuple[bool, str]:
        """Ready unless the table has not answered for a lease duration, or disagrees on shards."""
        if self._mismatch is not None:
            return False, (
                f"the coordination table is set up for {self._mismatch} shards, this replica "
                f"for {self.shards}: acting on none (see docs on changing --shards)"
            )
        now = self._clock()
        if self._last_read_ok is None or self._last_write_ok is None:
            return False, "the coordination table has not answered yet"
        quiet = now - min(self._last_read_ok, self._last_write_ok)
        if quiet > self.settings.lease_seconds:
            what = "answered" if self._last_read_ok <= self._last_write_ok else "taken a write"
            return False, (
                f"the coordination table has not {what} for {quiet:.0f}s: acting on no "
                "shard this replica cannot prove it holds"
            )
        return True, "ok"

    # --- the loop ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ecsop-leases", daemon=True)
        self._thread.start()

    def quiesce(self) -> None:
        """Take no more shards (still renew the held ones): the process is stopping."""
        self._quiesced = True

    def stop(self, *, release: bool = True) -> None:
        """Stop the rounds; release every shard held (work must be stopped first) and leave."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.renew_deadline_seconds)
        if not release:
            return
        for shard in list(self._tenures):
            self._hand_over(shard, "shutting down")
        try:
            self._store.leave(self.me)
        except Exception as exc:
            log.warning("could not mark this replica gone in the table", error=str(exc))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except Exception:  # never lose the thread that keeps the leases
                log.exception("lease round failed")
            jitter = 1 + self.settings.jitter * self._rng.random()
            self._stop.wait(self.settings.retry_period_seconds * jitter)

    def round(self) -> None:
        """One round: renew, read, heartbeat, balance (public: tests drive it on a manual clock).

        Renewals go first and in parallel: a round's time must not grow with the
        number of shards held, nor wait behind a slow read.
        """
        started = self._clock()
        self._renew()
        renewed = self._clock()
        self._expire()
        table = self._read()
        self._beat()
        if table is not None and self._claimed(table):
            self._balance()
        took = self._clock() - started
        if took > self.settings.retry_period_seconds:
            log.warning(
                "a lease round took longer than the retry period (the table or this "
                "process is slow); renewals may miss their deadline",
                seconds=round(took, 2),
                renewing_seconds=round(renewed - started, 2),
                held=len(self._tenures),
            )
        with self._lock:
            live = len(self._live(self._clock()))
        self._listener.round_done(self.held(), live, table is not None)

    # --- round steps -----------------------------------------------------------------

    def _read(self) -> TableView | None:
        try:
            table = self._store.read()
        except Exception as exc:
            self._store_failed("read", exc)
            return None
        now = self._clock()
        leases = {lease.shard: lease for lease in table.leases}
        with self._lock:
            for shard in range(self.shards):
                self._seen[shard] = seen(self._seen.get(shard), leases.get(shard), now)
            for member in table.members:
                before = self._members.get(member.member)
                since = before[1] if before is not None and before[0] == member.beat else now
                self._members[member.member] = (
                    member.beat,
                    since,
                    member.url,
                    member.gone,
                    member.shards,
                )
        self._reads_ok += 1
        self._last_read_ok = now
        if self._store_errors:
            log.info("the coordination table answers again", failed_rounds=self._store_errors)
        self._store_errors = 0
        return table

    def _beat(self) -> None:
        try:
            self._store.beat(self.me, _version(), self._url, self.shards)
        except Exception as exc:
            self._store_failed("heartbeat", exc)
        else:
            self._last_write_ok = self._clock()

    def _renew(self) -> None:
        held = list(self._tenures.items())
        if len(held) > 1:
            list(self._pool.map(lambda pair: self._renew_one(*pair), held))
        else:
            for shard, tenure in held:
                self._renew_one(shard, tenure)

    def _renew_one(self, shard: int, tenure: Tenure) -> None:
        started = self._clock()
        if not tenure.valid(started):
            return  # _expire drops it and says so
        version = _version()
        try:
            ok = self._store.renew(shard, self.me, tenure.token, version)
        except Exception as exc:
            self._listener.renew_failed(shard)
            log.warning(
                "could not renew a lease; still acting until the renew deadline",
                shard=shard,
                fencing_token=tenure.token,
                seconds_left=round(tenure.acting_until - self._clock(), 1),
                error=str(exc),
            )
            return
        if ok:
            with self._lock:
                if self._tenures.get(shard) is tenure:
                    self._tenures[shard] = replace(
                        tenure,
                        version=version,
                        acting_until=started + self.settings.renew_deadline_seconds,
                    )
            return
        self._listener.renew_failed(shard)
        self._drop(shard, "another replica holds the lease now", kind="lost", level="error")

    def _expire(self) -> None:
        now = self._clock()
        for shard, tenure in list(self._tenures.items()):
            if not tenure.valid(now):
                self._drop(
                    shard,
                    f"the lease was not renewed within the renew deadline "
                    f"({self.settings.renew_deadline_seconds:g}s); stopped acting "
                    f"{now - tenure.acting_until:.1f}s ago; another replica may take it "
                    f"{self.settings.margin_seconds:g}s after that",
                    kind="lost",
                    level="error",
                )

    def _claimed(self, table: TableView) -> bool:
        recorded = table.shards
        if recorded is None:
            try:
                recorded = self._store.claim_shards(self.shards)
            except Exception as exc:
                self._store_failed("claim shard count", exc)
                return False
        if recorded != self.shards:
            if self._mismatch != recorded:
                log.error(
                    "shard count differs from the coordination table's; acting on no shard",
                    table_shards=recorded,
                    shards=self.shards,
                )
            self._mismatch = recorded
            # Under the table's count its releases map to other lease items, which
            # other replicas may take: it stops acting on every shard it holds.
            for shard in list(self._tenures):
                self._hand_over(shard, f"the table is set up for {recorded} shards")
            return False
        self._mismatch = None
        return True

    def _balance(self) -> None:
        now = self._clock()
        with self._lock:
            live = len(self._live(now))
            mine = [s for s, t in self._tenures.items() if t.valid(now)]
            candidates = [
                s
                for s in range(self.shards)
                if s not in self._tenures
                and self._seen.get(s) is not None
                and self._seen[s].takeable(now, self.me, self.settings, self._own.get(s))
            ]
        target = math.ceil(self.shards / max(1, live))
        if len(mine) > target:
            why = f"handing over: {len(mine)} held, target {target}"
            self._hand_over(self._rng.choice(mine), why)
            return
        if self._reads_ok < ROUNDS_BEFORE_TAKING or self._quiesced:
            return
        if others := self._other_counts(now):
            # A replica of another count may still act on a release under its number
            # (the count was changed under running replicas): take nothing until it goes.
            if others != self._waiting_for:
                log.warning(
                    "live replicas run with another --shards; taking no shard until they stop",
                    replicas=others,
                    shards=self.shards,
                )
            self._waiting_for = others
            return
        self._waiting_for = {}
        self._rng.shuffle(candidates)
        for shard in candidates[: max(0, target - len(mine))]:
            self._take(shard)

    def _take(self, shard: int) -> None:
        with self._lock:
            view = self._seen[shard]
        started = self._clock()
        version = _version()
        token = view.token + 1
        with self._lock:
            self._own[shard] = token  # its answer may be lost after the write
        try:
            ok = self._store.take(shard, self.me, token, version, view.version)
        except Exception as exc:
            self._store_failed("take", exc)
            return
        if not ok:
            return  # another replica was quicker: it shows at the next read
        self._listener.acquiring(shard)
        tenure = Tenure(
            shard, token, version, started + self.settings.renew_deadline_seconds, started
        )
        with self._lock:
            self._tenures[shard] = tenure
            self._seen[shard] = Seen(version, self.me, token, started)
        log.info(
            "acquired shard",
            shard=shard,
            fencing_token=token,
            previous_holder=view.holder or None,
            waited_seconds=round(started - view.since, 1),
        )
        self._listener.transition(shard, "acquired")
        self._listener.acquired(tenure)

    def _hand_over(self, shard: int, why: str) -> None:
        """Close the shard to new work, wait for work in flight, then release the lease."""
        with self._lock:
            tenure = self._tenures.pop(shard, None)
            if tenure is None:
                return
            drained = self._lock.wait_for(
                lambda: self._inflight.get(shard, 0) == 0, timeout=self._drain_seconds
            )
        self._listener.lost(shard, why)
        if not drained or not tenure.valid(self._clock()):
            log.warning(
                "stopped acting on shard; not releasing the lease (work still in flight, or "
                "past the renew deadline): it expires instead",
                shard=shard,
                fencing_token=tenure.token,
                why=why,
            )
            self._listener.transition(shard, "lost")
            return
        try:
            released = self._store.release(shard, self.me, tenure.token, _version())
        except Exception as exc:
            self._store_failed("release", exc)
            released = False
        log.info(
            "released shard", shard=shard, fencing_token=tenure.token, why=why, released=released
        )
        self._listener.transition(shard, "released")

    def _drop(self, shard: int, why: str, *, kind: str, level: str) -> None:
        with self._lock:
            tenure = self._tenures.pop(shard, None)
        if tenure is None:
            return
        getattr(log, level)(
            "stopped acting on shard", shard=shard, fencing_token=tenure.token, why=why
        )
        self._listener.lost(shard, why)
        self._listener.transition(shard, kind)

    def _store_failed(self, what: str, exc: Exception) -> None:
        self._store_errors += 1
        if self._store_errors == 1 or self._store_errors % STORE_ERRORS_LOGGED_EVERY == 0:
            log.warning(
                "the coordination table failed; acting only on shards still within their "
                "renew deadline, taking none",
                operation=what,
                failed_rounds=self._store_errors,
                held=self.held(),
                error=str(exc),
            )

    def _other_counts(self, now: float) -> dict[str, int]:
        """Live replicas whose heartbeat says another ``--shards`` than this one's."""
        with self._lock:
            live = self._live(now)
            return {
                member: shards
                for member, (*_, shards) in self._members.items()
                if member in live and member != self.me and shards not in (0, self.shards)
            }

    def _live(self, now: float) -> dict[str, str]:
        """Members whose heartbeat moved within a lease duration (lock held)."""
        live = {self.me: self._url}
        for member, (_beat, since, url, gone, _shards) in self._members.items():
            if not gone and now - since < self.settings.lease_seconds:
                live.setdefault(member, url)
        return live


def _version() -> str:
    return secrets.token_hex(8)


def new_replica_id(hostname: str) -> str:
    """``hostname-xxxxxx``: the host (pod, task) and a per-process suffix, unique per start."""
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in hostname.lower()).strip("-.")
    return f"{safe[:32] or 'ecsop'}-{secrets.token_hex(3)}"
