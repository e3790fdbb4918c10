"""The inputs of one decision, named, so each branch of ``decide`` reads them alike."""

from __future__ import annotations

from datetime import datetime

from ecsop.decision.observation import Observation, Options
from ecsop.decision.situation import View
from ecsop.spec.model import ServiceRelease


class PassInputs:
    """The inputs of one decision, so each branch reads them by name."""

    def __init__(
        self,
        release: ServiceRelease,
        observed: Observation,
        view: View,
        now: datetime,
        options: Options,
    ) -> None:
        self.release = release
        self.observed = observed
        self.view = view
        self.now = now
        self.options = options
        self.poll = options.active_poll_seconds
        self.memory = view.memory.stamped(
            release.name, options.instance_id, service_arn=observed.service.arn
        )
        """The memory any record of this pass is built on."""
