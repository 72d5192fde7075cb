"""Reads of a namespace past its cache take turns, and the callers waiting for a namespace
share its next read: a cluster too slow for the cache's lists is not also asked for every
step's namespace at once, which kept it too slow for the cache to come back (real threads;
the cache and the direct reader are doubles of the two ports)."""

from __future__ import annotations

import threading
from typing import Any, cast

from rollout.adapters.namespace_cache import WatchedFacts
from rollout.domain.errors import ClusterUnavailable
from rollout.domain.facts import ClusterFacts, ObjectFacts
from tests.support.polling import eventually

NS = "default"
ROUNDS = 50
CACHED = ClusterFacts(namespace=NS, services=frozenset({"cached"}))


class _Cache:
    """Not live until `come_back`; then it answers."""

    def __init__(self) -> None:
        self.live = False
        self.asked = 0
        self.watched: list[str] = []

    def facts(self, namespace: str, *, route: str | None = None, rewrite: str | None = None,
              wait: bool = True) -> ClusterFacts | None:
        self.asked += 1
        return CACHED if self.live else None

    def watch(self, namespace: str) -> None:
        self.watched.append(namespace)


class _Cluster:
    """A direct read that takes as long as the test says; counts how many run at once. Each
    read's facts carry its number (`services`), and a route read carries the route's name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = self.most = self.reads = 0
        self.routes: list[str] = []
        self.answer = threading.Event()
        self.fail: Exception | None = None

    def read_namespace(self, namespace: str) -> ClusterFacts:
        with self.lock:
            self.inside += 1
            self.reads += 1
            number = self.reads
            self.most = max(self.most, self.inside)
        try:
            self.answer.wait(30)
            if self.fail is not None:
                raise self.fail
            return ClusterFacts(namespace=namespace, services=frozenset({f"read {number}"}))
        finally:
            with self.lock:
                self.inside -= 1

    def read_route(self, namespace: str, route: str) -> ObjectFacts:
        with self.lock:
            self.routes.append(route)
        return ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io", name=route)


def _readers(reader: WatchedFacts, count: int, *, namespaces: int = 1,
             ) -> tuple[list[threading.Thread], list[ClusterFacts | Exception]]:
    got: list[ClusterFacts | Exception] = []

    def read(i: int) -> None:
        try:
            got.append(reader.read(f"ns{i % namespaces}" if namespaces > 1 else NS,
                                   route=f"route-{i}"))
        except ClusterUnavailable as exc:
            got.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, got


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def _sharing(reader: WatchedFacts) -> int:
    """How many callers wait for the next read of NS."""
    flight = reader._namespaces[NS].next
    return flight.sharing if flight is not None else 0


def _reader(cache: _Cache, cluster: _Cluster, turns: int) -> WatchedFacts:
    return WatchedFacts(cast(Any, cache), cast(Any, cluster), direct_reads=turns)


def test_reads_of_different_namespaces_past_the_cache_take_turns() -> None:
    cache, cluster = _Cache(), _Cluster()
    reader = _reader(cache, cluster, 3)
    threads, got = _readers(reader, 12, namespaces=12)
    eventually(lambda: cluster.inside == 3, message="three reads at the cluster")
    assert len(reader._namespaces) == 12
    cluster.answer.set()
    _join(threads)
    assert len(got) == 12 and cluster.reads == 12 and cluster.most == 3
    assert sorted(cache.watched) == sorted(f"ns{i}" for i in range(12))
    assert len(reader._namespaces) == 0  # namespaces asked once (mistyped ones too) leave nothing


def _behind_a_first_read(reader: WatchedFacts, cluster: _Cluster, callers: int,
                         ) -> tuple[list[ClusterFacts | Exception], list[ClusterFacts | Exception]]:
    """One read of NS in flight, and `callers` more waiting to share the next: what the
    first caller and the others got once the cluster answers."""
    first, got_first = _readers(reader, 1)
    eventually(lambda: cluster.inside == 1, message="the first read at the cluster")
    waiting, got = _readers(reader, callers)
    eventually(lambda: _sharing(reader) == callers, message="the callers share the next read")
    cluster.answer.set()
    _join(first + waiting)
    return got_first, got


def test_callers_waiting_for_a_namespace_share_its_next_read_and_get_their_own_route() -> None:
    """One read of the namespace in flight: the nine callers that come meanwhile wait for
    one more read, which all of them share (it began after each asked)."""
    cluster = _Cluster()
    got_first, got = _behind_a_first_read(_reader(_Cache(), cluster, 4), cluster, 9)
    assert cluster.reads == 2 and cluster.most == 1
    assert [cast(ClusterFacts, f).services for f in got_first] == [frozenset({"read 1"})]
    assert {cast(ClusterFacts, f).services for f in got} == {frozenset({"read 2"})}
    routes = [cast(ClusterFacts, f).route for f in got_first + got]
    assert sorted(r.name for r in routes if r is not None) == sorted(
        ["route-0", *(f"route-{i}" for i in range(9))])  # each caller's own GET
    assert len(cluster.routes) == 10


def test_a_failed_shared_read_fails_every_caller_sharing_it_and_the_next_reads_again() -> None:
    cluster = _Cluster()
    reader = _reader(_Cache(), cluster, 4)
    cluster.fail = ClusterUnavailable("the API server did not answer")
    got_first, got = _behind_a_first_read(reader, cluster, 5)
    assert all(isinstance(f, ClusterUnavailable) for f in got_first + got)
    assert cluster.reads == 2 and cluster.routes == [] and len(reader._namespaces) == 0
    cluster.fail = None
    assert reader.read(NS).services == frozenset({"read 3"})


def test_a_read_that_waited_its_turn_takes_the_cache_once_it_is_back() -> None:
    cache, cluster = _Cache(), _Cluster()
    reader = _reader(cache, cluster, 1)
    first, got_first = _readers(reader, 1, namespaces=1)
    eventually(lambda: cluster.inside == 1, message="the first read at the cluster")
    before = cache.asked
    waiting, got = _readers(reader, 5)
    eventually(lambda: cache.asked == before + 5, message="five more reads found no cache")
    cache.live = True  # the cache's lists answered meanwhile
    cluster.answer.set()
    _join(first + waiting)
    assert [cast(ClusterFacts, f).services for f in got_first] == [frozenset({"read 1"})]
    assert got == [CACHED] * 5
    assert cluster.reads == 1


def test_every_caller_gets_a_read_that_began_after_it_asked() -> None:
    """Callers keep coming while reads run: none is answered from a read that had begun
    before it asked (it could miss the caller's own write)."""
    for _ in range(ROUNDS):
        late = _reads_begun_before_the_answer(callers=16)
        assert all(ahead >= 1 for ahead in late), late


def _reads_begun_before_the_answer(callers: int) -> list[int]:
    """For each caller, the number of the read that answered it less the number of reads
    begun when it asked."""
    cache, cluster = _Cache(), _Cluster()
    cluster.answer.set()  # reads answer at once: callers and reads interleave freely
    reader = _reader(cache, cluster, 2)
    ahead: list[int] = []

    def ask() -> None:
        with cluster.lock:
            begun = cluster.reads
        facts = reader.read(NS)
        ahead.append(int(next(iter(facts.services)).removeprefix("read ")) - begun)

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    _join(threads)
    assert len(ahead) == callers
    return ahead


class _Behind(_Cache):
    """Live, but its watches have not brought the callers' own writes of their targets."""

    def facts(self, namespace: str, *, route: str | None = None, rewrite: str | None = None,
              wait: bool = True) -> ClusterFacts | None:
        self.asked += 1
        return None if route or rewrite else CACHED


def test_a_live_cache_behind_a_callers_own_route_gives_its_lists_and_a_fresh_route() -> None:
    """Each such caller used to read the whole namespace itself, outside the turns: the slow
    watch the turns exist for, every step at the cluster at once."""
    cache, cluster = _Behind(), _Cluster()
    cluster.answer.set()
    threads, got = _readers(_reader(cache, cluster, 3), 12)
    _join(threads)
    assert cluster.reads == 0 and len(cluster.routes) == 12
    assert all(cast(ClusterFacts, f).services == CACHED.services for f in got)
    assert sorted(r.name for f in got if (r := cast(ClusterFacts, f).route) is not None) == \
        sorted(f"route-{i}" for i in range(12))


def test_callers_behind_their_own_rewrite_read_the_namespace_in_turns() -> None:
    """A rewrite's own write is among the namespace's lists: read past the cache, in turns."""
    cache, cluster = _Behind(), _Cluster()
    reader = _reader(cache, cluster, 3)
    got: list[ClusterFacts] = []
    threads = [threading.Thread(target=lambda i=i: got.append(
        reader.read(NS, rewrite=f"rewrite-{i}"))) for i in range(12)]
    for thread in threads:
        thread.start()
    eventually(lambda: cluster.inside == 3, message="three reads at the cluster")
    cluster.answer.set()
    _join(threads)
    assert len(got) == 12 and cluster.reads == 12 and cluster.most == 3
