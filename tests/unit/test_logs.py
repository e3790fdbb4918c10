"""The daemon's log lines: secrets never, and no value can make a line fail."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from ecsop.observability import logs


@pytest.fixture
def configured() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_file_name_utf8_cannot_encode_still_logs(
    configured: None, capsys: pytest.CaptureFixture[str], log_format: logs.LogFormat
) -> None:
    logs.configure(log_format)
    name = os.fsdecode(b"bad\xff.yaml")
    structlog.get_logger("test").warning("spec invalid", file=name, files=[name])
    out = capsys.readouterr().out
    assert "spec invalid" in out and "bad\\xff.yaml" in out.replace("\\\\", "\\")
