"""ROLLOUT_RETENTION: how long Redis keeps a rollout nothing more is asked of. A duration in
days, hours, minutes or seconds, at least an hour, at most ten years, or 0 for ever; anything
else stops every command with one line naming the variable."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings, retention_seconds


@pytest.mark.parametrize(("value", "seconds"), [
    ("90d", 90 * 86400), ("720h", 720 * 3600), ("0", 0), (" 1h ", 3600), ("60m", 3600),
    ("3650d", 3650 * 86400), ("3600", 3600),
])
def test_a_retention_is_read(value: str, seconds: int) -> None:
    assert retention_seconds(value) == seconds


def test_the_default_keeps_ninety_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLOUT_RETENTION", raising=False)
    assert retention_seconds(load_settings().rollout_retention) == 90 * 86400


@pytest.mark.parametrize(("value", "said"), [
    ("59m", "invalid retention `59m`: at least 1h (or 0 to keep every rollout for ever)"),
    ("1s", "invalid retention `1s`: at least 1h"),
    ("3651d", "invalid retention `3651d`: at most 3650d"),
    ("90 days", "invalid retention `90 days`: give a duration like 90d or 720h"),
    ("", "invalid retention ``"),
    ("-1d", "invalid retention `-1d`"),
    ("\u0669\u0660d", "invalid retention"),  # other scripts' digits
])
def test_a_bad_retention_is_refused_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, value: str, said: str) -> None:
    monkeypatch.setenv("ROLLOUT_RETENTION", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: ROLLOUT_RETENTION: ")
    assert said in message and "\n" not in message
