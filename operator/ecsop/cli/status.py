"""``ecsop status``: a running daemon's ``/status`` as a table that fits 80 columns.

With several replicas any one answers: its ``/status`` lists every release with
the replica that owns it, and the details of the others' releases are read from
their owners' ``/status`` (one request per owner).
"""

from __future__ import annotations

import json
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def main(url: str, *, as_json: bool) -> int:
    try:
        body = _read(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"ecsop status: cannot read {url}/status: {exc}", file=sys.stderr)
        return 1
    if "coordination" in body:
        body["releases"] = from_owners(body, _read)
    if as_json:
        print(json.dumps(body, indent=2))
        return 0
    if "coordination" in body:
        print(_replicas_line(body))
    print(render(body.get("releases", []), datetime.now(UTC)))
    return 0


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
