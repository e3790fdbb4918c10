"""Recognising AWS calls on the wire and answering errors in each protocol.

botocore speaks several protocols to the one endpoint: JSON (ECS, ECR, Logs:
``X-Amz-Target: Prefix.Operation``), query (ELBv2, STS: form field
``Action``) and Smithy RPC v2 CBOR (CloudWatch: ``/service/X/operation/Op``).
The sandbox needs the service and operation of every call to count it and to
inject faults, and must then answer a fault so that botocore parses it exactly
as it would AWS's: a throttling error is HTTP 400 with code
``ThrottlingException`` (JSON) or ``Throttling`` (query, CBOR), which
botocore's retry handlers classify as throttling; 500 and 503 are retried as
transient server errors.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

# Services that moved from the query protocol to JSON/CBOR but keep their
# query-era error codes (botocore model trait ``awsQueryCompatible``): their
# errors carry ``x-amzn-query-error: Code;Sender``, which botocore prefers.
QUERY_COMPATIBLE = frozenset({"monitoring", "sqs"})

_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"^/service/[^/]+/operation/([^/?]+)")


@dataclass(frozen=True)
class Call:
    service: str
    """The SigV4 signing name: ``ecs``, ``elasticloadbalancing``, ``monitoring``, ``sts``..."""
    operation: str
    protocol: str
    """``json``, ``query`` or ``cbor``."""
    caller: str = ""
    """The access key id the call was signed with: which client made it (any key works,
    so benchmarks give each contender its own to tell their calls apart)."""


def identify(headers: dict[str, str], path: str, body: bytes) -> Call:
    scope = _SCOPE.search(headers.get("authorization", ""))
    caller, service = (scope.group(1), scope.group(2)) if scope else ("", "unknown")
    target = headers.get("x-amz-target")
    if target:
        return Call(service, target.rsplit(".", 1)[-1], "json", caller)
    cbor = _CBOR_PATH.match(path)
    if cbor or headers.get("smithy-protocol") == "rpc-v2-cbor":
        return Call(service, cbor.group(1) if cbor else "unknown", "cbor", caller)
    if body and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["unknown"])[0]
        return Call(service, action, "query", caller)
    return Call(service, "unknown", "rest", caller)


@dataclass(frozen=True)
class ErrorResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error(call: Call, status: int, code: str, message: str) -> ErrorResponse:
    request_id = str(uuid.uuid4())
    if call.protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
        if call.service in QUERY_COMPATIBLE:
            headers.append(
                ("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}")
            )
        return ErrorResponse(status, headers, body)
    if call.protocol == "cbor":
        return ErrorResponse(
            status,
            [
                ("Content-Type", "application/cbor"),
                ("smithy-protocol", "rpc-v2-cbor"),
                ("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}"),
                ("x-amzn-RequestId", request_id),
            ],
            _cbor_map({"__type": code, "message": message}),
        )
    kind = "Sender" if status < 500 else "Receiver"
    xml = (
        "<ErrorResponse><Error>"
        f"<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return ErrorResponse(
        status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()
    )


def throttling(call: Call) -> ErrorResponse:
    json_native = call.protocol in ("json", "rest") and call.service not in QUERY_COMPATIBLE
    code = "ThrottlingException" if json_native else "Throttling"
    return error(call, 400, code, "Rate exceeded")


def server_error(call: Call, status: int) -> ErrorResponse:
    if status == 503:
        return error(call, 503, "ServiceUnavailable", "Service is unavailable. Try again later.")
    code = "ServerException" if call.protocol == "json" else "InternalFailure"
    return error(call, 500, code, "Internal server error (injected by the ecsop sandbox).")


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    n = len(raw)
    if n < 24:
        head = bytes([0x60 + n])
    elif n < 256:
        head = bytes([0x78, n])
    else:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    return head + raw


def _cbor_map(values: dict[str, str]) -> bytes:
    """A CBOR map of short text strings (RFC 8949 major types 3 and 5)."""
    out = bytes([0xA0 + len(values)])
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out
