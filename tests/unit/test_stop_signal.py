"""The first SIGINT or SIGTERM asks for a graceful stop; a second, while it runs, ends the
process at once with 128 + the signal's number, after one JSON log line. The handler is
called as Python calls it, with an exit that records instead of ending the test."""

from __future__ import annotations

import json
import logging
import signal
import threading

import pytest

from bot.logs import JsonFormatter
from bot.stop_signal import SignalStop


def _forced(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records
            if getattr(r, "event", None) == "forced_exit"]


@pytest.mark.parametrize(("second", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_second_signal_during_the_stop_exits_at_once(
        caplog: pytest.LogCaptureFixture, second: signal.Signals, code: int) -> None:
    stop, exits = threading.Event(), list[int]()
    handler = SignalStop(stop, exit=exits.append)
    with caplog.at_level(logging.INFO):
        handler(signal.SIGTERM, None)
        assert stop.is_set() and exits == [] and _forced(caplog) == []
        handler(second, None)
    assert exits == [code]
    (line,) = _forced(caplog)
    assert line["signal"] == second.name and line["exit_code"] == code
    assert line["level"] == "warning"


def test_the_first_signal_only_asks_for_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    stop, exits = threading.Event(), list[int]()
    SignalStop(stop, exit=exits.append)(signal.SIGINT, None)
    assert stop.is_set() and exits == [] and _forced(caplog) == []
