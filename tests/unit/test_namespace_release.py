"""The namespace cache releases the namespaces nobody reads any more: each watched namespace
holds nine informer threads and nine open watches, and a process that kept every namespace
it ever read (deleted ones too) held them for its whole life, and past 32 of them read every
other namespace directly at every step, for ever.

The informers run their own threads against a double of the Kubernetes client's list calls
(a list answers empty; a watch stays open until the informer cuts it, and sends what the test
gives it); idleness is measured on a clock the test moves."""

from __future__ import annotations

import json
import queue
import random
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest

from rollout.adapters.cluster_facts import ROUTE_GROUP
from rollout.adapters.kube.httproute import HTTPROUTE
from rollout.adapters.kube.informer import WatchTiming
from rollout.adapters.namespace_cache import (
    IDLE_SECONDS,
    ROUTES,
    NamespaceCache,
    WatchedFacts,
)
from rollout.domain.facts import ClusterFacts, ObjectFacts
from tests.support.polling import eventually

ROUTE = "routes-to-llm"
KINDS = 9  # informers per namespace: pools in two groups, objectives and rewrites in two,
#            routes, pods, Services


class _Clock:
    """The cache's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class _Answer:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def release_conn(self) -> None:
        pass


class _Watch:
    """One open watch: the events the test sends, one JSON line each, until the informer
    cuts it (`shutdown`); closed once the informer closes it."""

    def __init__(self, api: _Api, namespace: str, plural: str) -> None:
        self.api, self.namespace, self.plural = api, namespace, plural
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def stream(self, _size: int, decode_content: bool = True) -> Iterator[bytes]:
        while True:
            event = self.events.get()
            if event is None:
                return
            yield json.dumps(event).encode() + b"\n"

    def shutdown(self) -> None:
        self.events.put(None)

    def close(self) -> None:
        self.api.closed(self)

    def release_conn(self) -> None:
        pass


class _Api:
    """CustomObjectsApi's and CoreLists' list calls, for every namespace: each namespace is
    empty at version 1; the watches open are counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[_Watch] = []

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                      plural: str, **query: Any) -> Any:
        return self._answer(namespace, plural, query)

    def list_namespaced_pod(self, namespace: str, **query: Any) -> Any:
        return self._answer(namespace, "pods", query)

    def list_namespaced_service(self, namespace: str, **query: Any) -> Any:
        return self._answer(namespace, "services", query)

    def _answer(self, namespace: str, plural: str, query: dict[str, Any]) -> Any:
        if not query.get("watch"):
            return _Answer(b'{"metadata": {"resourceVersion": "1"}, "items": []}')
        watch = _Watch(self, namespace, plural)
        with self.lock:
            self.open.append(watch)
        return watch

    def closed(self, watch: _Watch) -> None:
        with self.lock:
            if watch in self.open:
                self.open.remove(watch)

    def open_in(self, namespace: str | None = None) -> int:
        with self.lock:
            return sum(1 for w in self.open if namespace is None or w.namespace == namespace)

    def send(self, namespace: str, plural: str, event: dict[str, Any]) -> None:
        with self.lock:
            watches = [w for w in self.open if w.namespace == namespace and w.plural == plural]
        for watch in watches:
            watch.events.put(event)


class _Direct:
    """The cluster read directly (the ClusterReader port): its facts say so."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads: list[str] = []

    def read_namespace(self, namespace: str) -> ClusterFacts:
        with self.lock:
            self.reads.append(namespace)
        return ClusterFacts(namespace=namespace, services=frozenset({"read directly"}))

    def read_route(self, namespace: str, route: str) -> ObjectFacts:
        return ObjectFacts(kind="HTTPRoute", group=ROUTE_GROUP, name=route)


def _informer_threads(namespace: str | None = None) -> list[str]:
    """The threads of the cache's informers (of one namespace): named "informer KIND in NS"."""
    return [t.name for t in threading.enumerate() if t.name.startswith("informer ")
            and t.name.endswith(f" in {namespace}" if namespace else "") and " in " in t.name]


@pytest.fixture
def api() -> _Api:
    return _Api()


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


def _cache(api: _Api, clock: _Clock, *, max_namespaces: int = 32,
           timing: WatchTiming | None = None) -> NamespaceCache:
    return NamespaceCache(cast(Any, api), cast(Any, api), clock=clock,
                          max_namespaces=max_namespaces, timing=timing)


@pytest.fixture
def caches(api: _Api, clock: _Clock) -> Iterator[list[NamespaceCache]]:
    """The caches a test makes, stopped after it: no informer thread outlives its test."""
    made: list[NamespaceCache] = []
    try:
        yield made
    finally:
        for cache in made:
            cache.stop()
    assert _informer_threads() == []


