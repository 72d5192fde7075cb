"""JSON log lines: one object per line, extra fields as keys, tracebacks kept, LOG_LEVEL."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs
from bot.settings import SettingsError, load_settings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("info", stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_a_record_is_one_json_line_with_its_fields(stream: io.StringIO) -> None:
    log = logging.getLogger("rollout-bot.test")
    log.info("approved %s", "step 1", extra={"event": "decision", "rollout_id": "r-1",
                                             "actor": "U0BOB"})
    log.debug("not shown at INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"event": "error"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "approved step 1" and first["level"] == "info"
    assert (first["event"], first["rollout_id"], first["actor"]) == ("decision", "r-1", "U0BOB")
    assert second["level"] == "error" and "RuntimeError: boom" in second["error"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        logs.configure("chatty")
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        load_settings(log_level="chatty")
    assert load_settings(log_level="debug").log_level == "DEBUG"
