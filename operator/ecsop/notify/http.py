"""One HTTP attempt of a delivery: sent with a timeout, counted, and classified.

Providers build requests and send them through ``HttpClient.send``, which
makes exactly one attempt and either returns a 2xx response or raises
``DeliveryError`` saying whether a retry may help (429, 408, 5xx, a timeout,
a refused connection) and how long the receiver asked to wait
(``Retry-After``, in seconds or as an HTTP date). Retrying is the delivery
queue's job (``ecsop.notify.delivery``), never a provider's: a worker never
sleeps through a backoff.

Redirects are not followed (a webhook URL that moved is a configuration
error to fix, and a POST must not silently become a GET), and nothing here
logs a URL: Slack's carries its credential; a URL or header ``http.client``
refuses (it quotes them) is an error that names neither.
"""

from __future__ import annotations

import email.utils
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ecsop import __version__

USER_AGENT = f"ecsop/{__version__}"
MAX_RESPONSE_BYTES = 64 * 1024
"""Response bodies are read up to this size: receivers' answers are for error messages."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names lower-cased."""
    body: bytes = b""


class DeliveryError(Exception):
    """One attempt failed: ``code`` is the HTTP status or the exception's name."""

    def __init__(
        self, code: str, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


Transport = Callable[[HttpRequest, float], HttpResponse]
"""Sends one request with a timeout (seconds); raises ``OSError`` and friends on failure."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def urllib_transport(request: HttpRequest, timeout: float) -> HttpResponse:
    """The standard library's HTTP client: the timeout bounds the connect and every read."""
    prepared = urllib.request.Request(
        request.url,
        data=request.body or None,
        method=request.method,
        headers={"User-Agent": USER_AGENT, **request.headers},
    )
    try:
        with _OPENER.open(prepared, timeout=timeout) as answer:
            body = answer.read(MAX_RESPONSE_BYTES)
            return HttpResponse(int(answer.status), _lower(answer.headers.items()), body)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_RESPONSE_BYTES)
        except OSError:
            body = b""
        finally:
            exc.close()
        return HttpResponse(exc.code, _lower(exc.headers.items() if exc.headers else ()), body)


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""Besides every 5xx: the receiver asks to try again later."""


class HttpClient:
    """One provider's way out: every attempt goes through ``send``."""

    def __init__(
        self,
        provider: str,
        transport: Transport,
        timeout: float,
        on_attempt: Callable[[str, str], None],
        wall_clock: Callable[[], float],
    ) -> None:
        self.provider = provider
        self._transport = transport
        self._timeout = timeout
        self._on_attempt = on_attempt
        self._wall_clock = wall_clock

    def send(
        self,
        request: HttpRequest,
        rate_limited: Callable[[HttpResponse], float | None] | None = None,
    ) -> HttpResponse:
        """One attempt; a 2xx answer, else ``DeliveryError``.

        ``rate_limited`` lets a provider recognise its own throttling answers
        (GitHub's 403 with ``x-ratelimit-remaining: 0``) and say how long to wait.
        """
        try:
            response = self._transport(request, self._timeout)
        except TimeoutError as exc:
            self._on_attempt(self.provider, "Timeout")
            raise DeliveryError(
                "Timeout", f"no answer within {self._timeout:g}s", retryable=True
            ) from exc
        except (ValueError, http.client.InvalidURL):
            # http.client quotes the refused header value or URL path: a token, a
            # Slack webhook's credential. Say what, never the value; the same
            # request is refused again, so it is not retried.
            self._on_attempt(self.provider, "InvalidRequest")
            raise DeliveryError(
                "InvalidRequest",
                "the URL or a header has characters HTTP does not allow (a secret with a "
                "space or newline?)",
                retryable=False,
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            code = "Timeout" if isinstance(reason, TimeoutError) else type(reason).__name__
            self._on_attempt(self.provider, code)
            raise DeliveryError(code, str(reason), retryable=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._on_attempt(self.provider, type(exc).__name__)
            raise DeliveryError(type(exc).__name__, str(exc), retryable=True) from exc
        self._on_attempt(self.provider, str(response.status))
        if 200 <= response.status < 300:
            return response
        wait = retry_after(response.headers.get("retry-after"), self._wall_clock())
        hint = rate_limited(response) if rate_limited is not None else None
        excerpt = response.body[:200].decode("utf-8", errors="replace").strip()
        message = f"HTTP {response.status}" + (f": {excerpt}" if excerpt else "")
        if hint is not None:
            raise DeliveryError(str(response.status), message, retryable=True, retry_after=hint)
        retryable = response.status in RETRYABLE_STATUSES or response.status >= 500
        raise DeliveryError(str(response.status), message, retryable=retryable, retry_after=wait)


def retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
