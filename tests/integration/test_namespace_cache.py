"""The namespace cache against the real API server, as the bot (its RBAC), through the test's
proxy: it follows changes, resumes a watch without listing again, lists again on 410 Gone, is
not read while a watch is stalled or failing, and makes a step one GET and one PATCH."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from bot.bootstrap import build
from bot.settings import load_settings
from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.fenced import Kind
from rollout.adapters.kube.httproute import HTTPROUTE
from rollout.adapters.kube.informer import Informer, WatchTiming
from rollout.adapters.namespace_cache import IDLE_SECONDS, NamespaceCache, WatchedFacts
from rollout.domain.errors import ClusterUnavailable, Conflict, NotFound
from rollout.domain.facts import EPP_GROUPS, LEGACY_GROUP, LLMD_GROUP, POOL_GROUP
from rollout.domain.models import Phase, TargetKind
from rollout.domain.plan import build_plan
from rollout.service import Ref
from sandbox.kube.faults import Fault, RequestRecord
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, TrailingCache, World, make_world
from tests.integration.gate_support import apply_as, set_ready
from tests.support.gateway_controller import wait_until_settled
from tests.support.kube_api import close_api
from tests.support.polling import eventually
from tests.support.real_cluster import KubeWorld, RealCluster

NS = "default"
ROUTE = "routes-to-llm"
CANARY = "llm-pool-version-2"
ROUTE_PATH = (HTTPROUTE.group, HTTPROUTE.version, HTTPROUTE.plural)
FAST = WatchTiming(watch_seconds=1, grace_seconds=5.0, retry_seconds=0.1, recheck_seconds=2.0)


@pytest.fixture
def bot_api(cluster: RealCluster) -> Iterator[client.ApiClient]:
    configuration = cluster.bot_configuration()
    configuration.connection_pool_maxsize = 32
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        close_api(api)


def _cache(api: client.ApiClient, timing: WatchTiming | None = None) -> NamespaceCache:
    cache = NamespaceCache(client.CustomObjectsApi(api), CoreLists(api), timing=timing)
    cache.watch(NS)
    return cache


@pytest.fixture
def warm(bot_api: client.ApiClient) -> Iterator[NamespaceCache]:
    cache = _cache(bot_api)
    try:
        eventually(lambda: cache.live(NS), message="the cache synced")
        yield cache
    finally:
        cache.stop()


@pytest.fixture
def fast(bot_api: client.ApiClient) -> Iterator[NamespaceCache]:
    """Watches the server ends every second, so that a test sees them resumed."""
    cache = _cache(bot_api, FAST)
    try:
        eventually(lambda: cache.live(NS), message="the cache synced")
        yield cache
    finally:
        cache.stop()


def _direct(api: client.ApiClient) -> ClusterReader:
    return ClusterReader(client.CustomObjectsApi(api), CoreLists(api))


def _calls(cluster: RealCluster, verb: str, resource: str) -> list[RequestRecord]:
    return [r for r in cluster.requests if r.verb == verb and r.resource == resource]


def _version_asked(record: RequestRecord) -> int:
    return int(parse_qs(urlsplit(record.path).query)["resourceVersion"][0])


def test_the_cache_reads_what_a_direct_read_reads_and_follows_changes(
        cluster: RealCluster, bot_api: client.ApiClient, warm: NamespaceCache) -> None:
    direct = _direct(bot_api)
    assert warm.facts(NS, route=ROUTE) == direct.read(NS, route=ROUTE)

    set_ready(cluster, f"{CANARY}-0", False)
    apply_as(cluster, "argocd-controller", (90, 10))

    def followed() -> bool:
        facts = warm.facts(NS, route=ROUTE)
        assert facts is not None and facts.route is not None
        pod = next(p for p in facts.pods if p.name == f"{CANARY}-0")
        managers = {m.manager for m in facts.route.managed_fields}
        return not pod.ready and "argocd-controller" in managers

    eventually(followed, timeout=5.0, message="the cache saw the pod and the route change")
    # the server may still be writing the route's status: equal once the watch brought it
    eventually(lambda: warm.facts(NS, route=ROUTE) == direct.read(NS, route=ROUTE),
               timeout=5.0, message="the cache to read what a direct read reads")


def test_the_facts_are_built_again_only_when_more_than_the_routes_moved(
        cluster: RealCluster, bot_api: client.ApiClient, warm: NamespaceCache) -> None:
    """Routes move at every step; pools, pods and the rest seldom. The facts but the route
    (and the pods' label index in them) are kept between reads until one of those moves."""
    first = warm.facts(NS, route=ROUTE)
    assert first is not None and first.pod_labels is not None
    again = warm.facts(NS, route=ROUTE)
    assert again is not None and again.pod_labels is first.pod_labels

    apply_as(cluster, "argocd-controller", (90, 10))

    def route_followed() -> bool:
        facts = warm.facts(NS, route=ROUTE)
        assert facts is not None and facts.route is not None
        return "argocd-controller" in {m.manager for m in facts.route.managed_fields}

    eventually(route_followed, timeout=5.0, message="the cache saw the route change")
    after_route = warm.facts(NS, route=ROUTE)
    assert after_route is not None and after_route.pod_labels is first.pod_labels

    set_ready(cluster, f"{CANARY}-0", False)
    canary = next(p for p in first.pools if p.name == CANARY)

    def pod_followed() -> bool:
        facts = warm.facts(NS, route=ROUTE)
        assert facts is not None
        (pod,) = [p for p in facts.selectable(canary.selector) if p.name == f"{CANARY}-0"]
        return not pod.ready

    eventually(pod_followed, timeout=5.0, message="the label index to follow the pod")
    eventually(lambda: warm.facts(NS, route=ROUTE) == _direct(bot_api).read(NS, route=ROUTE),
               timeout=5.0, message="the cache to read what a direct read reads")


def test_a_deleted_object_leaves_the_cache(cluster: RealCluster,
                                           warm: NamespaceCache) -> None:
    # the client sends a dict body as it is; its hints name only its V1Service model
    cluster.world.core.create_namespaced_service(NS, {  # type: ignore[arg-type]
        "metadata": {"name": "short-lived"}, "spec": {"ports": [{"port": 80}]}})

    def services() -> frozenset[str]:
        facts = warm.facts(NS)
        assert facts is not None
        return facts.services

    eventually(lambda: "short-lived" in services(), timeout=5.0)
    cluster.world.core.delete_namespaced_service("short-lived", NS)
    eventually(lambda: "short-lived" not in services(), timeout=5.0)


def test_a_watch_that_ends_resumes_from_its_version_without_listing_again(
        cluster: RealCluster, fast: NamespaceCache) -> None:
    eventually(lambda: len(_calls(cluster, "watch", "httproutes")) >= 2, timeout=10.0,
               message="the server ended two route watches")
    apply_as(cluster, "argocd-controller", (80, 20))
    route = cluster.get_object(*ROUTE_PATH, NS, ROUTE)
    assert route is not None
    changed = int(route["metadata"]["resourceVersion"])
    eventually(lambda: any(_version_asked(w) >= changed
                           for w in _calls(cluster, "watch", "httproutes")), timeout=10.0,
               message="a watch resumed from the change's version")
    watches = _calls(cluster, "watch", "httproutes")
    versions = [_version_asked(w) for w in watches]
    assert versions == sorted(versions)
    assert len(_calls(cluster, "list", "httproutes")) == 1  # listed once, at the start

    def seen() -> bool:  # between two watches the cache is not read: wait for the next
        facts = fast.facts(NS, route=ROUTE)
        assert facts is not None and facts.route is not None
        return "argocd-controller" in {m.manager for m in facts.route.managed_fields}

    eventually(seen, timeout=5.0, message="the change read from the cache")


def test_410_gone_on_the_watch_lists_again(cluster: RealCluster,
                                           fast: NamespaceCache) -> None:
    assert len(_calls(cluster, "list", "httproutes")) == 1
    cluster.inject(Fault(verb="watch", resource="httproutes", status=410))
    eventually(lambda: len(_calls(cluster, "list", "httproutes")) == 2, timeout=10.0,
               message="the route informer listed again")
    eventually(lambda: fast.live(NS), timeout=5.0, message="live again after the relist")


def test_an_expired_version_in_the_watch_stream_lists_again(bot_api: client.ApiClient,
                                                            cluster: RealCluster) -> None:
    """The real server answers a watch from a version it no longer has with a 200 stream
    carrying one ERROR event, code 410: asked for version 1, the informer lists again."""
    objects = client.CustomObjectsApi(bot_api)
    asked: list[str | None] = []

    def lister(**query: Any) -> Any:
        if query.get("watch"):
            if not asked:
                query["resource_version"] = "1"
            asked.append(query["resource_version"])
        return objects.list_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NS, "httproutes", **query)

    informer: Informer[Any] = Informer("routes", lister, lambda o: o, timing=FAST)
    informer.start()
    try:
        eventually(lambda: len(_calls(cluster, "list", "httproutes")) == 2 and informer.live,
                   timeout=10.0, message="listed again after the expired version")
        assert asked[0] == "1" and asked[1] != "1"
    finally:
        informer.stop()


