"""Wakes the leading scheduler when another replica saves a change.

The leader learns of changes from the change index at each sweep (`ROLLOUT_TICK`), so a plan
approved or a rollout resumed on another replica waited up to a sweep before its next
automatic step was scheduled, however short its bake. Each state write of a replica that
does not lead now also publishes the rollout's id on a channel (in the same script, with
`redis.pcall`: a Redis user without channel rights still saves), and the leader, subscribed,
loads that rollout and sweeps at once. A message lost (a dropped connection, a failover)
costs only the wait for the next sweep, as before; the leader's own writes publish nothing
(it follows them already).

A person's command also says on a second channel when it goes to work and when it is done
(in its first and last scripts: no round trip of its own), so that the leader's ticks make
way for it (`rollout.pacing`). Every replica's, the leader's included.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.client import PubSub, PubSubWorkerThread
from redis.exceptions import NoPermissionError, RedisError

log = logging.getLogger(__name__)

#: how long the listener waits for a message in one read, and after a failed read
POLL_SECONDS = 1.0
#: a Redis outage is logged once in this long, not on every failed read
WARN_EVERY_SECONDS = 60.0


class ChangeFeed:
    """The channel every replica's writes are announced on, and the leader's subscription."""

    def __init__(self, client: redis.Redis, *, channel: str, people_channel: str = "") -> None:
        self._r = client
        self.channel = channel
        #: where people's commands say they began ("+" and their name) and ended ("-")
        self.people_channel = people_channel
        #: while true, this replica's writes are not announced (it leads)
        self._quiet: Callable[[], bool] = lambda: False
        self._lock = threading.Lock()
        self._pubsub: PubSub | None = None
        self._worker: PubSubWorkerThread | None = None
        self._closed = threading.Event()
        self._listening = False  # `listen` was called: subscribed, or trying to
        self._warned_at = -WARN_EVERY_SECONDS

    @classmethod
    def of_install(cls, client: redis.Redis, prefix: str) -> ChangeFeed:
        """The feed of the install whose keys live under `prefix` (ROLLOUT_KEY_PREFIX)."""
        return cls(client, channel=f"{prefix}:changed", people_channel=f"{prefix}:people")

    def announced_on(self) -> str:
        """The channel a write publishes on now, '' for none (the store's script argument)."""
        return "" if self._quiet() else self.channel

    def listen(self, on_change: Callable[[str], None], *,
               quiet_while: Callable[[], bool],
               on_person: Callable[[str, bool], None] | None = None) -> None:
        """Call `on_change(rollout_id)` (on the listener's thread) for each change announced;
        announce nothing of this replica's own while `quiet_while()`. `on_person(command,
        began)`: a person's command went to work (True) or is done (False)."""
        self._quiet = quiet_while
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            self.channel: lambda message: _deliver(lambda: on_change(_text(message)))}
        if on_person is not None and self.people_channel:
            handlers[self.people_channel] = lambda message: _deliver(
                lambda: _person(message, on_person))
        with self._lock:
            if self._listening or self._closed.is_set():
                return
            self._listening = True
        if not self._subscribe(handlers):
            threading.Thread(target=self._subscribe_until_done, args=(handlers,),
                             name="change feed subscription", daemon=True).start()

    def _subscribe(self, handlers: dict[str, Callable[[dict[str, Any]], None]]) -> bool:
        """Subscribe and start the listener; False when Redis could not be reached (try
        again). Unreachable at start, it raised out of `serve` and `scheduler`, which then
        exited with a traceback, though the rest of the bot waits for Redis to come back."""
        with self._lock:
            if self._closed.is_set():
                return True
            pubsub = self._r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(**handlers)
            except NoPermissionError:
                pubsub.close()
                self._no_rights()
                return True
            except (RedisError, OSError) as exc:
                pubsub.close()
                self._warn(exc)
                return False
            self._pubsub = pubsub
            self._worker = pubsub.run_in_thread(
                sleep_time=POLL_SECONDS, daemon=True, exception_handler=self._failed)
            self._worker.name = "change feed"
            return True

    def _subscribe_until_done(self, handlers: dict[str, Callable[[dict[str, Any]], None]]
                              ) -> None:
        while not self._closed.wait(POLL_SECONDS):
            if self._subscribe(handlers):
                return

    def _no_rights(self) -> None:
        log.warning("change feed: this Redis user may not subscribe to %s; other "
                    "replicas' changes are followed at each sweep", self.channel)

    def _warn(self, exc: BaseException) -> None:
        """A Redis outage, said once a minute while it lasts."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("change feed: %s; other replicas' changes wait for the next sweep "
                        "until it reconnects", exc)

    def _failed(self, exc: BaseException, pubsub: PubSub, worker: Any) -> None:
        """A read that failed: Redis gone (the next read reconnects and subscribes again;
        until then changes wait for the sweep), or a user without channel rights (the feed
        stops: the sweep alone follows changes)."""
        if isinstance(exc, NoPermissionError):
            self._no_rights()
            worker.stop()
            return
        if not isinstance(exc, (RedisError, OSError)):
            raise exc
        if self._closed.is_set():
            return
        self._warn(exc)
        self._closed.wait(POLL_SECONDS)

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            worker, pubsub, self._worker, self._pubsub = self._worker, self._pubsub, None, None
        if worker is not None:
            worker.stop()
            worker.join(timeout=2 * POLL_SECONDS)
        if pubsub is not None:
            pubsub.close()


def _person(message: dict[str, Any], on_person: Callable[[str, bool], None]) -> None:
    """"+name" began, "-name" ended; anything else (another writer's) is ignored."""
    text = _text(message)
    if len(text) > 1 and text[0] in "+-":
        on_person(text[1:], text[0] == "+")


def _text(message: dict[str, Any]) -> str:
    data = message.get("data")
    return data.decode() if isinstance(data, bytes) else str(data)


def _deliver(on_change: Callable[[], None]) -> None:
    """A failure of the listener's own is logged, not fatal to the feed: the next sweep
    catches up on what it missed."""
    try:
        on_change()
    except Exception:
        log.exception("change feed: acting on an announced change failed; the next sweep "
                      "catches up")
