"""The namespaces the bot works in, watched: what the preflight gates and a start read, kept
current by one informer per kind, so that a step reads no namespace and a start lists nothing.

Used by the long-running processes (serve, scheduler, sandbox); the one-shot CLI reads the
cluster directly. The default namespace is watched from the start, another one from its first
successful read by the gates (that read, and every read while any of its informers is not
live, goes to the cluster as before): a gate is never decided on a cache whose watch is not
open. Kept per object: the facts the gates read (pods
as `PodFacts`, Services as names, pools and objectives as their facts), and routes and rewrites
whole, because a start locates its rule and the bot's markers on them.

A namespace nobody has read or written for `IDLE_SECONDS` is released: its informers end
(their watches cut, their threads returned), at once when a namespace past the bound would
otherwise be read directly, else within `RELEASE_EVERY_SECONDS`. A namespace read again later
is read directly and watched again, as at its first read. Each namespace watched holds nine
threads and nine open watches: kept for the life of the process, the namespaces a rollout had
once run in (deleted ones too) held them for ever, and past the bound every other namespace
was read directly at every step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from kubernetes.client import CustomObjectsApi

from rollout.adapters.cluster_facts import (
    EPP_VERSION,
    ROUTE_GROUP,
    ROUTE_VERSION,
    ClusterReader,
    object_facts,
    objective_facts,
    pod_facts,
    pool_facts,
    rewrite_facts,
)
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.fenced import Kind, Obj
from rollout.adapters.kube.informer import Informer, Snapshot, WatchTiming
from rollout.domain.errors import NotFound
from rollout.domain.facts import (
    EPP_GROUPS,
    LEGACY_GROUP,
    POOL_GROUP,
    POOL_VERSIONS,
    ClusterFacts,
    ObjectiveFacts,
    PodFacts,
    PoolFacts,
    label_index,
)

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (API group, plural)
POOLS, OBJECTIVES, REWRITES = "inferencepools", "inferenceobjectives", "inferencemodelrewrites"
ROUTES: Key = (ROUTE_GROUP, "httproutes")
PODS: Key = ("", "pods")
SERVICES: Key = ("", "services")
POOL_KEYS: tuple[Key, ...] = ((POOL_GROUP, POOLS), (LEGACY_GROUP, POOLS))

#: a namespace not read nor written by the bot for this long is released. One with an
#: active rollout is read at each of its steps and at every sweep of the leader's drift
#: watch (5 s): sixty sweeps missed. One nobody reads any more still holds nine threads and
#: nine connections, and asks nine watches again each watch period (60 s by default): in five
#: idle minutes 45 requests, more than taking it back costs (a direct read, then nine lists
#: and nine watches: 25 to 27). Far above how long the bot's own write is waited on
#: (`own_write_seconds`, 5 s; a write is a use), so one with such a write pending is not idle.
IDLE_SECONDS = 300.0
#: how often the cache looks for idle namespaces (real time); past `max_namespaces` a
#: namespace read would otherwise be read directly, and one idle is released at once
RELEASE_EVERY_SECONDS = 60.0


def _whole(obj: Obj) -> Obj:
    return obj


def _service_name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class _Watched:
    """The informers of one namespace, and the facts last built from them."""

    def __init__(self, informers: dict[Key, Informer[Any]], *, wait: float, now: float,
                 keep: bool) -> None:
        self.informers = informers
        self._wait = wait  # how long the bot's own writes are waited on (WatchTiming)
        self._base: tuple[tuple[int, ...], ClusterFacts] | None = None
        # under the cache's lock: when last read or written (the cache's clock), the reads
        # in flight (the first: `watch`, until the informers are started), and whether it is
        # never released
        self.used = now
        self.readers = 1
        self.keep = keep
        self.started = threading.Event()  # every informer's thread started

    def start(self) -> None:
        for informer in self.informers.values():
            informer.start()
        self.started.set()

    def base(self, snaps: dict[Key, Snapshot[Any]],
             build: Callable[[dict[Key, Snapshot[Any]]], ClusterFacts]) -> ClusterFacts:
        """The namespace's facts but the route, from `snaps`: built again only when an
        informer other than the routes' has moved since the last build (in a namespace where
        many rollouts step, the routes move every step and the rest seldom, and building the
        facts and the pods' label index was about 7% of a step's CPU in a profile)."""
        key = tuple(snap.revision for kind, snap in snaps.items() if kind != ROUTES)
        kept = self._base
        if kept is not None and kept[0] == key:
            return kept[1]
        facts = build(snaps)
        self._base = (key, facts)  # a race rebuilds the same thing: no lock needed
        return facts

    def snapshots(self, fresh: dict[Key, tuple[str, ...]] | None = None, *,
                  wait: bool = False) -> dict[Key, Snapshot[Any]] | None:
        """Every kind's items, or None while any informer is not live or behind the bot's
        own writes (of the objects `fresh` names for its kind; of any object otherwise).
        With `wait`, the watches are given `own_write_wait_seconds` in all to bring them."""
        found: dict[Key, Snapshot[Any]] = {}
        until = time.monotonic() + self._wait if wait else None
        for key, informer in self.informers.items():
            snapshot = informer.snapshot(fresh=(fresh or {}).get(key), until=until)
            if snapshot is None:
                return None
            found[key] = snapshot
        return found


class NamespaceCache:
    """Informers per namespace the bot reads, started by `watch`, ended by `release_idle`
    (or by `watch` past the bound) for a namespace not used for `idle_seconds` (by `clock`),
    and by `stop`."""

    def __init__(self, objects: CustomObjectsApi, core: CoreLists, *,
                 timing: WatchTiming | None = None, epp_groups: tuple[str, ...] = EPP_GROUPS,
                 max_namespaces: int = 32, idle_seconds: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._objects = objects
        self._core = core
        self._timing = timing or WatchTiming()
        self._epp_groups = epp_groups
        self._max = max_namespaces
        self._idle = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._namespaces: dict[str, _Watched] = {}
        self._stopped = False
        # the informers released and told to end whose threads nobody has waited on yet
        # (`stop` waits on them too); the cache's own thread waits on them
        self._ending: set[Informer[Any]] = set()
        self._wake = threading.Event()
        self._keeper: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def watch(self, namespace: str, *, keep: bool = False) -> _Watched | None:
        """The namespace's informers, started now if they were not; None once stopped, or
        past the bound on namespaces while every one watched was used within `idle_seconds`
        (those are read directly); else the least recently used of the others is released
        to make room. `keep`: never released (the default namespace, warm before a
        command)."""
        now = self._clock()
        with self._lock:
            watched = self._namespaces.get(namespace)
            if watched is not None:
                watched.used = now
                watched.keep = watched.keep or keep
                return watched
            if self._stopped:
                return None
            released: list[tuple[str, _Watched]] = []
            if len(self._namespaces) >= self._max:
                released = self._idle_namespaces(now)[:1]
                if not released:
                    return None
                self._forget(released)
            watched = _Watched(self._informers(namespace),
                               wait=self._timing.own_write_wait_seconds, now=now, keep=keep)
            self._namespaces[namespace] = watched
            self._start_keeper()
        if released:  # told to end now; their threads are waited on off the reader's path
            self._signal(released, now)
            self._wake.set()
        try:
            watched.start()  # after `stop` meanwhile, their threads see the signal and return
        finally:
            with self._lock:
                watched.readers -= 1
        log.info("watching namespace %s", namespace)
        return watched

    def release_idle(self) -> list[str]:
        """Release every namespace not read nor written for `idle_seconds` (but the one
        kept, and one with a read in flight): its informers end, their watches cut, and are
        waited on. The namespaces released."""
        now = self._clock()
        with self._lock:
            if self._stopped:
                return []
            released = self._idle_namespaces(now)
            self._forget(released)
        self._signal(released, now)
        self._join([i for _, w in released for i in w.informers.values()])
        return [name for name, _ in released]

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            watched = list(self._namespaces.values())
            informers = [i for w in watched for i in w.informers.values()]
            informers += self._ending
            keeper = self._keeper
        self._wake.set()
        for informer in informers:  # all told first: they end together, not one by one
            informer.signal()
        deadline = time.monotonic() + timeout
        for one in watched:  # a `watch` still starting them: a thread is joined once started
            one.started.wait(max(0.0, deadline - time.monotonic()))
        for informer in informers:
            informer.join(max(0.0, deadline - time.monotonic()))
        if keeper is not None:
            keeper.join(max(0.0, deadline - time.monotonic()))

    def watched(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._namespaces)

    def live(self, namespace: str) -> bool:
        """A look (a probe's, a test's), not a read: it keeps no namespace from release."""
        with self._lock:
            watched = self._namespaces.get(namespace)
        return watched is not None and watched.snapshots() is not None

    def _idle_namespaces(self, now: float) -> list[tuple[str, _Watched]]:
        """Under the lock: the namespaces that may be released, least recently used first."""
        idle = [(name, w) for name, w in self._namespaces.items()
                if not w.keep and not w.readers and now - w.used >= self._idle]
        return sorted(idle, key=lambda item: item[1].used)

    def _forget(self, released: list[tuple[str, _Watched]]) -> None:
        """Under the lock: no longer read; their informers are waited on until they end."""
        for name, watched in released:
            del self._namespaces[name]
            self._ending.update(watched.informers.values())

    def _signal(self, released: list[tuple[str, _Watched]], now: float) -> None:
        for name, watched in released:
            for informer in watched.informers.values():
                informer.signal()
            log.info("released namespace %s: not read for %.0f s", name, now - watched.used)

    def _join(self, informers: Collection[Informer[Any]]) -> None:
        """Wait for released informers to end: at most their longest request, cut or not
        (a list in flight, a watch being opened), after which their loop sees the signal."""
        timing = self._timing
        deadline = time.monotonic() + timing.connect_seconds + max(
            timing.list_seconds, timing.watch_seconds + timing.grace_seconds)
        for informer in informers:
            informer.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._ending.difference_update(informers)

    def _start_keeper(self) -> None:
        """Under the lock: the cache's own thread, from the first namespace watched."""
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keep, name="namespace cache keeper",
                                            daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        """Wait on the informers `watch` released, and release idle namespaces every
        `RELEASE_EVERY_SECONDS`, until stopped."""
        due = time.monotonic() + RELEASE_EVERY_SECONDS
        while True:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            with self._lock:
                if self._stopped:
                    return
                ending = list(self._ending)
            try:
                self._join(ending)
                if time.monotonic() >= due:
                    due = time.monotonic() + RELEASE_EVERY_SECONDS
                    self.release_idle()
            except Exception:  # a bug must not end the thread: namespaces would stay watched
                log.exception("namespace cache: releasing idle namespaces failed")

    @contextmanager
    def _reading(self, namespace: str) -> Iterator[_Watched | None]:
        """The namespace's informers, used now, and not released while this read lasts."""
        now = self._clock()
        with self._lock:
            watched = self._namespaces.get(namespace)
            if watched is not None:
                watched.used = now
                watched.readers += 1
        try:
            yield watched
        finally:
            if watched is not None:
                with self._lock:
                    watched.readers -= 1

    def _snapshots(self, namespace: str, fresh: dict[Key, tuple[str, ...]] | None = None,
                   ) -> dict[Key, Snapshot[Any]] | None:
        with self._reading(namespace) as watched:
            return watched.snapshots(fresh) if watched is not None else None

    def _informers(self, namespace: str) -> dict[Key, Informer[Any]]:
        def custom(group: str, version: str, plural: str,
                   keep: Callable[[Obj], Any]) -> tuple[Key, Informer[Any]]:
            lister = partial(self._objects.list_namespaced_custom_object, group, version,
                             namespace, plural)
            return (group, plural), Informer(f"{plural}.{group} in {namespace}", lister, keep,
                                             timing=self._timing)

        def core(key: Key, lister: Callable[..., Any],
                 keep: Callable[[Obj], Any]) -> tuple[Key, Informer[Any]]:
            return key, Informer(f"{key[1]} in {namespace}", partial(lister, namespace), keep,
                                 timing=self._timing)

        made = [custom(group, POOL_VERSIONS[group], POOLS, partial(_pool, group=group))
                for group, _ in POOL_KEYS]
        made += [custom(group, EPP_VERSION, OBJECTIVES, objective_facts)
                 for group in self._epp_groups]
        made += [custom(group, EPP_VERSION, REWRITES, _whole) for group in self._epp_groups]
        made += [custom(ROUTE_GROUP, ROUTE_VERSION, ROUTES[1], _whole),
                 core(PODS, self._core.list_namespaced_pod, pod_facts),
                 core(SERVICES, self._core.list_namespaced_service, _service_name)]
        return dict(made)

    # -- reads --------------------------------------------------------------------------------

    def facts(self, namespace: str, *, route: str | None = None,
              rewrite: str | None = None, wait: bool = True) -> ClusterFacts | None:
        """What `ClusterReader.read` would read, from the cache; None when it is not live, or
        behind the bot's own write of `route` or `rewrite` (the target the gates decide on,
        whose owners they read) once `wait` has given the watch `own_write_wait_seconds` to
        bring it. The bot's writes of the namespace's other targets change only weights and
        its own annotations, which no gate reads: they are not waited on."""
        own = (route,) if route else ()
        fresh: dict[Key, tuple[str, ...]] = {ROUTES: own}
        fresh.update({(group, REWRITES): (rewrite,) if rewrite else ()
                      for group in self._epp_groups})
        with self._reading(namespace) as watched:
            snaps = watched.snapshots(fresh, wait=wait) if watched is not None else None
        if watched is None or snaps is None:
            return None
        base = watched.base(snaps, partial(self._base, namespace))
        route_obj = next((o for o in snaps[ROUTES].items if o["metadata"]["name"] == route),
                         None) if route else None
        if route_obj is None:
            return base
        return replace(base, route=object_facts(route_obj, kind="HTTPRoute", group=ROUTE_GROUP))

    def _base(self, namespace: str, snaps: dict[Key, Snapshot[Any]]) -> ClusterFacts:
        """What the gates read of the namespace but its route."""
        pools: list[PoolFacts] = []
        served: set[str] = set()
        for key in POOL_KEYS:
            if snaps[key].served:
                served.add(key[0])
                pools += snaps[key].items
        objective_group = self._first_served(snaps, OBJECTIVES)
        rewrite_group = self._first_served(snaps, REWRITES)
        objectives: tuple[ObjectiveFacts, ...] = snaps[(objective_group, OBJECTIVES)].items \
            if objective_group else ()
        rewrites = snaps[(rewrite_group, REWRITES)].items if rewrite_group else ()
        pods: tuple[PodFacts, ...] = snaps[PODS].items
        return ClusterFacts(
            namespace=namespace, served_pool_groups=frozenset(served), pools=tuple(pools),
            objective_group=objective_group, objectives=objectives,
            rewrite_group=rewrite_group,
            rewrites=tuple(rewrite_facts(r, rewrite_group or "") for r in rewrites),
            pods=pods, services=frozenset(s for s in snaps[SERVICES].items if s),
            pod_labels=label_index(pods),
        )

    def _first_served(self, snaps: dict[Key, Snapshot[Any]], plural: str) -> str | None:
        """The endpoint picker reads the first group it finds served (as ClusterReader)."""
        return next((g for g in self._epp_groups if snaps[(g, plural)].served), None)

    def wrote(self, kind: Kind, namespace: str, obj: Obj) -> None:
        """The bot wrote `obj`: its informer is not read until its watch has brought it
        (a use of the namespace: not released while the write may be waited on)."""
        with self._reading(namespace) as watched:
            informer = watched.informers.get((kind.group, kind.plural)) if watched else None
            meta = obj.get("metadata") or {}
            if informer is not None and meta.get("resourceVersion"):
                informer.expect(str(meta.get("name")), str(meta["resourceVersion"]))

    def _kept_whole(self, key: Key) -> bool:
        return key == ROUTES or (key[1] == REWRITES and key[0] in self._epp_groups)

    def held(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """One route or rewrite while its informer is live and has the bot's own last write
        of it, else None (the caller reads it); NotFound when the namespace has none of that
        name, as a GET answers."""
        key = (kind.group, kind.plural)
        if not self._kept_whole(key):
            return None
        with self._reading(namespace) as watched:
            informer = watched.informers.get(key) if watched is not None else None
            held = informer.item(name) if informer is not None else None
        if held is None:
            return None
        if held.item is None:
            raise NotFound(f"{kind.describe(namespace, name)} not found")
        obj: Obj = held.item
        return obj

    def listed(self, kind: Kind, namespace: str) -> list[Obj] | None:
        """The objects of a kind kept whole (routes, rewrites) while the namespace is live, else
        None (the caller lists it); NotFound when the cluster does not serve the kind, as a
        direct list answers."""
        key = (kind.group, kind.plural)
        if not self._kept_whole(key):
            return None
        snaps = self._snapshots(namespace)
        if snaps is None:
            return None
        if not snaps[key].served:
            raise NotFound(f"{kind.title} is not served in {namespace}")
        return list(snaps[key].items)


def _pool(obj: Obj, *, group: str) -> PoolFacts:
    return pool_facts(obj, group)


#: namespace reads past the cache at once, in one process (each is seven to nine requests)
DIRECT_READS = 4


class _Flight:
    """One direct read of a namespace's lists, shared by every caller that asked before it
    began; `facts` None once done: the cache was back when its turn came."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.facts: ClusterFacts | None = None
        self.error: BaseException | None = None
        self.sharing = 1  # the callers it answers


class _Namespace:
    """Kept while some caller reads the namespace, so that a namespace asked once (a
    mistyped one too) leaves nothing behind."""

    def __init__(self) -> None:
        self.serial = threading.Lock()  # one read of the namespace at a time
        self.next: _Flight | None = None  # the read the callers waiting now will share
        self.callers = 0  # in `_shared` now


class WatchedFacts:
    """The ClusterFactsReader port: the cache while it is live, else the cluster itself.

    Reads past the cache take turns, `direct_reads` at a time: the cache is not live mostly
    because the cluster is too slow to answer its lists in time, and then every step reading
    the namespace itself (seven to nine requests instead of none) kept it too slow for the
    cache ever to come back. A namespace is read once at a time, and the callers waiting
    meanwhile share the next read of it: its lists are the same for every target in it (each
    caller still GETs its own route). A read shared began after each of its callers asked,
    so it holds what each wrote before asking. A read whose turn came asks the cache again
    first."""

    def __init__(self, cache: NamespaceCache, direct: ClusterReader, *,
                 direct_reads: int = DIRECT_READS) -> None:
        self._cache = cache
        self._direct = direct
        self._turns = threading.BoundedSemaphore(direct_reads)
        self._lock = threading.Lock()
        self._namespaces: dict[str, _Namespace] = {}

    def read(self, namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        """A namespace read directly is watched from then on: one the bot may not read (or a
        mistyped one it was refused) starts nothing."""
        cached = self._cache.facts(namespace, route=route, rewrite=rewrite)
        if cached is not None:
            return cached
        facts = self._shared(namespace)
        if facts is None:  # the cache came back while this waited: no second wait on it
            cached = self._cache.facts(namespace, route=route, rewrite=rewrite, wait=False)
            if cached is not None:
                return cached
            facts = self._behind(namespace, rewrite=rewrite)
        self._cache.watch(namespace)
        return replace(facts, route=self._direct.read_route(namespace, route)) if route \
            else facts

    def _behind(self, namespace: str, *, rewrite: str | None) -> ClusterFacts:
        """The cache is live but has not brought this caller's own write of its target. A
        route's is read fresh by the caller (`read_route`), over the cache's lists; a
        rewrite's is among the lists, which are then read past the cache, in a turn. Each such
        caller read the namespace itself, outside the turns: under the slow watch the turns
        exist for, every step at the cluster at once."""
        if rewrite is None:
            lists = self._cache.facts(namespace, wait=False)
            if lists is not None:
                return lists
        with self._turns:
            return self._direct.read_namespace(namespace)

    def _shared(self, namespace: str) -> ClusterFacts | None:
        """The next read of the namespace's lists to begin, shared with every caller that
        asks before it begins; None when, its turn come, the cache was back."""
        with self._lock:
            state = self._namespaces.setdefault(namespace, _Namespace())
            state.callers += 1
        try:
            return self._share(namespace, state)
        finally:
            with self._lock:
                state.callers -= 1
                if not state.callers:
                    del self._namespaces[namespace]

    def _share(self, namespace: str, state: _Namespace) -> ClusterFacts | None:
        with self._lock:
            flight, leading = state.next, state.next is None
            if flight is None:
                flight = state.next = _Flight()
            else:
                flight.sharing += 1
        if not leading:
            flight.done.wait()
        else:
            with state.serial, self._turns:
                with self._lock:
                    state.next = None  # whoever asks from now on shares the read after this
                try:
                    if self._cache.facts(namespace, wait=False) is None:
                        flight.facts = self._direct.read_namespace(namespace)
                except BaseException as exc:
                    flight.error = exc
                finally:
                    flight.done.set()
        if flight.error is not None:
            raise flight.error
        return flight.facts