@pytest.mark.parametrize("fault", [
    Fault(verb="watch", resource="pods", status=None, stall_seconds=4.0),
    Fault(verb="watch", resource="services", status=500, count=20),
], ids=["stalled", "failing"])
def test_a_stalled_or_failing_watch_sends_reads_to_the_cluster(
        cluster: RealCluster, bot_api: client.ApiClient, fast: NamespaceCache,
        fault: Fault) -> None:
    reader = WatchedFacts(fast, _direct(bot_api))
    cluster.inject(fault)
    eventually(lambda: not fast.live(NS), timeout=5.0, message="the cache stopped being live")
    assert fast.facts(NS) is None
    before = len(_calls(cluster, "list", "pods"))
    facts = reader.read(NS, route=ROUTE)
    assert facts.pool(CANARY, POOL_GROUP) is not None
    assert len(_calls(cluster, "list", "pods")) == before + 1  # read directly
    cluster.clear_faults()
    eventually(lambda: fast.live(NS), timeout=10.0, message="live again once the watch is")


def _world(cluster: RealCluster, redis: RedisServer, cache: NamespaceCache) -> World:
    return make_world(cluster, redis.url, cache=cache)


def _api_calls(cluster: RealCluster) -> list[tuple[str, str]]:
    """What a command asked of the server (watches are the cache's own, not a command's)."""
    return [(r.verb, r.resource) for r in cluster.requests if r.verb != "watch"]


