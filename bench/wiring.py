"""A RolloutService in the benchmark's own process, wired as the bot wires it (the official
client with the bot's identity, the Redis store, the freeze store), for starting rollouts
and for timing a service approve."""

from __future__ import annotations

from kubernetes import client

from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.rewrite import RewriteSplit
from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.store import RedisStore
from rollout.domain.clock import SystemClock
from rollout.service import Gates, RolloutService


def service_for(api: client.ApiClient, store: RedisStore, prefix: str) -> RolloutService:
    objects = client.CustomObjectsApi(api)
    traffic = TrafficRouter(routes=HTTPRouteSplit(objects), rewrites=RewriteSplit(objects))
    gates = Gates(facts=ClusterReader(objects, CoreLists(api)),
                  freezes=FreezeStore(store.client, prefix=prefix))
    return RolloutService(store=store, traffic=traffic, clock=SystemClock(), gates=gates)