def _watching(cache: NamespaceCache, *namespaces: str) -> None:
    for namespace in namespaces:
        assert cache.watch(namespace) is not None
    eventually(lambda: all(cache.live(ns) for ns in namespaces), message="the caches synced")


def _gone(api: _Api, namespace: str) -> bool:
    """The namespace's informer threads have ended and its watches are closed."""
    return _informer_threads(namespace) == [] and api.open_in(namespace) == 0


def test_a_33rd_namespace_is_watched_once_an_idle_one_is_released(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    """As the audit reproduced it: 32 namespaces watched, the 33rd was refused for ever."""
    cache = _cache(api, clock)
    caches.append(cache)
    namespaces = [f"ns{i}" for i in range(32)]
    _watching(cache, *namespaces)
    assert len(_informer_threads()) == 32 * KINDS
    assert cache.watch("payments") is None  # every namespace read just now

    clock.advance(IDLE_SECONDS - 1)
    for namespace in namespaces[1:]:  # still in use: every one but ns0
        assert cache.facts(namespace) is not None
    assert cache.watch("payments") is None  # ns0 not idle long enough yet

    clock.advance(2)
    assert cache.watch("payments") is not None
    assert "ns0" not in cache.watched() and "payments" in cache.watched()
    assert len(cache.watched()) == 32
    eventually(lambda: cache.live("payments"), message="the 33rd namespace synced")
    eventually(lambda: _gone(api, "ns0"), message="the released namespace's threads ended")
    assert len(_informer_threads()) == 32 * KINDS and api.open_in() == 32 * KINDS

    # a released namespace is read directly; not watched again while all 32 are in use
    reader = WatchedFacts(cache, cast(Any, _Direct()))
    assert reader.read("ns0").services == frozenset({"read directly"})
    assert "ns0" not in cache.watched()


def test_releasing_a_namespace_ends_its_threads_and_closes_its_watches(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    before = set(threading.enumerate())

    def started_since() -> list[str]:
        return sorted(t.name for t in set(threading.enumerate()) - before)

    cache = _cache(api, clock, max_namespaces=4)
    caches.append(cache)
    _watching(cache, "a", "b")
    assert started_since() == sorted([*_informer_threads("a"), *_informer_threads("b"),
                                      "namespace cache keeper"])
    assert len(_informer_threads("a")) == KINDS and api.open_in() == 2 * KINDS

    clock.advance(IDLE_SECONDS)
    assert cache.facts("b") is not None
    assert cache.release_idle() == ["a"]
    assert cache.watched() == {"b"}
    # waited on: ended when release_idle returns
    assert started_since() == sorted([*_informer_threads("b"), "namespace cache keeper"])
    assert _gone(api, "a") and api.open_in() == KINDS

    cache.stop()
    assert started_since() == [] and api.open_in() == 0


def test_a_namespace_read_or_written_recently_is_not_released(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    cache = _cache(api, clock, max_namespaces=3)
    caches.append(cache)
    _watching(cache, "read", "written")
    clock.advance(10)
    _watching(cache, "idle")  # the last watched, and the only one not used since
    clock.advance(IDLE_SECONDS - 5)
    assert cache.facts("read") is not None
    cache.wrote(HTTPROUTE, "written", {"metadata": {"name": ROUTE, "resourceVersion": "2"}})
    clock.advance(10)

    assert cache.watch("new") is not None  # releases the one least recently used, not the
    #                                        first watched
    assert cache.watched() == {"read", "written", "new"}
    assert cache.release_idle() == []
    assert cache.watch("another") is None  # every one in use: read directly, as before
    eventually(lambda: _gone(api, "idle"), message="the released namespace's threads ended")

    clock.advance(IDLE_SECONDS)
    assert sorted(cache.release_idle()) == ["new", "read", "written"]
    assert cache.watched() == frozenset() and _informer_threads() == []


def test_room_is_made_by_releasing_the_least_recently_used_namespace_only(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    cache = _cache(api, clock, max_namespaces=3)
    caches.append(cache)
    _watching(cache, "older", "old", "recent")
    clock.advance(20)
    assert cache.facts("old") is not None
    clock.advance(IDLE_SECONDS)
    assert cache.facts("recent") is not None  # idle: "older" (320 s), "old" (300 s)

    assert cache.watch("new") is not None
    assert cache.watched() == {"old", "recent", "new"}  # one released, the older
    assert cache.watch("newer") is not None
    assert cache.watched() == {"recent", "new", "newer"}
    assert cache.watch("newest") is None
    eventually(lambda: _gone(api, "older") and _gone(api, "old"),
               message="the released namespaces' threads ended")


def test_a_namespace_with_a_read_in_flight_is_not_released(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    """A step's gates wait for the watch to bring the bot's own write: however long that
    is, the namespace is not released under them."""
    cache = _cache(api, clock, max_namespaces=1,
                   timing=WatchTiming(own_write_seconds=60.0, own_write_wait_seconds=30.0))
    caches.append(cache)
    _watching(cache, "busy")
    route = {"metadata": {"name": ROUTE, "resourceVersion": "7"},
             "spec": {"parentRefs": [], "rules": []}}
    cache.wrote(HTTPROUTE, "busy", route)
    got: list[ClusterFacts | None] = []
    reader = threading.Thread(target=lambda: got.append(cache.facts("busy", route=ROUTE)))
    reader.start()
    routes = cache._namespaces["busy"].informers[ROUTES]
    eventually(lambda: bool(routes._brought_one._waiters),  # type: ignore[attr-defined]
               message="the reader waits for the watch")

    clock.advance(10 * IDLE_SECONDS)
    assert cache.release_idle() == []
    assert cache.watch("other") is None
    api.send("busy", "httproutes", {"type": "ADDED", "object": route})
    reader.join(5.0)
    assert not reader.is_alive()
    assert got[0] is not None and got[0].route is not None and got[0].route.name == ROUTE

    clock.advance(IDLE_SECONDS)
    assert cache.watch("other") is not None
    assert cache.watched() == {"other"}


def test_the_namespace_kept_is_never_released(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    """The default namespace, warm before a command however long the bot was idle."""
    cache = _cache(api, clock, max_namespaces=1)
    caches.append(cache)
    assert cache.watch("default", keep=True) is not None
    clock.advance(100 * IDLE_SECONDS)
    assert cache.release_idle() == [] and cache.watch("other") is None
    assert cache.watched() == {"default"}


def test_a_released_namespace_is_read_directly_then_watched_again(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    cache = _cache(api, clock, max_namespaces=2)
    caches.append(cache)
    direct = _Direct()
    reader = WatchedFacts(cache, cast(Any, direct))
    _watching(cache, "a", "b")
    assert reader.read("a").services == frozenset() and direct.reads == []
    clock.advance(IDLE_SECONDS)
    assert sorted(cache.release_idle()) == ["a", "b"]

    assert reader.read("a").services == frozenset({"read directly"})
    assert direct.reads == ["a"] and cache.watched() == {"a"}
    eventually(lambda: cache.live("a"), message="watched again")
    assert reader.read("a", route=ROUTE).services == frozenset() and direct.reads == ["a"]


ROUNDS = 1000
READERS = 8
NAMESPACES = [f"ns{i}" for i in range(6)]


def test_reads_while_namespaces_are_released_are_answered_and_leave_nothing_behind(
        api: _Api, clock: _Clock, caches: list[NamespaceCache]) -> None:
    """Readers of six namespaces through a cache of three, each now and then moving the
    clock past the idle bound and releasing what is idle, beside the others' reads
    and the releases `watch` makes to take in a namespace (real threads, many rounds): every
    read gets its own namespace's facts, the bound holds, and once it settles the threads
    and open watches are those of the namespaces watched."""
    cache = _cache(api, clock, max_namespaces=3)
    caches.append(cache)
    direct = _Direct()
    reader = WatchedFacts(cache, cast(Any, direct))
    wrong: list[str] = []
    failures: list[BaseException] = []
    over: list[int] = []
    released: list[str] = []

    def read(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(ROUNDS):
                namespace = rng.choice(NAMESPACES)
                facts = reader.read(namespace, route=ROUTE)
                if facts.namespace != namespace:
                    wrong.append(namespace)
                if len(cache.watched()) > 3:
                    over.append(len(cache.watched()))
                if rng.random() < 0.05:
                    clock.advance(IDLE_SECONDS)
                    released.extend(cache.release_idle())
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=read, args=(seed,)) for seed in range(READERS)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join(60)
        assert not thread.is_alive()
    assert failures == [] and wrong == [] and over == []
    assert released and len(direct.reads) > len(NAMESPACES)  # released, and read again

    def settled() -> bool:
        watched = cache.watched()
        return all(cache.live(ns) for ns in watched) and \
            len(_informer_threads()) == KINDS * len(watched) == api.open_in()

    eventually(settled, message="threads and watches only for the namespaces watched")
    cache.stop()
    assert _informer_threads() == [] and api.open_in() == 0