def test_a_step_with_a_warm_cache_is_one_get_and_one_patch(
        cluster: RealCluster, redis_server: RedisServer, warm: NamespaceCache) -> None:
    world = _world(cluster, redis_server, warm)
    try:
        world.service.start(namespace=NS, canary=CANARY, actor=ALICE,
                            plan=build_plan([10, 50, 100], interval_seconds=0))
        eventually(lambda: warm.live(NS))
        cluster.clear_requests()
        out = world.service.approve(Ref(canary=CANARY), actor=BOB)
        assert out.ok, out.message
        assert world.weights() == {"llm-pool": 90, CANARY: 10}
        assert _api_calls(cluster) == [("get", "httproutes"), ("patch", "httproutes")]
    finally:
        world.store.client.close()
        close_api(world.api)


def test_a_start_with_a_warm_cache_lists_nothing(
        cluster: RealCluster, redis_server: RedisServer, warm: NamespaceCache) -> None:
    world = _world(cluster, redis_server, warm)
    try:
        cluster.clear_requests()
        out = world.service.start(namespace=NS, canary=CANARY, actor=ALICE,
                                  plan=build_plan([10, 50, 100], interval_seconds=0))
        assert out.ok, out.message
        calls = _api_calls(cluster)
        # the two pools, the route found (which the first write starts from), its PATCH
        assert sorted(calls) == [("get", "httproutes"), ("get", "inferencepools"),
                                 ("get", "inferencepools"), ("patch", "httproutes")]
        # until the watch brings the bot's own write, reads go to the cluster (by design)
        eventually(lambda: warm.live(NS), timeout=5.0, message="the watch to bring the write")
        cluster.clear_requests()
        out = world.service.start(namespace=NS, canary="small-segment-lora-v2", actor=ALICE,
                                  rewrite="small-segment-lora",
                                  plan=build_plan([10, 50, 100], interval_seconds=0))
        assert out.ok, out.message
        assert [c for c in _api_calls(cluster) if c[0] == "list"] == []
    finally:
        world.store.client.close()
        close_api(world.api)


