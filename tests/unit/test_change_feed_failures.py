"""How the change feed's listener takes a failed read (no Redis needed: the failures are
handed to it as redis-py's worker thread would)."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from rollout.adapters import change_feed
from rollout.adapters.change_feed import ChangeFeed


class _Worker:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def feed(monkeypatch: pytest.MonkeyPatch) -> ChangeFeed:
    monkeypatch.setattr(change_feed, "POLL_SECONDS", 0.0)  # no pause between failed reads
    return ChangeFeed(redis.Redis(), channel="t:changed")  # never connects here


def test_an_outage_is_logged_once_not_on_every_failed_read(
        feed: ChangeFeed, caplog: pytest.LogCaptureFixture) -> None:
    worker = _Worker()
    with caplog.at_level("WARNING", logger="rollout.adapters.change_feed"):
        for _ in range(5):
            feed._failed(RedisConnectionError("Connection refused"), None, worker)  # type: ignore[arg-type]
    assert len(caplog.records) == 1 and not worker.stopped


def test_a_user_without_channel_rights_stops_the_listener(
        feed: ChangeFeed, caplog: pytest.LogCaptureFixture) -> None:
    worker = _Worker()
    with caplog.at_level("WARNING", logger="rollout.adapters.change_feed"):
        feed._failed(NoPermissionError("NOPERM"), None, worker)  # type: ignore[arg-type]
    assert worker.stopped and "may not subscribe" in caplog.text


def test_a_failure_that_is_not_redis_ends_the_listener(feed: ChangeFeed) -> None:
    with pytest.raises(KeyError):
        feed._failed(KeyError("a bug"), None, _Worker())  # type: ignore[arg-type]


def test_a_closed_feed_logs_nothing(feed: ChangeFeed, caplog: pytest.LogCaptureFixture) -> None:
    feed.close()
    with caplog.at_level("WARNING", logger="rollout.adapters.change_feed"):
        feed._failed(RedisConnectionError("closed under it"), None, _Worker())  # type: ignore[arg-type]
    assert caplog.records == []
