"""Bolt's notices of how the bot wires it are dropped while the app is built, and only then:
its later warnings (an unhandled request, say) still reach the log."""

from __future__ import annotations

import logging

import pytest

from bot.slack_app import _wiring_notices_dropped


def test_only_the_construction_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    bolt_log = logging.getLogger("rollout-bot.bolt.test")
    bolt_log.setLevel(logging.INFO)
    with caplog.at_level(logging.DEBUG, logger=bolt_log.name):
        with _wiring_notices_dropped(bolt_log):
            bolt_log.warning("`token` will be ignored")
            bolt_log.error("an error while building")
        bolt_log.warning("unhandled request")
    assert [r.getMessage() for r in caplog.records] == ["an error while building",
                                                        "unhandled request"]
    assert bolt_log.level == logging.INFO


def test_a_failed_construction_leaves_the_level_as_it_was() -> None:
    bolt_log = logging.getLogger("rollout-bot.bolt.failed")
    with pytest.raises(RuntimeError), _wiring_notices_dropped(bolt_log):
        raise RuntimeError("Bolt refused the app")
    assert bolt_log.level == logging.NOTSET
