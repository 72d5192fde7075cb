"""How an informer waits between watches: a watch the server ends is resumed at once, and one
that fails waits, the wait doubling while failures go on, as Kubernetes' own reflector does.
A watch that ends within a second having brought nothing (a proxy that answers 200 and
closes) is a failure too: resumed at once, it made a loop of thousands of requests a second.

The informer runs its own thread against a lister the test scripts, with the test's clock
and the test's sleep (which records each wait and returns at once); the same over HTTP, on
the client the bot builds, is in tests/integration/test_informer_short_watches.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from rollout.adapters.kube.informer import Informer, WatchTiming

ROUTE = "routes-to-llm"
WATCHES_AT_MOST = 50  # in a row without a wait: such a loop is stopped here, the test fails
BACKOFF = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # retry 1 s, doubling, at most recheck 30 s
Event = dict[str, Any]


def _event(kind: str, version: str) -> Event:
    return {"type": kind, "object": {"metadata": {"name": ROUTE, "resourceVersion": version}}}


def _error(code: int) -> Event:
    return {"type": "ERROR", "object": {"kind": "Status", "status": "Failure", "code": code}}


@dataclass(frozen=True)
class Watch:
    """What one watch does once open: its events (or raw lines), then the clock moves by
    `lasting`, then `then` is raised (None: the server ends the stream). A watch `refused`
    never opens: the server answers that status."""

    refused: int | None = None
    events: tuple[Event | bytes, ...] = ()
    lasting: float = 0.0
    then: BaseException | None = None


class _Answer:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def release_conn(self) -> None:
        pass


@dataclass
class _Stream:
    watch: Watch
    clock: _Clock

    def stream(self, _size: int, decode_content: bool = True) -> Iterator[bytes]:
        for event in self.watch.events:
            yield event if isinstance(event, bytes) else json.dumps(event).encode() + b"\n"
        self.clock.now += self.watch.lasting
        if self.watch.then is not None:
            raise self.watch.then

    def shutdown(self) -> None:
        pass

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@dataclass
class _Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Cluster:
    """Answers each list with the next resourceVersion (5, 6, ...) and each watch as `script`
    says for that watch (by its number, from 0). `calls` is what the informer did, in order:
    ("list", version listed), ("watch", version asked), ("wait", seconds)."""

    script: Callable[[int], Watch]
    waits_at_most: int = len(BACKOFF)
    clock: _Clock = field(default_factory=_Clock)
    calls: list[tuple[str, str]] = field(default_factory=list)
    informer: Informer[Any] | None = None

    def __call__(self, **query: Any) -> Any:
        assert self.informer is not None
        if not query.get("watch"):
            version = str(5 + sum(1 for call, _ in self.calls if call == "list"))
            self.calls.append(("list", version))
            body = {"metadata": {"resourceVersion": version}, "items": []}
            return _Answer(json.dumps(body).encode())
        watch = self.script(len(self.watches))
        self.calls.append(("watch", str(query["resource_version"])))
        if self._watches_without_a_wait() >= WATCHES_AT_MOST:
            self.informer.signal()
        if watch.refused is not None:
            raise ApiException(status=watch.refused, reason="refused")
        return _Stream(watch, self.clock)

    def sleep(self, seconds: float) -> None:
        assert self.informer is not None
        self.calls.append(("wait", f"{seconds:g}"))
        if len(self.waits) >= self.waits_at_most:
            self.informer.signal()

    def _watches_without_a_wait(self) -> int:
        count = 0
        for call, _ in reversed(self.calls):
            if call == "wait":
                break
            count += call == "watch"
        return count

    @property
    def watches(self) -> list[str]:
        return [version for call, version in self.calls if call == "watch"]

    @property
    def waits(self) -> list[float]:
        return [float(seconds) for call, seconds in self.calls if call == "wait"]


def _run(cluster: _Cluster, timing: WatchTiming | None = None) -> None:
    """Start the informer on its thread and wait for it to end (the cluster stops it)."""
    informer: Informer[Any] = Informer("httproutes", cluster, lambda obj: obj,
                                       timing=timing or WatchTiming(), clock=cluster.clock,
                                       sleep=cluster.sleep)
    cluster.informer = informer
    informer.start()
    informer.join(10.0)
    alive = informer._thread is not None and informer._thread.is_alive()
    informer.stop(5.0)
    assert not alive, "the informer did not end"


def _failing_watches() -> list[Watch]:
    """Watches that open and then fail before bringing anything."""
    return [
        Watch(then=ProtocolError("Connection broken: connection reset by peer")),
        Watch(events=(b'{"type": "MODIFIED", "object": \n',)),  # not JSON
        Watch(events=(_event("EXPLODED", "9"),)),
    ]


# -- a watch that ends at once is a failure -------------------------------------------------


@pytest.mark.parametrize("lasting", [0.0, 0.9])
def test_a_watch_that_ends_within_a_second_having_brought_nothing_waits_and_doubles(
        lasting: float, caplog: pytest.LogCaptureFixture) -> None:
    cluster = _Cluster(lambda _n: Watch(lasting=lasting))
    with caplog.at_level(logging.DEBUG, logger="rollout.adapters.kube.informer"):
        _run(cluster)
    assert cluster.waits == BACKOFF
    # each wait before the next watch, from the version listed: nothing is listed again
    assert cluster.calls == [("list", "5")] + [c for w in BACKOFF
                                               for c in (("watch", "5"), ("wait", f"{w:g}"))]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # once, not once a retry
    assert "ended within" in warnings[0].getMessage()


@pytest.mark.parametrize("watch", [
    Watch(lasting=1.0),  # idle until the server ended it
    Watch(lasting=60.0),
    Watch(events=(_event("BOOKMARK", "6"),)),
    Watch(events=(_event("MODIFIED", "6"),)),
], ids=["a second", "a full watch", "a bookmark", "an event"])
def test_a_watch_that_lasted_or_brought_something_is_resumed_at_once(watch: Watch) -> None:
    cluster = _Cluster(lambda _n: watch)
    _run(cluster)
    assert cluster.waits == []
    assert len(cluster.watches) == WATCHES_AT_MOST
    assert cluster.calls[0] == ("list", "5")  # and never again
    assert sum(1 for call, _ in cluster.calls if call == "list") == 1


# -- the wait doubles while failures go on, though each watch opens --------------------------


@pytest.mark.parametrize("watch", _failing_watches(), ids=["reset", "undecodable", "unknown"])
def test_watches_that_open_and_fail_double_the_wait(watch: Watch) -> None:
    cluster = _Cluster(lambda _n: watch)
    _run(cluster)
    assert cluster.waits == BACKOFF
    assert cluster.watches == ["5"] * len(BACKOFF)  # resumed from the version listed


@pytest.mark.parametrize("healthy", [
    Watch(events=(_event("BOOKMARK", "6"),), then=ProtocolError("reset")),
    Watch(events=(_event("MODIFIED", "6"),), then=ProtocolError("reset")),
    Watch(lasting=60.0, then=ProtocolError("reset")),  # a full watch, then silence cut
], ids=["a bookmark", "an event", "a full watch"])
def test_a_watch_that_brought_something_or_lasted_a_full_watch_starts_the_waits_over(
        healthy: Watch) -> None:
    failing = Watch(then=ProtocolError("reset"))
    script = [failing, failing, failing, healthy, failing, failing]
    cluster = _Cluster(lambda n: script[n], waits_at_most=len(script))
    _run(cluster)
    assert cluster.waits == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]


def test_failures_that_go_on_for_hours_keep_the_longest_wait() -> None:
    """2 ** 1024 is too large for a float: a wait computed from failures in a row without a
    bound ended the informer's thread after some nine hours of refused watches (a Role
    without `watch`), and the cache never came back once the Role was fixed."""
    cluster = _Cluster(lambda _n: Watch(refused=403), waits_at_most=1100)
    _run(cluster)
    assert len(cluster.waits) == 1100 and set(cluster.waits[6:]) == {30.0}


# -- an ERROR event: list again --------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 503, 429])
def test_an_error_event_other_than_410_lists_again_after_a_wait(code: int) -> None:
    script = [Watch(events=(_error(code),)), Watch(events=(_error(code),)), Watch(lasting=60.0)]
    cluster = _Cluster(lambda n: script[min(n, 2)])
    _run(cluster)
    assert cluster.calls[:8] == [("list", "5"), ("watch", "5"), ("wait", "1"),
                                 ("list", "6"), ("watch", "6"), ("wait", "2"),
                                 ("list", "7"), ("watch", "7")]


def test_an_error_event_after_events_lists_again_after_the_shortest_wait() -> None:
    script = [Watch(events=(_event("MODIFIED", "6"), _error(500))), Watch(lasting=60.0)]
    cluster = _Cluster(lambda n: script[min(n, 1)])
    _run(cluster)
    assert cluster.calls[:5] == [("list", "5"), ("watch", "5"), ("wait", "1"),
                                 ("list", "6"), ("watch", "6")]


def test_410_on_a_version_a_watch_brought_lists_again_at_once() -> None:
    """The version was compacted away while the watch resumed: the usual 410, no failure."""
    script = [Watch(events=(_event("BOOKMARK", "6"),)), Watch(events=(_error(410),)),
              Watch(lasting=60.0)]
    cluster = _Cluster(lambda n: script[min(n, 2)])
    _run(cluster)
    assert cluster.calls[:5] == [("list", "5"), ("watch", "5"), ("watch", "6"), ("list", "6"),
                                 ("watch", "6")]
    assert cluster.waits == []


@pytest.mark.parametrize("gone", [Watch(events=(_error(410),)), Watch(refused=410)],
                         ids=["in the stream", "as the answer"])
def test_410_on_the_version_just_listed_waits_and_doubles(gone: Watch) -> None:
    """A server (or a proxy's cache) that refuses every watch from the version its list gave
    was listed and watched again in a loop without a pause, as fast as it answered."""
    cluster = _Cluster(lambda _n: gone)
    _run(cluster)
    assert cluster.waits == BACKOFF
    assert cluster.calls[:6] == [("list", "5"), ("watch", "5"), ("wait", "1"),
                                 ("list", "6"), ("watch", "6"), ("wait", "2")]
