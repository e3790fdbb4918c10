"""Any replica answers: ``ecsop status`` merges the owners' details, requeues are forwarded,
and the ``run`` flags of several replicas are checked before anything starts."""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ecsop.cli import app, options
from ecsop.cli import coordination as coordination_cli
from ecsop.cli.status import from_owners
from ecsop.controller.replica import parse_coordination


def test_status_takes_each_release_from_its_owner() -> None:
    answered = {
        "replica": "a",
        "coordination": {"shards": 2},
        "releases": [
            {"name": "cart", "phase": "Synced", "owner": "a", "ownerUrl": "http://a"},
            {"name": "shop", "phase": "Unknown", "owner": "b", "ownerUrl": "http://b"},
            {"name": "pay", "phase": "Unknown", "owner": "", "ownerUrl": ""},
        ],
    }
    asked: list[str] = []

    def read(url: str) -> dict[str, Any]:
        asked.append(url)
        return {"releases": [{"name": "shop", "phase": "RollingBack", "owner": "b"}]}

    merged = {r["name"]: r["phase"] for r in from_owners(answered, read)}
    assert merged == {"cart": "Synced", "shop": "RollingBack", "pay": "Unknown"}
    assert asked == ["http://b"], "one request per other owner"


def test_status_says_which_owner_did_not_answer() -> None:
    answered = {
        "replica": "a",
        "releases": [{"name": "shop", "phase": "Unknown", "owner": "b", "ownerUrl": "http://b"}],
    }

    def read(url: str) -> dict[str, Any]:
        raise OSError("connection refused")

    (shop,) = from_owners(answered, read)
    assert "owned by b at http://b: unreachable" in shop["message"]


@pytest.mark.parametrize(
    ("value", "table"),
    [
        pytest.param("dynamodb:ecsop", "ecsop", id="table"),
        pytest.param("dynamodb: spaced ", "spaced", id="trimmed"),
        pytest.param("redis:x", None, id="other-scheme"),
        pytest.param("dynamodb:", None, id="no-table"),
    ],
)
def test_coordination_flag(value: str, table: str | None) -> None:
    if table is None:
        with pytest.raises(ValueError, match="dynamodb:TABLE"):
            parse_coordination(value)
    else:
        assert parse_coordination(value) == table


def _run_args(*argv: str) -> argparse.Namespace:
    args = app.build_parser().parse_args(["run", "--specs", "s", *argv])
    options.resolve(args)  # flags left unset take their environment variable or default
    return args


def test_run_flags_make_coordination_settings() -> None:
    args = _run_args(
        "--coordination", "dynamodb:t", "--shards", "8", "--lease-duration", "6",
        "--renew-deadline", "4", "--retry-period", "1", "--replica-id", "pod-1",
    )  # fmt: skip
    settings = coordination_cli.settings(args, "127.0.0.1", 9100)
    assert settings is not None
    assert (settings.table, settings.shards, settings.replica_id) == ("t", 8, "pod-1")
    assert settings.url == "http://127.0.0.1:9100"
    assert settings.lease.lease_seconds == 6 and settings.lease.margin_seconds == 2
    assert coordination_cli.settings(_run_args(), "0.0.0.0", 9100) is None


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--shards", "4"], id="shards-without-coordination"),
        pytest.param(["--coordination", "dynamodb:t", "--renew-deadline", "20"], id="deadline"),
        pytest.param(["--coordination", "dynamodb:t", "--replica-id", "a@b"], id="replica-id"),
        pytest.param(["--coordination", "dynamodb:t", "--shards", "0"], id="no-shard"),
        pytest.param(["--coordination", "dynamodb:t", "--shards", "10001"], id="too-many-shards"),
    ],
)
def test_run_flags_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        coordination_cli.settings(_run_args(*argv), "0.0.0.0", 9100)


def test_requeue_forwarding_reaches_the_owner_once() -> None:
    """The owner's endpoint receives ``?forwarded=1`` and answers; a forwarded request
    reaching a non-owner is answered with the owner, never forwarded again."""
    received: list[str] = []

    class Owner(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.path)
            body = b"queued\n"
            self.send_response(202)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Owner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        replica = _replica_owned_elsewhere(url)
        code, text = replica.route("shop", "") or (0, "")
        assert (code, received) == (202, ["/requeue/shop?forwarded=1"])
        assert text.startswith(f"forwarded to replica b ({url}): queued")
        code, text = replica.route("shop", "forwarded=1") or (0, "")
        assert code == 409 and "owned by replica b" in text and len(received) == 1
    finally:
        server.shutdown()
        server.server_close()


def _replica_owned_elsewhere(url: str) -> Any:
    """A ``Replica`` whose controller knows ``shop`` and whose leases say ``b`` owns it."""
    from ecsop.controller.replica import Replica
    from ecsop.runtime.shards import Owner

    class Ownership:
        def holds(self, name: str) -> bool:
            return False

        def shard_of(self, name: str) -> int:
            return 0

        def owner(self, name: str) -> Owner:
            return Owner(0, "b", 3, url, 0.0)

    class Specs:
        def entry(self, name: str) -> object | None:
            return object() if name == "shop" else None

    class Controller:
        specs = Specs()

    replica = Replica.__new__(Replica)
    replica.ownership = Ownership()  # type: ignore[assignment]
    replica._controller = Controller()  # type: ignore[assignment]
    return replica


def test_unknown_release_is_left_to_the_local_404() -> None:
    replica = _replica_owned_elsewhere("http://b")
    assert replica.route("nope", "") is None
