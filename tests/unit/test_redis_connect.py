"""Redis settings: Sentinel addresses are checked before any connection is tried."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings
from rollout.domain.errors import InvalidInput
from rollout.redis_connect import connect


def test_sentinels_parse_from_a_comma_list() -> None:
    settings = load_settings(redis_sentinels="10.0.0.1:26379, sentinel-b:26379",
                             redis_sentinel_master="rollouts")
    assert settings.redis_sentinels == ["10.0.0.1:26379", "sentinel-b:26379"]
    assert settings.redis_sentinel_master == "rollouts"


@pytest.mark.parametrize("entry", ["sentinel-a", "sentinel-a:port", ":26379"])
def test_a_malformed_sentinel_address_is_refused(entry: str) -> None:
    with pytest.raises(InvalidInput, match="host:port"):
        connect("redis://u:p@ignored/0", sentinels=[entry])
    with pytest.raises(SettingsError, match=r"REDIS_SENTINELS: .*host:port"):
        load_settings(redis_sentinels=f"10.0.0.1:26379,{entry}")


def test_the_url_scheme_is_checked_with_sentinels() -> None:
    with pytest.raises(InvalidInput, match="redis:// or rediss://"):
        connect("http://ignored/0", sentinels=["127.0.0.1:26379"])
