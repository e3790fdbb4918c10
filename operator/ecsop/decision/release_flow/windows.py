"""Deploy windows: new releases deploy only when the windows say so.

Argo CD's sync-window rules (https://argo-cd.readthedocs.io/en/release-3.3/user-guide/sync_windows/):
no window, deploy any time; some allow window, deploy only while one is
open; an open deny window wins over any allow window. A window opens at
each time its cron ``schedule`` fires in its ``timeZone`` (croniter reads
the cron; ecsop never parses it) and stays open ``durationMinutes``. Time is
AWS's (the decision's ``now``, from the response Date header), never the
host's. The windows of a release are its own (``spec.deployWindows``) and
those of every ReleasePolicy whose selector matches its labels. Rollbacks
and returns to the proven last-good release never come here.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from ecsop.decision.actions import Wait
from ecsop.decision.reasons import Phase, Reason
from ecsop.spec.release_flow import DeployWindow

HORIZON = timedelta(days=400)
"""How far ahead the next opening is looked for (a yearly window fits)."""
_MAX_STEPS = 2000
_MAX_READS = 2400
"""Window reads (croniter, about 0.2 ms each) spent looking for the next opening: a step
reads each window up to three times."""


@dataclass(frozen=True)
class WindowState:
    allowed: bool
    why: str
    """Why not ("" when allowed)."""
    opens: datetime | None = None
    """When deploys are next allowed (None: allowed now, or not within ``HORIZON``)."""


def check(windows: Sequence[DeployWindow], problems: Sequence[str], now: datetime) -> Wait | None:
    """Hold while the windows deny a deploy at ``now``."""
    if problems:
        return Wait(
            Phase.INVALID,
            Reason.INVALID_POLICY,
            f"not deploying: the policy file is invalid, so the deploy windows are not known: "
            f"{problems[0]}",
            None,
        )
    state = evaluate(windows, now)
    if state.allowed:
        return None
    requeue: float | None = None
    if state.opens is not None:
        wait = _duration(state.opens - now)
        opens = state.opens.astimezone(UTC)
        when = f"the next window opens at {opens:%Y-%m-%dT%H:%MZ} (in {wait})"
        # Looked at again when it opens, not at some resync after (every 300 s with an
        # event queue, longer when stretched): a window shorter than that could pass unseen.
        requeue = max(1.0, (state.opens - now).total_seconds())
    else:
        when = "no window opens in the time ecsop looks ahead"
    return Wait(
        Phase.PROGRESSING,
        Reason.OUTSIDE_DEPLOY_WINDOW,
        f"outside the deploy windows: {state.why}; {when}",
        requeue,
    )


def evaluate(windows: Sequence[DeployWindow], now: datetime) -> WindowState:
    """Whether a deploy may start at ``now``, why not, and when it may."""
    why = _denied(windows, now)
    if not why:
        return WindowState(True, "")
    t = now
    allows = [w for w in windows if w.kind == "allow"]
    # Each step reads every window (croniter): bounded, so that a hostile spec (sixty
    # one-minute deny windows, one every minute) cannot hold a worker for seconds while
    # other releases wait for their rollbacks. Past the bound, "no window opens in the
    # time ecsop looks ahead": the deploy stays held, and the resync looks again.
    for _ in range(min(_MAX_STEPS, _MAX_READS // (3 * len(windows)))):
        ends = [end for w in windows if w.kind == "deny" and (end := open_until(w, t)) is not None]
        if ends:
            # Every deny open now stays open to its own end: nothing is allowed before
            # the last of them closes, whatever opens meanwhile (a deny wins).
            t = max(ends)
        elif allows and not any(open_until(w, t) for w in allows):
            t = min(next_start(w, t) for w in allows)
        else:
            break
        if t - now > HORIZON:
            break
        if not _denied(windows, t):
            return WindowState(False, why, t)
    return WindowState(False, why, None)


def open_until(window: DeployWindow, t: datetime) -> datetime | None:
    """When the occurrence of ``window`` open at ``t`` closes; None when it is closed.

    The cron is read in the window's zone, but the occurrence is then an instant
    and lasts ``durationMinutes`` of elapsed time (Argo CD adds a Go duration to
    the cron's next time): compared in UTC, never as wall clocks. Two local
    times of one zone compare by their wall clocks alone, so in the hour a
    fall-back repeats, a window that closed at the first 02:30 read as open
    again "until" that past instant, and the next opening was found in the past.
    """
    zone = zoneinfo.ZoneInfo(window.time_zone)
    instant = t.astimezone(UTC)
    # The second is added in UTC: added to a local time it drops the fold, and the
    # repeated hour's 02:10 would become the first one's.
    runs = croniter(window.schedule, (instant + timedelta(seconds=1)).astimezone(zone))
    start: datetime = runs.get_prev(datetime)
    while start.astimezone(UTC) > instant:
        start = runs.get_prev(datetime)
    end = start.astimezone(UTC) + timedelta(minutes=window.duration_minutes)
    return end if instant < end else None


def next_start(window: DeployWindow, t: datetime) -> datetime:
    """The first time after ``t`` that ``window`` opens."""
    zone = zoneinfo.ZoneInfo(window.time_zone)
    start: datetime = croniter(window.schedule, t.astimezone(zone)).get_next(datetime)
    return start.astimezone(UTC)


def _denied(windows: Sequence[DeployWindow], t: datetime) -> str:
    for window in windows:
        if window.kind == "deny":
            end = open_until(window, t)
            if end is not None:
                return f"{window.describe()} is open until {end:%Y-%m-%dT%H:%MZ}"
    allows = [w for w in windows if w.kind == "allow"]
    if allows and not any(open_until(w, t) for w in allows):
        return "no allow window is open (" + ", ".join(w.describe() for w in allows) + ")"
    return ""


def _duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{mins}m")
    return " ".join(parts)
