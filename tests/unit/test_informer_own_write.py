"""A reader of the cache behind the bot's own write waits for the watch to bring it (for a
bounded time) instead of reading the whole namespace from a cluster that is already slow.

The informer runs its own thread against a lister the test drives: a list, then one watch
stream whose events the test sends when it chooses (the Kubernetes client's calls are the
informer's seam; the real API server's behaviour is in tests/integration)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rollout.adapters.kube.informer import Informer, Snapshot, WatchTiming
from tests.support.polling import eventually

ROUTE = "routes-to-llm"


def _route(version: str, weight: int) -> dict[str, Any]:
    return {"metadata": {"name": ROUTE, "resourceVersion": version}, "spec": {"weight": weight}}


class _Answer:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def release_conn(self) -> None:
        pass


class _Stream:
    """A watch response: the events the test sends, one JSON line each, until it ends."""

    def __init__(self, events: queue.Queue[dict[str, Any] | None], asked: list[int]) -> None:
        self._events = events
        self._asked = asked

    def stream(self, _size: int, decode_content: bool = True) -> Iterator[bytes]:
        while True:  # the informer asks for the next event once it has applied the one before
            self._asked.append(1)
            event = self._events.get()
            if event is None:
                return
            yield json.dumps(event).encode() + b"\n"

    def shutdown(self) -> None:  # the informer's stop cuts its stream
        self._events.put(None)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class _Cluster:
    """Lists one route at version 1; each watch streams what `send` is given."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.asked: list[int] = []  # one entry each time the watch asks for an event

    def __call__(self, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return _Stream(self.events, self.asked)
        body = {"metadata": {"resourceVersion": "1"}, "items": [_route("1", 0)]}
        return _Answer(json.dumps(body).encode())

    def send(self, version: str, weight: int) -> None:
        self.events.put({"type": "MODIFIED", "object": _route(version, weight)})


@pytest.fixture
def cluster() -> _Cluster:
    return _Cluster()


@pytest.fixture
def informer(cluster: _Cluster) -> Iterator[Informer[dict[str, Any]]]:
    """Listed and watching the test's cluster; stopped after the test."""
    made: Informer[dict[str, Any]] = Informer(
        "httproutes", cluster, lambda obj: obj,
        timing=WatchTiming(own_write_seconds=60.0, retry_seconds=60.0))
    made.start()
    try:
        eventually(lambda: made.live, message="the informer listed and watches")
        yield made
    finally:
        made.stop(5.0)


def _waiting(informer: Informer[Any]) -> bool:
    """A reader is parked on the informer's condition (it has asked, and not been told)."""
    return bool(informer._brought_one._waiters)  # type: ignore[attr-defined]


def _read_in_thread(informer: Informer[dict[str, Any]],
                    ) -> tuple[threading.Thread, list[Snapshot[dict[str, Any]] | None]]:
    got: list[Snapshot[dict[str, Any]] | None] = []
    until = time.monotonic() + 30.0

    def read() -> None:
        got.append(informer.snapshot(fresh=(ROUTE,), until=until))

    reader = threading.Thread(target=read)
    reader.start()
    eventually(lambda: _waiting(informer), message="the reader waits for the watch")
    return reader, got


def test_a_read_behind_the_bots_own_write_gets_it_once_the_watch_brings_it(
        cluster: _Cluster, informer: Informer[dict[str, Any]]) -> None:
    informer.expect(ROUTE, "7")  # the bot's PATCH answered version 7
    reader, got = _read_in_thread(informer)
    cluster.send("7", 10)
    reader.join(5.0)
    assert not reader.is_alive()
    [snapshot] = got
    assert snapshot is not None and [r["spec"]["weight"] for r in snapshot.items] == [10]


def test_another_objects_event_does_not_end_the_wait(
        cluster: _Cluster, informer: Informer[dict[str, Any]]) -> None:
    informer.expect(ROUTE, "7")
    reader, got = _read_in_thread(informer)
    cluster.send("6", 5)  # an earlier version: still behind the bot's write
    # the stream's first event is version 6: a second ask means the informer applied it
    eventually(lambda: len(cluster.asked) >= 2, message="the watch to apply version 6")
    assert _waiting(informer) and not got  # version 6 applied: the reader still waits
    cluster.send("7", 10)
    reader.join(5.0)
    assert not reader.is_alive()
    [snapshot] = got
    assert snapshot is not None and [r["spec"]["weight"] for r in snapshot.items] == [10]


def test_the_wait_is_bounded_and_then_the_reader_reads_the_cluster(
        cluster: _Cluster, informer: Informer[dict[str, Any]]) -> None:
    informer.expect(ROUTE, "7")
    assert informer.snapshot(fresh=(ROUTE,)) is None  # no deadline: no wait
    assert informer.item(ROUTE) is None
    until = time.monotonic() + 0.05
    assert informer.snapshot(fresh=(ROUTE,), until=until) is None
    assert time.monotonic() >= until


def test_a_watch_that_ends_wakes_the_reader_at_once(
        cluster: _Cluster, informer: Informer[dict[str, Any]]) -> None:
    informer.expect(ROUTE, "7")
    reader, got = _read_in_thread(informer)
    cluster.events.put(None)  # the stream ends: not live until it reconnects
    reader.join(5.0)
    assert not reader.is_alive() and got == [None]


def test_a_read_of_another_object_does_not_wait(informer: Informer[dict[str, Any]]) -> None:
    informer.expect("another-route", "7")
    until = time.monotonic() + 30.0
    assert informer.snapshot(fresh=(ROUTE,), until=until) is not None
    assert informer.item(ROUTE) is not None
    assert time.monotonic() < until
