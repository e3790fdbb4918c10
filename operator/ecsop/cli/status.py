"""``ecsop status [NAME]``: a running daemon's ``/status`` as a table that fits 80 columns.

With a release name, that release only, followed by its analyses (``rollout.analysis``)
and their latest measurements. With several replicas any one answers: its
``/status`` lists every release with the replica that owns it, and the details of
the others' releases are read from their owners' ``/status`` (one request per owner).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ecsop.cli import options


def add(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="show every release's phase and why, from a running daemon",
        description="Read /status from a running daemon and print one line per release; "
        "with NAME, that release and the latest measurements of its analyses.",
    )
    status.add_argument("name", nargs="?", metavar="NAME", help="one release, in detail")
    options.add(
        status,
        "--url",
        env="ECSOP_URL",
        default=options.DEFAULT_URL,
        metavar="URL",
        help="the daemon's endpoint",
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON, for scripts")
    status.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return main(args.url, as_json=args.json, name=args.name)


def main(url: str, *, as_json: bool, name: str | None = None) -> int:
    try:
        body = _read(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"ecsop status: cannot read {url}/status: {exc}", file=sys.stderr)
        return 1
    if "coordination" in body:
        body["releases"] = from_owners(body, _read)
    releases = body.get("releases", [])
    if name is not None:
        releases = [item for item in releases if item.get("name") == name]
        if not releases:
            known = ", ".join(str(r.get("name")) for r in body.get("releases", [])) or "none"
            print(f"ecsop status: no release named {name!r} (releases: {known})", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps({**body, "releases": releases} if name else body, indent=2))
        return 0
    if "coordination" in body:
        print(_replicas_line(body))
    events = events_line(body.get("events"))
    if events:
        print(events)
    print(render(releases, datetime.now(UTC)))
    stretched = render_resync(body.get("resync") or {})
    if stretched:
        print(stretched)
    if name is not None:
        for line in render_analysis(releases[0].get("analysis") or []):
            print(line)
    return 0


def render_resync(resync: dict[str, Any]) -> str:
    """One line when the daemon observes every release less often than asked; else ""."""
    if not resync.get("stretched"):
        return ""
    rate = resync.get("describeServicesPerSecond")
    why = (
        f"{resync.get('describeServicesCalls')} DescribeServices per resync at {rate}/s "
        "(--api-budget)"
        if rate
        else f"the last resync took {resync.get('lastResyncSeconds')}s"
    )
    return (
        f"resync every {resync.get('effectiveSeconds')}s, not {resync.get('configuredSeconds')}s: "
        f"{why}"
    )


def render_analysis(analyses: list[dict[str, Any]]) -> list[str]:
    """Each analysis of the last rollout judged: where it stands, then its measurements."""
    lines = []
    for analysis in analyses:
        reason = " ".join(str(analysis.get("reason") or "").split())
        head = f"analysis {analysis.get('name')}: {analysis.get('state')}"
        lines.extend(textwrap.wrap(f"{head}{': ' + reason if reason else ''}", 80, max_lines=3))
        for measurement in analysis.get("measurements") or []:
            at = str(measurement.get("at") or "")
            when = at[11:19] if len(at) >= 19 else at
            detail = " ".join(str(measurement.get("detail") or "").split())
            lines.append(f"  {when:<8}  {measurement.get('verdict', ''):<12}  {_cut(detail, 54)}")
    return lines


def events_line(events: dict[str, Any] | None) -> str:
    """One line on the event feed (``--events-queue``); "" without one."""
    if not events:
        return ""
    poll = f"{events.get('activePollSeconds', 0):g}s"
    if events.get("flowing"):
        return f"events: flowing; rollouts polled every {poll}"
    reasons = ", ".join(events.get("reasons") or ())
    detail = " ".join(str(events.get("detail", "")).split())
    return textwrap.shorten(
        f"events: NOT flowing ({reasons}), rollouts polled every {poll}: {detail}", 200
    )


def _read(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url.rstrip('/')}/status", timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def from_owners(
    body: dict[str, Any], read: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every release, with the details its owner reports for those another replica owns."""
    releases: list[dict[str, Any]] = body.get("releases", [])
    me = body.get("replica", "")
    owners = {
        r["owner"]: r.get("ownerUrl", "") for r in releases if r.get("owner") not in ("", me)
    }
    details: dict[str, dict[str, Any]] = {}
    for owner, owner_url in owners.items():
        try:
            theirs = read(owner_url).get("releases", []) if owner_url else []
        except (urllib.error.URLError, OSError, ValueError) as exc:
            theirs = []
            for item in releases:
                if item.get("owner") == owner:
                    item["message"] = f"owned by {owner} at {owner_url}: unreachable ({exc})"
        details.update({r["name"]: r for r in theirs if r.get("owner") == owner})
    return [details.get(r["name"], r) if r.get("owner") not in ("", me) else r for r in releases]


def _replicas_line(body: dict[str, Any]) -> str:
    coordination = body["coordination"]
    counts: dict[str, int] = {}
    for owner in coordination.get("owners", []):
        holder = owner.get("holder") or "(nobody)"
        counts[holder] = counts.get(holder, 0) + 1
    spread = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{coordination.get('shards')} shards held by: {spread} (answered by {body['replica']})"


def render(releases: list[dict[str, Any]], now: datetime) -> str:
    """One block per release: a fixed-width summary line, then the message wrapped below."""
    header = f"{'RELEASE':<24} {'SERVICE':<20} {'PHASE':<11} {'RUNNING':<8} {'DESIRED':<8} AGE"
    lines = [header]
    for item in releases:
        target = f"{item.get('cluster', '')}/{item.get('service', '')}"
        running = _short(item.get("runningImages", {}))
        desired = _short(item.get("desiredImages", {}))
        lines.append(
            f"{_cut(item['name'], 24):<24} {_cut(target, 20):<20} {item['phase']:<11} "
            f"{running:<8} {desired:<8} {_age(item.get('lastChange'), now)}"
        )
        # Messages may hold newlines (YAML errors): flow them into at most 4 lines of 76.
        message = " ".join(str(item.get("message", "")).split())
        lines.extend(f"    {part}" for part in textwrap.wrap(message, 76, max_lines=4))
        rollout = item.get("lastRollout") or {}
        if rollout.get("outcome") and rollout.get("outcome") != "succeeded":
            note = f"[last rollout {rollout['outcome']}: {rollout.get('reason', '')}]"
            lines.append(f"    {_cut(note, 76)}")
            stop_reason = " ".join(str(rollout.get("stopReason") or "").split())
            if stop_reason:
                lines.append(f"    {_cut('first stopped task: ' + stop_reason, 76)}")
    return "\n".join(lines)


def _short(images: dict[str, str]) -> str:
    """The first container's digest, 7 hex characters, as git shows commits."""
    for image in images.values():
        if "@sha256:" in image:
            return image.split("@sha256:", 1)[1][:7]
        return image.rsplit(":", 1)[-1][:7]
    return "-"


def _age(when: str | None, now: datetime) -> str:
    if not when:
        return "-"
    seconds = int((now - datetime.fromisoformat(when)).total_seconds())
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
