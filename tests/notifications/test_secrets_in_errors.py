"""A secret with a stray character never reaches a log line through an HTTP error.

The classic mistake: a Kubernetes secret made from a file, its value ending in a
newline, handed to the daemon as ``GITHUB_TOKEN``. ``http.client`` refuses the
header with ``ValueError("Invalid header value b'Bearer ghp_...\\n'")`` and a URL
with a space or control character with ``InvalidURL`` quoting its path (a Slack
webhook's path is its credential). Before, the first escaped ``HttpClient.send``
and was logged with its traceback by the worker ("notification provider
failed"), the second was logged as the drop's error, every event.
"""

from __future__ import annotations

import pytest

from ecsop.notify.config import GitHubProvider
from ecsop.notify.http import DeliveryError, HttpClient, HttpRequest, urllib_transport
from receivers import Receiver

SECRET = "ghp_s3cr3tT0ken"


def client() -> HttpClient:
    return HttpClient("github", urllib_transport, 5.0, lambda provider, code: None, lambda: 0.0)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/hook", {"Authorization": f"Bearer {SECRET}\n"}, id="header-newline"),
        pytest.param(f"/services/T0/B0/{SECRET} x", {}, id="url-space"),
        pytest.param(f"/services/T0/B0/{SECRET}\x7f", {}, id="url-control-character"),
    ],
)
def test_a_request_http_refuses_is_a_delivery_error_that_names_no_secret(
    receiver: Receiver, path: str, headers: dict[str, str]
) -> None:
    with pytest.raises(DeliveryError) as refused:
        client().send(HttpRequest("POST", f"{receiver.url}{path}", headers, b"{}"))
    assert not refused.value.retryable, "the same request is refused again"
    assert SECRET not in refused.value.message and SECRET not in str(refused.value)
    assert "characters" in refused.value.message


def test_a_secret_from_the_environment_loses_its_trailing_newline() -> None:
    provider = GitHubProvider.model_validate(
        {"name": "gh", "type": "github", "token": {"env": "TOKEN"}},
        context={"environ": {"TOKEN": f"{SECRET}\n"}},
    )
    assert provider.token.get_secret_value() == SECRET, "as a {file: ...} secret is read"
