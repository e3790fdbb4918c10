"""One PromQL instant query over Prometheus's HTTP API, read as one number.

``ecsop.probes.analysis`` calls ``instant_query`` from its own thread pool. The
request is ``POST /api/v1/query`` with the query and a ``timeout`` in the form
body ("Instant queries", https://prometheus.io/docs/prometheus/latest/querying/api/),
time-boxed on the client as well. The answer must be one number: a scalar, or
a vector of at most one series (none is "no data"); anything else is an error
that says how to fix the query. Redirects are not followed (credentials must
not travel to another host), answers are read up to ``MAX_ANSWER`` bytes, and
no message ever holds credentials: the address is shown ``redacted`` and
header values are blanked out of any error text.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from ecsop import __version__
from ecsop.spec.quoting import REDACTED, clip, redacted

USER_AGENT = f"ecsop/{__version__} (analysis)"
MAX_ANSWER = 1 << 20
"""Bytes of an answer read at most: one number never needs more."""


class QueryError(Exception):
    """The query could not be run or its answer is not one number; the text says why."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def opener() -> urllib.request.OpenerDirector:
    """An opener that never follows a redirect."""
    return urllib.request.build_opener(_NoRedirect)


def without_userinfo(address: str) -> tuple[str, str | None]:
    """(``address`` without ``user:password@``, the ``Basic`` credentials it carried)."""
    parts = urllib.parse.urlsplit(address)
    if "@" not in parts.netloc:
        return address, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    credentials = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), credentials


def instant_query(
    address: str,
    query: str,
    timeout: float,
    *,
    headers: Mapping[str, str] | None = None,
    open_url: urllib.request.OpenerDirector | None = None,
) -> float | None:
    """The value of ``query`` now; None when it has no data. Raises ``QueryError``."""
    base, basic = without_userinfo(address)
    sent = {"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        sent["Authorization"] = basic
    sent.update(headers or {})
    body = urllib.parse.urlencode({"query": query, "timeout": duration(timeout)}).encode()
    request = urllib.request.Request(
        f"{base.rstrip('/')}/api/v1/query", data=body, headers=sent, method="POST"
    )
    shown = redacted(address)
    secrets = [*sent.values(), *_userinfo(address)]
    try:
        answer, status = _post(request, timeout, open_url or opener())
        return _value(answer, status)
    except QueryError as exc:
        raise QueryError(_scrubbed(f"Prometheus {shown}: {exc}", secrets, address, shown)) from None


def duration(seconds: float) -> str:
    """``seconds`` as Prometheus reads a duration: whole units only (``2s``, ``2500ms``;
    ``2.5s`` is refused with ``bad_data``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def _post(
    request: urllib.request.Request, timeout: float, open_url: urllib.request.OpenerDirector
) -> tuple[bytes, int]:
    try:
        with open_url.open(request, timeout=timeout) as response:
            return response.read(MAX_ANSWER + 1), int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            if 300 <= exc.code < 400:
                raise QueryError(f"answered HTTP {exc.code} (redirects are not followed)") from None
            return exc.read(MAX_ANSWER + 1), exc.code
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise QueryError(f"unreachable ({type(cause).__name__}: {cause})") from None


def _value(answer: bytes, status: int) -> float | None:
    if len(answer) > MAX_ANSWER:
        raise QueryError(f"the answer is over {MAX_ANSWER} bytes")
    try:
        body = json.loads(answer)
    except ValueError:
        text = clip(" ".join(answer.decode("utf-8", "replace").split()))
        raise QueryError(f"answered HTTP {status}, not JSON: {text}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body if isinstance(body, dict) else {}
        kind, why = error.get("errorType", f"HTTP {status}"), error.get("error", "no reason given")
        raise QueryError(f"{kind}: {clip(str(why), 300)}")
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    kind = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "scalar":
            return _number(result[1])
        if kind == "vector" and isinstance(result, list):
            if not result:
                return None
            if len(result) > 1:
                raise QueryError(
                    f"the query returned {len(result)} series, not one number: aggregate them, "
                    "e.g. sum(...) or max(...)"
                )
            return _number(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise QueryError(f"an answer ecsop cannot read ({type(exc).__name__}: {exc})") from None
    raise QueryError(
        f"the query returned a {kind}, not one number: write an instant query "
        "(no [range] at the end), e.g. sum(rate(...[5m]))"
    )


def _number(text: Any) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value


def _userinfo(address: str) -> list[str]:
    """The credentials an address carries, as text might quote them."""
    netloc = urllib.parse.urlsplit(address).netloc
    if "@" not in netloc:
        return []
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return [userinfo, urllib.parse.unquote(userinfo), password, urllib.parse.unquote(password)]


def _scrubbed(text: str, secrets: list[str], address: str, shown: str) -> str:
    """``text`` without any credential or the raw address (an answer or error may quote them)."""
    text = text.replace(address, shown) if address != shown else text
    for value in sorted(set(secrets), key=len, reverse=True):
        if len(value) >= 4 and value not in (USER_AGENT, "application/x-www-form-urlencoded"):
            text = text.replace(value, REDACTED)
    return text
