"""Reads of a namespace past its cache take turns: a cluster too slow for the cache's lists is
not also asked for every step's namespace at once, which kept it too slow for the cache to
come back (real threads; the cache and the direct reader are doubles of the two ports)."""

from __future__ import annotations

import threading
from typing import Any, cast

from rollout.adapters.namespace_cache import WatchedFacts
from tests.support.polling import eventually

NS = "default"
CACHED, DIRECT = object(), object()


class _Cache:
    """Not live until `come_back`; then it answers."""

    def __init__(self) -> None:
        self.live = False
        self.asked = 0
        self.watched: list[str] = []

    def facts(self, namespace: str, *, route: str | None = None, rewrite: str | None = None,
              wait: bool = True) -> object | None:
        self.asked += 1
        return CACHED if self.live else None

    def watch(self, namespace: str) -> None:
        self.watched.append(namespace)


class _Cluster:
    """A direct read that takes as long as the test says; counts how many run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = self.most = self.reads = 0
        self.answer = threading.Event()

    def read(self, namespace: str, *, route: str | None = None) -> object:
        with self.lock:
            self.inside += 1
            self.reads += 1
            self.most = max(self.most, self.inside)
        try:
            self.answer.wait(30)
            return DIRECT
        finally:
            with self.lock:
                self.inside -= 1


def _readers(reader: WatchedFacts, count: int) -> tuple[list[threading.Thread], list[object]]:
    got: list[object] = []

    def read() -> None:
        got.append(reader.read(NS, route="routes-to-llm"))

    threads = [threading.Thread(target=read) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, got


def test_reads_past_the_cache_take_turns() -> None:
    cache, cluster = _Cache(), _Cluster()
    reader = WatchedFacts(cast(Any, cache), cast(Any, cluster), direct_reads=3)
    threads, got = _readers(reader, 12)
    eventually(lambda: cluster.inside == 3, message="three reads at the cluster")
    cluster.answer.set()
    for thread in threads:
        thread.join(10)
    assert got == [DIRECT] * 12 and cluster.reads == 12
    assert cluster.most == 3
    assert cache.watched == [NS] * 12


def test_a_read_that_waited_its_turn_takes_the_cache_once_it_is_back() -> None:
    cache, cluster = _Cache(), _Cluster()
    reader = WatchedFacts(cast(Any, cache), cast(Any, cluster), direct_reads=1)
    first, got_first = _readers(reader, 1)
    eventually(lambda: cluster.inside == 1, message="the first read at the cluster")
    before = cache.asked
    waiting, got = _readers(reader, 5)
    eventually(lambda: cache.asked == before + 5, message="five more reads found no cache")
    cache.live = True  # the cache's lists answered meanwhile
    cluster.answer.set()
    for thread in first + waiting:
        thread.join(10)
    assert got_first == [DIRECT] and got == [CACHED] * 5
    assert cluster.reads == 1