def test_stop_ends_every_informer_thread(bot_api: client.ApiClient) -> None:
    cache = _cache(bot_api)
    eventually(lambda: cache.live(NS), message="the cache synced")
    cache.stop()
    assert _informer_threads() == []


def _informer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("informer ")]


def test_serve_and_the_scheduler_build_the_cache_and_close_stops_it(
        cluster_kubeconfig: Path, redis_server: RedisServer) -> None:
    settings = load_settings(kubeconfig=str(cluster_kubeconfig), redis_url=redis_server.url)
    container = build(settings, watch=True)
    try:
        assert container.cache is not None
        eventually(lambda: container.cache is not None and container.cache.live(NS),
                   message="the default namespace is watched from the start")
        assert _informer_threads() != []
    finally:
        container.close()
    assert _informer_threads() == []


@pytest.mark.parametrize(("watch", "seconds"), [(False, 60), (True, 0)],
                         ids=["cli", "turned-off"])
def test_the_cli_and_a_watch_period_of_0_read_directly(
        cluster_kubeconfig: Path, redis_server: RedisServer, watch: bool, seconds: int) -> None:
    settings = load_settings(kubeconfig=str(cluster_kubeconfig), redis_url=redis_server.url,
                             rollout_watch_seconds=seconds)
    container = build(settings, watch=watch)
    try:
        assert container.cache is None
        assert isinstance(container.service.gates.facts, ClusterReader)
    finally:
        container.close()


def _lists_by_group(cluster: RealCluster) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for r in cluster.requests:
        if r.verb == "list":
            parts = urlsplit(r.path).path.split("/")
            group = parts[2] if parts[1] == "apis" else ""
            counts[(group, r.resource)] = counts.get((group, r.resource), 0) + 1
    return counts


def test_a_start_without_the_cache_lists_routes_and_rewrites_once_for_its_lookups(
        cluster: RealCluster, world: World) -> None:
    """The CLI's direct reads: the orphan check and locating the rule share one list per
    kind; the gates' own pass lists the rewrites of the group the endpoint picker reads."""
    cluster.clear_requests()
    out = world.service.start(namespace=NS, canary=CANARY, actor=ALICE,
                              plan=build_plan([10, 50, 100], interval_seconds=0))
    assert out.ok, out.message
    lists = _lists_by_group(cluster)
    assert lists[("gateway.networking.k8s.io", "httproutes")] == 1
    assert lists[("inference.networking.x-k8s.io", "inferencemodelrewrites")] == 1
    assert lists[("llm-d.ai", "inferencemodelrewrites")] == 2  # the lookups', the gates'


def test_a_kind_the_cluster_does_not_serve_is_recorded_as_not_served(
        cluster: RealCluster) -> None:
    """As the admin (the bot may not even ask about a group it is not granted)."""
    admin = cluster.world.admin
    groups = ("absent.example.com", LEGACY_GROUP)
    cache = NamespaceCache(client.CustomObjectsApi(admin), CoreLists(admin),
                           epp_groups=groups)
    cache.watch(NS)
    try:
        eventually(lambda: cache.live(NS), message="live with a kind not served")
        facts = cache.facts(NS, route=ROUTE)
        direct = ClusterReader(client.CustomObjectsApi(admin), CoreLists(admin),
                               epp_groups=groups).read(NS, route=ROUTE)
        assert facts == direct and facts.objective_group == LEGACY_GROUP
        absent = Kind("absent.example.com", "v1alpha2", "inferencemodelrewrites",
                      "InferenceModelRewrite")
        with pytest.raises(NotFound):
            cache.listed(absent, NS)
    finally:
        cache.stop()


