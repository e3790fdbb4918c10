"""Telling people: notification events, their routing and their delivery.

``events`` is what happened (a value built by ``ecsop.controller.notifications``
from each decision), ``config`` the ``--notifications`` file with ``secrets``
(``{env: ...}`` / ``{file: ...}``), ``routing`` which providers hear which
event, ``delivery`` the bounded queue and its worker threads (retries,
backoff, ``Retry-After``, timeouts, drop-and-count), ``webhook`` (with the
versioned ``payload``), ``slack`` and ``github`` the providers, ``links`` the
commit and console links, ``http`` the one place that sends a request,
``metrics`` its Prometheus series, ``assembly`` the wiring.

May import: ``ecsop.decision`` (for the words: phases, reasons, failures) and
``ecsop.spec``; never the AWS edge, the controller or the CLI. Sits next to
``ecsop.observability`` in the layers: the controller publishes to it and
never waits for it.
"""
