"""The composition root: builds Redis, Kubernetes and the service from settings, once.

Nothing is created at import time; entry points (serve, CLI, sandbox) call `build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client

from bot import kube
from bot.graceful_stop import Deadline
from bot.settings import Settings, retention_seconds
from handlers.workers import DEFAULT_WORKERS
from rollout.adapters.analysis_file import load_analyses
from rollout.adapters.change_feed import ChangeFeed
from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.informer import WatchTiming
from rollout.adapters.kube.rewrite import RewriteSplit
from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.namespace_cache import NamespaceCache, WatchedFacts
from rollout.adapters.prometheus import PrometheusAnalysis
from rollout.adapters.store import RedisStore
from rollout.adapters.tick_holds import RedisTickHolds
from rollout.ahead_lane import AHEAD_THREADS
from rollout.domain.clock import Clock, SystemClock
from rollout.domain.preflight import CapacityPolicy
from rollout.lock_keeper import LockKeeper
from rollout.redis_connect import connect
from rollout.scheduler import LEADER_JOBS
from rollout.service import Gates, Listener, RolloutService, ServiceOptions


@dataclass
class Container:
    settings: Settings
    store: RedisStore
    kube_api: client.ApiClient
    service: RolloutService
    clock: Clock
    listeners: list[Listener] = field(default_factory=list)
    cache: NamespaceCache | None = None
    cache_api: client.ApiClient | None = None
    #: this replica's writes announced to the leader; the leader's subscription
    feed: ChangeFeed | None = None
    _closed: bool = field(default=False, init=False, repr=False)

    def close(self, timeout: float | Deadline = 5.0) -> None:
        """End the namespace cache's watches (waiting within `timeout`, seconds or the
        process' stop deadline) and close the clients; a second close does nothing."""
        if self._closed:
            return
        self._closed = True
        if self.cache is not None:
            self.cache.stop(Deadline.of(timeout).remaining())
        if self.cache_api is not None:
            self.cache_api.close()  # type: ignore[no-untyped-call]
        self.store.client.close()
        self.kube_api.close()  # type: ignore[no-untyped-call]


def kube_connections(tick_threads: int) -> int:
    """One connection for each thread that may call the API at once (the scheduler's ticks,
    the Slack work pool, the leader's own jobs, the ahead lane, and `/readyz`'s check): past
    the pool's size urllib3 drops a connection after each request, and every later one pays
    a new TLS handshake."""
    return tick_threads + DEFAULT_WORKERS + LEADER_JOBS + AHEAD_THREADS + 1


def build(settings: Settings, *, clock: Clock | None = None, watch: bool = False) -> Container:
    """`watch`: a long-running process (serve, scheduler, sandbox) keeps the namespaces it
    reads in a watch-backed cache (unless ROLLOUT_WATCH_SECONDS is 0); the CLI reads directly."""
    clock = clock or SystemClock()
    redis_client = connect(settings.redis_url, sentinels=settings.redis_sentinels,
                           master=settings.redis_sentinel_master,
                           sentinel_password=settings.redis_sentinel_password or None)
    lock_ttl = settings.seconds(settings.rollout_lock_ttl) or 15
    feed = ChangeFeed.of_install(redis_client, settings.rollout_key_prefix)
    store = RedisStore(redis_client, prefix=settings.rollout_key_prefix,
                       lock_ttl_seconds=lock_ttl, feed=feed,
                       retention_seconds=retention_seconds(settings.rollout_retention))
    api = kube.api_client(settings.kubeconfig,
                          connections=kube_connections(settings.rollout_tick_threads))
    timeout = settings.rollout_kube_timeout
    objects, timeouts = kube.custom_objects(api), (min(timeout, 3.0), timeout)
    cache, cache_api = _cache(settings) if watch and settings.rollout_watch_seconds else \
        (None, None)
    traffic = TrafficRouter(routes=HTTPRouteSplit(objects, timeout=timeouts, cache=cache),
                            rewrites=RewriteSplit(objects, timeout=timeouts, cache=cache))
    listeners: list[Listener] = []
    prometheus = PrometheusAnalysis(
        settings.prometheus_url,
        bearer_token_file=settings.prometheus_bearer_token_file or None,
        headers=settings.prometheus_headers) if settings.prometheus_url else None
    options = ServiceOptions(
        analyses=load_analyses(settings.rollout_analysis_file or None), analysis=prometheus,
        self_approval=settings.rollout_self_approval,
        reminder_seconds=settings.seconds(settings.rollout_reminder),
        approval_timeout_seconds=settings.seconds(settings.rollout_approval_timeout),
        keep_seconds=settings.seconds(settings.rollout_keep) or 0,
        listeners=listeners, lock_keeper=LockKeeper(lock_ttl / 3),
        tick_holds=RedisTickHolds(redis_client, clock=clock,
                                  prefix=settings.rollout_key_prefix),
    )
    direct = ClusterReader(objects, CoreLists(api), timeout=timeouts)
    gates = Gates(
        facts=WatchedFacts(cache, direct) if cache is not None else direct,
        freezes=FreezeStore(store.client, prefix=settings.rollout_key_prefix),
        capacity=CapacityPolicy(minimum=settings.rollout_capacity_minimum,
                                headroom_percent=settings.rollout_capacity_headroom,
                                rollback_percent=settings.rollout_rollback_ready_percent),
    )
    service = RolloutService(store=store, traffic=traffic, clock=clock, gates=gates,
                             options=options)
    return Container(settings=settings, store=store, kube_api=api, service=service, clock=clock,
                     listeners=listeners, cache=cache, cache_api=cache_api, feed=feed)


def _cache(settings: Settings) -> tuple[NamespaceCache, client.ApiClient]:
    """The namespace cache on a client of its own: each watch holds a connection open."""
    max_namespaces = 32
    api = kube.api_client(settings.kubeconfig, connections=10 * max_namespaces)
    timeout = settings.rollout_kube_timeout
    timing = WatchTiming(watch_seconds=settings.rollout_watch_seconds,
                         connect_seconds=min(timeout, 3.0), list_seconds=max(timeout, 10.0))
    cache = NamespaceCache(kube.custom_objects(api), CoreLists(api), timing=timing,
                           max_namespaces=max_namespaces)
    # the default namespace is warm before a command, however long the bot was idle
    cache.watch(settings.rollout_namespace, keep=True)
    return cache, api
