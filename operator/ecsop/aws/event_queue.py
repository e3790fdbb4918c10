"""The SQS gateway: the queue EventBridge delivers ECS's events to, read by the daemon.

Three calls, and exactly the three actions the daemon policy grants on the
queue (``helm-free-deploy/iam``): ``ReceiveMessage`` (long polling, up to ten
messages a call), ``DeleteMessageBatch`` (authorised by ``sqs:DeleteMessage``:
"setting permissions for ... DeleteMessage ... sets permissions for the
corresponding batch versions of the actions", "Amazon SQS batch actions",
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api-actions.html)
and ``GetQueueAttributes`` (the queue exists, is readable, and how long a
received message stays invisible).

Long polling: "the ReceiveMessage call waits until at least one message is
available or the WaitTimeSeconds elapses" (at most 20 s), so an idle queue
costs three calls a minute and a message is handed over as soon as it lands
("Amazon SQS short and long polling",
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html).

Called by ``ecsop.controller.event_feed``; the messages' bodies are read by
``ecsop.aws.ecs_events``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecsop.aws import clients as aws
from ecsop.aws import ecs_mapping

MAX_MESSAGES = 10
"""SQS's most messages per ReceiveMessage and per DeleteMessageBatch."""
MAX_WAIT_SECONDS = 20
"""SQS's longest long poll (``WaitTimeSeconds``)."""

_REGION_IN_URL = re.compile(
    r"^https?://(?:sqs\.(?P<new>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"|(?P<old>[a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?)/"
)


@dataclass(frozen=True)
class QueueMessage:
    id: str
    receipt: str
    """The receipt handle: what deletes this delivery of the message."""
    body: str


@dataclass(frozen=True)
class Received:
    messages: tuple[QueueMessage, ...]
    at: datetime | None
    """The answer's ``Date``: AWS's time when the messages were handed over."""


@dataclass(frozen=True)
class QueueInfo:
    arn: str
    visibility_timeout: int
    """Seconds a received message stays invisible before SQS delivers it again."""
    waiting: int
    """``ApproximateNumberOfMessages`` when asked."""
    dead_letter_queue: str
    """The dead-letter queue's ARN from the redrive policy ("" without one)."""


def queue_region(url: str) -> str | None:
    """The region in an SQS queue URL (``https://sqs.eu-west-1.amazonaws.com/...``), if any."""
    found = _REGION_IN_URL.match(url)
    if found is None:
        return None
    return found["new"] or found["old"]


class EventQueue:
    """One SQS queue. ``receive_client`` makes one attempt per call (the poller backs
    off itself and must notice an unreachable queue quickly); ``client`` retries."""

    def __init__(self, client: Any, url: str, receive_client: Any = None) -> None:
        self._client = client
        self._receive_client = receive_client or client
        self.url = url

    def describe(self) -> QueueInfo:
        with aws.translated_errors("GetQueueAttributes"):
            attributes = self._client.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=[
                    "QueueArn",
                    "VisibilityTimeout",
                    "ApproximateNumberOfMessages",
                    "RedrivePolicy",
                ],
            ).get("Attributes", {})
        return QueueInfo(
            arn=str(attributes.get("QueueArn", "")),
            visibility_timeout=int(attributes.get("VisibilityTimeout") or 30),
            waiting=int(attributes.get("ApproximateNumberOfMessages") or 0),
            dead_letter_queue=_dead_letter_arn(attributes.get("RedrivePolicy")),
        )

    def receive(self, wait_seconds: int = MAX_WAIT_SECONDS) -> Received:
        """Up to ten messages, waiting up to ``wait_seconds`` for the first."""
        with aws.translated_errors("ReceiveMessage"):
            response = self._receive_client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=MAX_MESSAGES,
                WaitTimeSeconds=max(0, min(MAX_WAIT_SECONDS, int(wait_seconds))),
            )
        messages = tuple(
            QueueMessage(str(m["MessageId"]), str(m["ReceiptHandle"]), str(m.get("Body", "")))
            for m in response.get("Messages") or ()
        )
        return Received(messages, ecs_mapping.response_date(response))

    def delete(self, receipts: Sequence[str]) -> list[str]:
        """Delete these deliveries, ten per call; return the receipts SQS refused.

        A refused receipt is a message delivered again since (its visibility timeout
        ran out): the newer delivery will be deleted in its turn.
        """
        refused: list[str] = []
        unique = list(dict.fromkeys(receipts))
        for start in range(0, len(unique), MAX_MESSAGES):
            batch = unique[start : start + MAX_MESSAGES]
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(batch)]
            with aws.translated_errors("DeleteMessageBatch"):
                answer = self._client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            refused.extend(batch[int(f["Id"])] for f in answer.get("Failed") or ())
        return refused


def _dead_letter_arn(policy: Any) -> str:
    if not policy:
        return ""
    try:
        value = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        return ""
    return str(value.get("deadLetterTargetArn", "")) if isinstance(value, dict) else ""


def open_queue(client_for: Any, url: str, default_region: str) -> EventQueue:
    """The queue at ``url``, with clients of ``client_for(service, region, retries=...)``
    (``ClientFactory.client``) in the region the URL names, else ``default_region``."""
    region = queue_region(url) or default_region
    return EventQueue(
        client_for("sqs", region),
        url,
        receive_client=client_for("sqs", region, retries=False),
    )
