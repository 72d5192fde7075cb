"""Shared fixtures for the integration tier."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bot.cli import main
from bot.kube import request_retries
from rollout.adapters.change_feed import ChangeFeed
from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.fenced import Kind
from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.rewrite import RewriteSplit
from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.namespace_cache import NamespaceCache, WatchedFacts
from rollout.adapters.store import RedisStore
from rollout.domain.clock import ManualClock, SystemClock
from rollout.domain.models import Actor
from rollout.redis_connect import connect
from rollout.service import Gates, RolloutService, ServiceOptions
from sandbox.kube import KubeEmulator
from sandbox.redis_server import RedisServer
from tests.support.crds import official_crds
from tests.support.kube_api import close_api
from tests.support.real_cluster import RealCluster

# ---- the Kubernetes API emulator (sandbox.kube), for the emulator's own tests ---------------
# The bot's tests run against the real API server: the `cluster` fixture (tests/conftest.py).


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A started emulator with the demo seed, on its own free port."""
    emulator = KubeEmulator(seed="demo", port=0, crds=official_crds())
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def kube_kubeconfig(kube_emulator: KubeEmulator, tmp_path: Path) -> Path:
    """A kubeconfig the emulator wrote, pointing at it."""
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_api(kube_emulator: KubeEmulator) -> Iterator[client.ApiClient]:
    """An official-client ApiClient talking to the emulator."""
    configuration = client.Configuration()
    configuration.host = kube_emulator.url
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        close_api(api)


# ---- Redis and the rollout service over real processes --------------------------------------



ALICE = Actor(id="cli:alice", name="cli:alice", via="cli")
BOB = Actor(id="cli:bob", name="cli:bob", via="cli")
CAROL = Actor(id="cli:carol", name="cli:carol", via="cli")
_prefixes = itertools.count()
_prefix_lock = threading.Lock()


def unique_prefix() -> str:
    with _prefix_lock:
        return f"t{next(_prefixes)}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the tests that do not stop it; each test gets its own prefix."""
    with RedisServer() as server:
        yield server


@dataclass
class World:
    """The rollout service wired to a real Redis and the real API server (routes and
    rewrites, as production wires it), for one test."""

    emulator: RealCluster
    store: RedisStore
    service: RolloutService
    clock: ManualClock
    api: client.ApiClient
    feed: ChangeFeed | None = None

    def route(self, name: str = "routes-to-llm") -> dict[str, Any]:
        obj = self.emulator.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                       "default", name)
        assert obj is not None
        return obj

    def weights(self, name: str = "routes-to-llm", rule: int = 0) -> dict[str, int]:
        refs = self.route(name)["spec"]["rules"][rule]["backendRefs"]
        return {ref["name"]: ref.get("weight", 1) for ref in refs}

    def route_patches(self, name: str = "routes-to-llm") -> int:
        return sum(1 for r in self.emulator.requests
                   if r.verb == "patch" and r.resource == "httproutes" and r.name == name
                   and r.status < 300)


def make_world(emulator: RealCluster, redis_url: str, *, lock_ttl: float = 30.0,
               timeout: tuple[float, float] = (2.0, 5.0), prefix: str | None = None,
               sentinels: tuple[str, ...] = (), cache: NamespaceCache | None = None,
               feed: bool = False, retention_seconds: float = 0.0) -> World:
    """`cache`: the namespace cache serve and the scheduler read through (else direct reads,
    as the CLI). `feed`: the store announces its writes (`World.feed`), as production's."""
    configuration = emulator.bot_configuration()
    configuration.retries = request_retries()  # as the production client
    api = client.ApiClient(configuration)
    key_prefix = prefix or unique_prefix()
    redis_client = connect(redis_url, sentinels=sentinels)
    announced = ChangeFeed.of_install(redis_client, key_prefix) if feed else None
    store = RedisStore(redis_client, prefix=key_prefix, lock_ttl_seconds=lock_ttl,
                       feed=announced, retention_seconds=retention_seconds)
    clock = ManualClock()
    objects = client.CustomObjectsApi(api)
    traffic = TrafficRouter(routes=HTTPRouteSplit(objects, timeout=timeout, cache=cache),
                            rewrites=RewriteSplit(objects, timeout=timeout, cache=cache))
    direct = ClusterReader(objects, CoreLists(api), timeout=timeout)
    gates = Gates(facts=direct if cache is None else WatchedFacts(cache, direct),
                  freezes=FreezeStore(store.client, prefix=key_prefix))
    service = RolloutService(store=store, traffic=traffic, clock=clock, gates=gates,
                             options=ServiceOptions())
    return World(emulator=emulator, store=store, service=service, clock=clock, api=api,
                 feed=announced)


class TrailingCache:
    """A namespace cache the last change has not reached: one object as it was (a tick's
    copy of its target that trails the cluster)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def listed(self, kind: Kind, namespace: str) -> list[dict[str, Any]] | None:
        return None

    def wrote(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> None:
        pass

    def held(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.obj if name == self.obj["metadata"]["name"] else None


@pytest.fixture
def live_world(cluster: RealCluster, redis_server: RedisServer) -> Iterator[World]:
    """A world on the system clock, for a scheduler that runs in real time."""
    w = make_world(cluster, redis_server.url)
    w.service.clock = SystemClock()
    yield w
    w.store.client.close()
    close_api(w.api)


@pytest.fixture
def world(cluster: RealCluster, redis_server: RedisServer) -> Iterator[World]:
    w = make_world(cluster, redis_server.url)
    try:
        yield w
    finally:
        w.store.client.close()
        close_api(w.api)


# ---- the CLI, in-process ----------------------------------------------------------------------


class Cli:
    def __init__(self, kubeconfig: Path, redis_url: str) -> None:
        self.base = ["--kubeconfig", str(kubeconfig), "--redis-url", redis_url]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main([*argv, *self.base], out=out, err=err)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(cluster_kubeconfig: Path, redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("ROLLOUT_KEY_PREFIX", unique_prefix())
    yield Cli(cluster_kubeconfig, redis_server.url)