def test_another_namespace_is_watched_once_read_and_a_refused_one_is_not(
        cluster: RealCluster, bot_api: client.ApiClient, warm: NamespaceCache) -> None:
    bot = WatchedFacts(warm, _direct(bot_api))
    with pytest.raises(ClusterUnavailable):  # the bot's RoleBinding is in default only
        bot.read("kube-system")
    assert warm.watched() == {NS}
    assert [f.split("?")[0] for f in cluster.forbidden] == [
        "GET /apis/inference.networking.k8s.io/v1/namespaces/kube-system/inferencepools"]
    cluster.proxy.forbidden.clear()  # refused on purpose
    admin = cluster.world.admin
    cache = NamespaceCache(client.CustomObjectsApi(admin), CoreLists(admin))
    try:
        facts = WatchedFacts(cache, _direct(admin)).read("kube-system")
        assert facts.namespace == "kube-system" and cache.watched() == {"kube-system"}
        eventually(lambda: cache.live("kube-system"), message="watched after the read")
    finally:
        cache.stop()


def _open_watches(cluster: RealCluster, plural: str) -> float:
    """The API server's own count of the watches open on a namespaced core kind."""
    admin = cluster.world.admin
    answer = admin.call_api(*admin.param_serialize(
        "GET", "/metrics", header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"]))
    answer.read()  # type: ignore[no-untyped-call]  # the body, into `data`
    text = answer.data.decode() if answer.data else ""
    labels = {"group": "", "resource": plural, "scope": "namespace", "verb": "WATCH"}
    for line in text.splitlines():
        found = re.fullmatch(r"apiserver_longrunning_requests\{(.*)\} (\S+)", line)
        if found and labels.items() <= dict(re.findall(r'(\w+)="([^"]*)"',
                                                       found[1])).items():
            return float(found[2])
    return 0.0


def test_a_namespace_nobody_reads_is_released_and_its_watches_end_at_the_server(
        cluster: RealCluster) -> None:
    """A cache of one namespace, idleness on a clock the test moves. As the admin (the bot's
    RoleBinding is in default only)."""
    admin = cluster.world.admin
    now = [0.0]
    cache = NamespaceCache(client.CustomObjectsApi(admin), CoreLists(admin), max_namespaces=1,
                           clock=lambda: now[0])
    reader = WatchedFacts(cache, _direct(admin))
    before = _open_watches(cluster, "pods")
    try:
        cache.watch(NS)
        eventually(lambda: cache.live(NS), message="the cache synced")
        eventually(lambda: _open_watches(cluster, "pods") == before + 1,
                   message="the server counts the pods watch")
        assert reader.read("kube-system").namespace == "kube-system"
        assert cache.watched() == {NS}  # default was used just now: kube-system read directly

        now[0] += IDLE_SECONDS
        assert reader.read("kube-system").namespace == "kube-system"
        assert cache.watched() == {"kube-system"}  # default, idle, made room for it
        eventually(lambda: not [t for t in _informer_threads() if t.endswith(f" in {NS}")],
                   message="the released namespace's threads ended")
        eventually(lambda: cache.live("kube-system"), message="kube-system synced")

        facts = reader.read(NS, route=ROUTE)  # read directly: kube-system was read just now
        assert facts.pool(CANARY, POOL_GROUP) is not None and facts.route is not None
        assert cache.watched() == {"kube-system"}

        now[0] += IDLE_SECONDS
        assert cache.release_idle() == ["kube-system"]
        assert _informer_threads() == []
        eventually(lambda: _open_watches(cluster, "pods") == before,
                   message="the server saw every watch of the released namespaces close")
    finally:
        cache.stop()


def test_a_group_that_stops_and_starts_being_served_is_followed(
        cluster: RealCluster, bot_api: client.ApiClient, kube_world: KubeWorld) -> None:
    """Its CRDs deleted under open watches, the llm-d.ai group reads as not served, and the
    objectives and rewrites come from the legacy group, as a direct read has them."""
    cache = _cache(bot_api, FAST)
    direct = _direct(bot_api)

    def groups() -> tuple[str | None, str | None]:
        facts = cache.facts(NS)
        assert facts is not None
        return facts.objective_group, facts.rewrite_group

    try:
        eventually(lambda: groups() == (LLMD_GROUP, LLMD_GROUP), message="synced")
        with kube_world.legacy_only():
            eventually(lambda: groups() == (LEGACY_GROUP, LEGACY_GROUP), timeout=10.0,
                       message="the legacy group read once llm-d.ai is gone")
            eventually(lambda: cache.facts(NS) == direct.read(NS), timeout=5.0)
        eventually(lambda: groups() == (LLMD_GROUP, LLMD_GROUP), timeout=15.0,
                   message="llm-d.ai read again once served")
    finally:
        cache.stop()


class _Behind:
    """A namespace cache a change has not reached yet: the lists as they were."""

    def __init__(self, cluster: RealCluster) -> None:
        route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", NS, ROUTE)
        assert route is not None
        self.routes = [route]

    def listed(self, kind: Kind, namespace: str) -> list[dict[str, Any]] | None:
        return list(self.routes) if kind.plural == "httproutes" else None

    def wrote(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> None:
        pass  # a cache that never catches up


def test_a_start_located_on_a_cache_behind_the_cluster_decides_on_a_fresh_read(
        cluster: RealCluster, world: World) -> None:
    """The rule's weights changed after the cache last heard (another replica's write, a
    person): the start reads the route it found again and decides on what it shows, as a
    start without the cache does; here the canary already has traffic, so it is refused and
    nothing is written (the stale cache would have taken 100/0 as the baseline)."""
    routes = world.service.traffic.adapters[TargetKind.ROUTE]  # type: ignore[attr-defined]
    routes.routes.cache = _Behind(cluster)
    apply_as(cluster, "platform-engineer", (80, 20))
    cluster.clear_requests()
    with pytest.raises(Conflict, match=r"already receives traffic \(weight 20\)"):
        world.service.start(namespace=NS, canary=CANARY, actor=ALICE, allow_gitops=True,
                            plan=build_plan([10, 50, 100], interval_seconds=0))
    assert world.route_patches() == 0 and world.weights() == {"llm-pool": 80, CANARY: 20}


def test_a_start_right_after_a_rollback_sees_the_rollback(
        cluster: RealCluster, redis_server: RedisServer, warm: NamespaceCache) -> None:
    """The bot's own write is read back from the cluster until the watch brings it: the
    cache never shows a rollout's weights after its rollback has landed."""
    world = _world(cluster, redis_server, warm)
    try:
        plan = build_plan([10, 50, 100], interval_seconds=0)
        for _ in range(5):
            out = world.service.start(namespace=NS, canary=CANARY, actor=ALICE, plan=plan)
            assert out.ok, out.message
            assert world.service.approve(Ref(canary=CANARY), actor=BOB).ok
            assert world.service.rollback(Ref(canary=CANARY), actor=BOB).ok
    finally:
        world.store.client.close()
        close_api(world.api)


def test_the_bots_own_write_is_read_from_the_cluster_until_the_watch_brings_it(
        bot_api: client.ApiClient, cluster: RealCluster) -> None:
    cache = _cache(bot_api, WatchTiming(own_write_seconds=1.0, own_write_wait_seconds=0.0))
    try:
        eventually(lambda: cache.live(NS), message="the cache synced")
        cache.wrote(HTTPROUTE, NS, {"metadata": {"name": ROUTE, "resourceVersion": "1"}})
        assert cache.facts(NS, route=ROUTE) is None and cache.listed(HTTPROUTE, NS) is None
        eventually(lambda: cache.live(NS), timeout=5.0,
                   message="a version the watch never brings is waited on for a while only")
        apply_as(cluster, "platform-engineer", (70, 30))
        route = cluster.get_object(*ROUTE_PATH, NS, ROUTE)
        assert route is not None
        cache.wrote(HTTPROUTE, NS, route)

        def caught_up() -> bool:  # the watch brought that version (or a later one came)
            listed = cache.listed(HTTPROUTE, NS)
            assert listed is not None
            (seen,) = [r for r in listed if r["metadata"]["name"] == ROUTE]
            weights = [ref["weight"] for ref in seen["spec"]["rules"][0]["backendRefs"]]
            return weights == [70, 30]

        eventually(caught_up, timeout=5.0, message="read from the cache once caught up")
    finally:
        cache.stop()


def test_a_write_the_watch_brought_before_its_answer_is_not_waited_on(
        bot_api: client.ApiClient, cluster: RealCluster) -> None:
    """The watch event of the bot's own PATCH can arrive before the PATCH's answer reaches
    the bot: the cache must not then wait `own_write_seconds` for a version it already has
    (every step of `serve` went to the cluster for five seconds after each write)."""
    cache = _cache(bot_api, WatchTiming(own_write_seconds=30.0))
    try:
        eventually(lambda: cache.live(NS), message="the cache synced")
        apply_as(cluster, "platform-engineer", (60, 40))
        route = cluster.get_object(*ROUTE_PATH, NS, ROUTE)
        assert route is not None

        def brought() -> bool:
            listed = cache.listed(HTTPROUTE, NS) or []
            return any(r["metadata"]["resourceVersion"] == route["metadata"]["resourceVersion"]
                       for r in listed)

        eventually(brought, timeout=5.0, message="the watch to bring the write")
        cache.wrote(HTTPROUTE, NS, route)  # the answer, arriving after the watch event
        assert cache.live(NS) and cache.listed(HTTPROUTE, NS) is not None
    finally:
        cache.stop()


def test_the_gates_wait_on_the_bots_own_write_of_their_target_only(
        bot_api: client.ApiClient) -> None:
    """A namespace where many rollouts step always has one of the bot's writes in flight:
    the gates of one step wait only for the bot's write of its own target (whose owners they
    read), never for another target's weights; a start's lookups wait for every one."""
    cache = _cache(bot_api, WatchTiming(own_write_seconds=30.0, own_write_wait_seconds=0.0))
    rewrites = Kind(EPP_GROUPS[0], "v1alpha2", "inferencemodelrewrites",
                    "InferenceModelRewrite")
    try:
        eventually(lambda: cache.live(NS), message="the cache synced")
        cache.wrote(HTTPROUTE, NS, {"metadata": {"name": "another-route", "resourceVersion": "1"}})
        assert cache.facts(NS, route=ROUTE) is not None
        assert cache.facts(NS, route="another-route") is None
        assert cache.listed(HTTPROUTE, NS) is None and not cache.live(NS)
        cache.wrote(rewrites, NS, {"metadata": {"name": "a-rewrite", "resourceVersion": "1"}})
        assert cache.facts(NS, rewrite="another-rewrite") is not None
        assert cache.facts(NS, rewrite="a-rewrite") is None
        assert cache.listed(rewrites, NS) is None
    finally:
        cache.stop()


def test_the_drift_watch_reads_the_cache_and_still_pauses_on_drift(
        cluster: RealCluster, redis_server: RedisServer, warm: NamespaceCache) -> None:
    """The scheduler's look at every active target each sweep costs no request while the
    cache is live; a weight changed by hand reaches it through the watch and pauses the
    rollout (decided under the lock on a fresh read)."""
    world = _world(cluster, redis_server, warm)
    try:
        started = world.service.start(namespace=NS, canary=CANARY, actor=ALICE,
                                      plan=build_plan([10, 50, 100], interval_seconds=0))
        assert started.rollout is not None
        rid = started.rollout.id
        assert world.service.approve(Ref(canary=CANARY), actor=BOB).ok
        eventually(lambda: warm.live(NS), timeout=5.0, message="the watch to bring the write")
        cluster.clear_requests()
        stepped = world.service.load([rid])[rid]
        assert stepped is not None
        assert world.service.watch(stepped) is None
        assert _api_calls(cluster) == []

        apply_as(cluster, "platform-engineer", (70, 30))

        def seen_by_the_cache() -> bool:
            held = warm.held(HTTPROUTE, NS, ROUTE)
            refs = held["spec"]["rules"][0]["backendRefs"] if held else []
            return [ref["weight"] for ref in refs] == [70, 30]

        eventually(seen_by_the_cache, timeout=5.0, message="the watch to bring the drift")
        outcome = world.service.watch(stepped)
        assert outcome is not None
        paused = world.service.load([rid])[rid]
        assert paused is not None and paused.phase is Phase.PAUSED
        assert world.weights() == {"llm-pool": 70, CANARY: 30}
    finally:
        world.store.client.close()
        close_api(world.api)


def _auto_at_first_step(world: World, cache: NamespaceCache | None = None) -> str:
    """An automatic rollout (no bake) at its first step, 10%: its next tick is due."""
    started = world.service.start(namespace=NS, canary=CANARY, actor=ALICE,
                                  plan=build_plan([10, 50, 100], interval_seconds=0,
                                                  auto=True))
    assert started.rollout is not None
    assert world.service.approve_plan(Ref(canary=CANARY), actor=BOB).ok
    assert world.service.tick(started.rollout.id).ok
    assert world.weights() == {"llm-pool": 90, CANARY: 10}
    if cache is not None:  # the copy current: the bot's write and the gateway's status after it
        wait_until_settled(world.emulator.world.objects, NS, ROUTE)

        def current() -> bool:
            held = cache.held(HTTPROUTE, NS, ROUTE)
            now = world.emulator.get_object(*ROUTE_PATH, NS, ROUTE)
            return held is not None and now is not None and \
                held["metadata"]["resourceVersion"] == now["metadata"]["resourceVersion"]

        eventually(current, timeout=5.0, message="the watch to bring the route as it is")
    return started.rollout.id



def test_a_tick_with_a_warm_cache_is_one_patch(
        cluster: RealCluster, redis_server: RedisServer, warm: NamespaceCache) -> None:
    """The tick decides on the cache's copy, which shows the bot's own last write: no GET."""
    world = _world(cluster, redis_server, warm)
    try:
        rid = _auto_at_first_step(world, warm)
        cluster.clear_requests()
        out = world.service.tick(rid)
        assert out.ok and out.changed, out.message
        assert world.weights() == {"llm-pool": 50, CANARY: 50}
        assert _api_calls(cluster) == [("patch", "httproutes")]
    finally:
        world.store.client.close()
        close_api(world.api)


def test_a_tick_on_a_copy_behind_a_person_edit_pauses_and_never_overwrites_it(
        cluster: RealCluster, world: World) -> None:
    """The copy trails a weight set by hand: the PATCH sent on it is refused for its
    resourceVersion, the tick reads the route and pauses for drift, the edit stays."""
    rid = _auto_at_first_step(world)
    before = cluster.get_object(*ROUTE_PATH, NS, ROUTE)
    assert before is not None
    routes = world.service.traffic.adapters[TargetKind.ROUTE]  # type: ignore[attr-defined]
    routes.routes.cache = TrailingCache(before)
    client.CustomObjectsApi(cluster.world.admin).patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", ROUTE,
        [{"op": "replace", "path": f"/spec/rules/0/backendRefs/{i}/weight", "value": weight}
         for i, weight in enumerate((70, 30))],
        _content_type="application/json-patch+json")
    cluster.clear_requests()
    world.service.tick(rid)
    paused = world.service.load([rid])[rid]
    assert paused is not None and paused.phase is Phase.PAUSED
    assert paused.pause is not None and "30" in paused.pause.reason
    assert world.weights() == {"llm-pool": 70, CANARY: 30}
    # the gates' read of the namespace (direct: this world's gates have no cache), the
    # PATCH refused on the copy's resourceVersion, the fresh read that finds the drift
    assert [c for c in _api_calls(cluster) if c[1] == "httproutes"] == \
        [("get", "httproutes"), ("patch", "httproutes"), ("get", "httproutes")]
    assert _patch_statuses(cluster) == [409]


def _patch_statuses(cluster: RealCluster) -> list[int]:
    return [r.status for r in cluster.requests if r.verb == "patch"]
