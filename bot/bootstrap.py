"""The composition root: builds Redis, Kubernetes and the service from settings, once.

Nothing is created at import time; entry points (serve, CLI, sandbox) call `build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client

from bot import kube
from bot.settings import Settings
from rollout.adapters.analysis_file import load_analyses
from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.rewrite import RewriteSplit
from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.prometheus import PrometheusAnalysis
from rollout.adapters.store import RedisStore
from rollout.domain.clock import Clock, SystemClock
from rollout.domain.preflight import CapacityPolicy
from rollout.redis_connect import connect
from rollout.service import Gates, Listener, RolloutService, ServiceOptions


@dataclass
class Container:
    settings: Settings
    store: RedisStore
    kube_api: client.ApiClient
    service: RolloutService
    clock: Clock
    listeners: list[Listener] = field(default_factory=list)

    def close(self) -> None:
        self.store.client.close()
        self.kube_api.close()  # type: ignore[no-untyped-call]


def build(settings: Settings, *, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    redis_client = connect(settings.redis_url, sentinels=settings.redis_sentinels,
                           master=settings.redis_sentinel_master,
                           sentinel_password=settings.redis_sentinel_password or None)
    lock_ttl = settings.seconds(settings.rollout_lock_ttl) or 15
    store = RedisStore(redis_client, prefix=settings.rollout_key_prefix,
                       lock_ttl_seconds=lock_ttl)
    api = kube.api_client(settings.kubeconfig)
    timeout = settings.rollout_kube_timeout
    objects, timeouts = kube.custom_objects(api), (min(timeout, 3.0), timeout)
    traffic = TrafficRouter(routes=HTTPRouteSplit(objects, timeout=timeouts),
                            rewrites=RewriteSplit(objects, timeout=timeouts))
    listeners: list[Listener] = []
    prometheus = PrometheusAnalysis(settings.prometheus_url) if settings.prometheus_url \
        else None
    options = ServiceOptions(
        analyses=load_analyses(settings.rollout_analysis_file or None), analysis=prometheus,
        self_approval=settings.rollout_self_approval,
        reminder_seconds=settings.seconds(settings.rollout_reminder),
        approval_timeout_seconds=settings.seconds(settings.rollout_approval_timeout),
        keep_seconds=settings.seconds(settings.rollout_keep) or 0,
        listeners=listeners, lock_renew_seconds=lock_ttl / 3,
    )
    gates = Gates(
        facts=ClusterReader(objects, client.CoreV1Api(api), timeout=timeouts),
        freezes=FreezeStore(store.client, prefix=settings.rollout_key_prefix),
        capacity=CapacityPolicy(minimum=settings.rollout_capacity_minimum,
                                headroom_percent=settings.rollout_capacity_headroom,
                                rollback_percent=settings.rollout_rollback_ready_percent),
    )
    service = RolloutService(store=store, traffic=traffic, clock=clock, gates=gates,
                             options=options)
    return Container(settings=settings, store=store, kube_api=api, service=service, clock=clock,
                     listeners=listeners)
