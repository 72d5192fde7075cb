"""The cluster facts adapter against the real API server, and each preflight refusal on what it
reads: every answer itemised, nothing in the cluster changed by asking.

The reader runs as the admin here, so that a test may read what the bot is not granted; the
service's own reads, as the bot, are in test_preflight_gates.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.kube.core_lists import CoreLists
from rollout.domain.facts import LEGACY_GROUP, LLMD_GROUP, POOL_GROUP, ClusterFacts
from rollout.domain.findings import Check, Outcome
from rollout.domain.gitops import check_gitops, describe, reverted_by
from rollout.domain.preflight import (
    CapacityPolicy,
    PreflightRequest,
    check_capacity,
    check_objectives,
    check_pool,
    check_rewrite,
    preflight,
)
from tests.integration.gate_support import apply_as, put_younger_rewrite, set_ready
from tests.support.real_cluster import RealCluster

NS = "default"
STABLE, CANARY = "llm-pool", "llm-pool-version-2"
ROUTE = "routes-to-llm"
START = PreflightRequest(stable=STABLE, canary=CANARY, gateways=("inference-gateway",))
POLICY = CapacityPolicy(minimum=2)
Obj = dict[str, Any]


@pytest.fixture
def reader(cluster: RealCluster) -> ClusterReader:
    admin = cluster.world.admin
    return ClusterReader(client.CustomObjectsApi(admin), CoreLists(admin))


@pytest.fixture
def pickers(cluster: RealCluster) -> Iterator[None]:
    """The endpoint picker Services of the two pools (the demo seed has them; a test that
    asks for them states it)."""
    core = cluster.world.core
    for pool in (STABLE, CANARY):
        with contextlib.suppress(ApiException):
            # the client sends a dict body as it is; its hints name only its V1Service model
            core.create_namespaced_service(NS, {  # type: ignore[arg-type]
                "metadata": {"name": f"{pool}-epp"},
                "spec": {"selector": {"app": f"{pool}-epp"},
                         "ports": [{"port": 9002, "targetPort": 9002}]}})
    try:
        yield
    finally:
        for pool in (STABLE, CANARY):
            with contextlib.suppress(ApiException):
                core.delete_namespaced_service(f"{pool}-epp", NS)


def _objects(cluster: RealCluster) -> client.CustomObjectsApi:
    return cluster.world.objects


def _unchanged(cluster: RealCluster, before: Obj) -> None:
    after = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", NS, ROUTE)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def _route(cluster: RealCluster) -> Obj:
    route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", NS, ROUTE)
    assert route is not None
    return route


def test_the_demo_world_reads_whole_and_passes(cluster: RealCluster, reader: ClusterReader,
                                               pickers: None) -> None:
    before = _route(cluster)
    facts = reader.read(NS, route=ROUTE)
    assert facts.served_pool_groups == {POOL_GROUP, LEGACY_GROUP}
    assert {p.name for p in facts.pools} == {"llm-pool", "llm-pool-version-2", "llm", "llm-new"}
    canary = facts.pool(CANARY, POOL_GROUP)
    assert canary is not None and canary.selector == {"app": CANARY}
    assert canary.target_ports == (8000,) and canary.picker is not None
    assert canary.picker.name == f"{CANARY}-epp" and canary.picker.port == 9002
    assert facts.objective_group == LLMD_GROUP and facts.rewrite_group == LLMD_GROUP
    assert len(facts.objectives) == 8 and len(facts.pods) == 8
    assert facts.route is not None and facts.route.managed_fields
    assert facts.route.gateways == ("inference-gateway",)  # the route's parentRefs
    verdict = preflight(facts, START, POLICY)
    assert verdict.ok, verdict.explain()
    _unchanged(cluster, before)


def test_a_missing_pool_is_refused_with_the_pools_there_are(
        cluster: RealCluster, reader: ClusterReader, pickers: None) -> None:
    facts = reader.read(NS)
    (finding,) = check_pool(facts, name="llm-pool-version-3")
    assert "InferencePool llm-pool-version-3 not found in namespace default" in finding.problem
    assert "llm, llm-new, llm-pool, llm-pool-version-2" in finding.remedy


def test_the_endpoint_picker_service_must_exist(cluster: RealCluster,
                                                reader: ClusterReader) -> None:
    cluster.world.core.delete_namespaced_service("llm-new-epp", NS)
    (finding,) = check_pool(reader.read(NS), name="llm-new")
    assert "endpoint picker Service llm-new-epp of InferencePool llm-new does not exist" \
        in finding.problem


def test_a_pool_being_deleted_is_refused(cluster: RealCluster, reader: ClusterReader,
                                         pickers: None) -> None:
    objects = _objects(cluster)
    args = (POOL_GROUP, "v1", NS, "inferencepools", CANARY)
    objects.patch_namespaced_custom_object(
        *args, {"metadata": {"finalizers": ["example.com/hold"]}})
    try:
        objects.delete_namespaced_custom_object(*args)
        verdict = preflight(reader.read(NS), START, POLICY)
        assert verdict.outcome is Outcome.REFUSE
        assert f"• [pool] InferencePool {CANARY} is being deleted" in verdict.explain()
    finally:
        objects.patch_namespaced_custom_object(*args, {"metadata": {"finalizers": None}})


def test_mismatched_objectives_list_every_difference(cluster: RealCluster,
                                                     reader: ClusterReader) -> None:
    objects = _objects(cluster)
    objects.delete_namespaced_custom_object(LLMD_GROUP, "v1alpha2", NS, "inferenceobjectives",
                                            f"{CANARY}-batch")
    objects.patch_namespaced_custom_object(LLMD_GROUP, "v1alpha2", NS, "inferenceobjectives",
                                           f"{CANARY}-chat", {"spec": {"priority": 5}})
    facts = reader.read(NS)
    stable, canary = facts.pool(STABLE, POOL_GROUP), facts.pool(CANARY, POOL_GROUP)
    assert stable is not None and canary is not None
    (finding,) = check_objectives(facts, stable=stable, canary=canary)
    assert finding.check is Check.OBJECTIVES
    assert f"missing on {CANARY}: batch (priority 0, as {STABLE}-batch on {STABLE})" \
        in finding.problem
    assert f"chat: priority 5 on {CANARY}, 10 on {STABLE}" in finding.problem


def test_a_canary_only_in_the_legacy_group_is_refused(cluster: RealCluster,
                                                      reader: ClusterReader) -> None:
    cluster.put_object({
        "apiVersion": f"{LEGACY_GROUP}/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": "llm-pool-version-3", "namespace": NS},
        "spec": {"selector": {"app": "llm-pool-version-3"}, "targetPortNumber": 8000,
                 "extensionRef": {"name": "llm-pool-version-3-epp"}},
    })
    facts = reader.read(NS)
    legacy = facts.pool("llm-pool-version-3", LEGACY_GROUP)
    assert legacy is not None and legacy.selector == {"app": "llm-pool-version-3"}
    assert legacy.target_ports == (8000,) and legacy.picker is not None
    (finding,) = check_pool(facts, name="llm-pool-version-3", group=POOL_GROUP)
    assert f"exists only as {LEGACY_GROUP}/v1alpha2, but the route refers to group " \
           f"{POOL_GROUP}" in finding.problem
    findings = check_pool(facts, name="llm-pool-version-3", group=LEGACY_GROUP)
    assert [f.problem for f in findings] == [
        "the endpoint picker Service llm-pool-version-3-epp of InferencePool "
        "llm-pool-version-3 does not exist"]


def _capacity(facts: ClusterFacts, share: int | None) -> tuple[Any, ...]:
    stable, canary = facts.pool(STABLE, POOL_GROUP), facts.pool(CANARY, POOL_GROUP)
    assert stable is not None and canary is not None
    return check_capacity(facts, stable=stable, canary=canary, share_percent=share,
                          policy=POLICY)


def test_too_few_ready_pods_wait_and_clear_when_pods_become_ready(
        cluster: RealCluster, reader: ClusterReader) -> None:
    set_ready(cluster, f"{CANARY}-0", False)
    (finding,) = _capacity(reader.read(NS), None)
    assert finding.outcome is Outcome.WAIT
    assert f"{CANARY} has 1 Ready endpoint: at least 2 are required" in finding.problem
    (step,) = _capacity(reader.read(NS), 100)
    assert f"100% of the traffic {STABLE} serves with 2 needs 2" in step.problem
    set_ready(cluster, f"{CANARY}-0", True)
    assert _capacity(reader.read(NS), 100) == ()


def test_a_younger_rewrite_for_the_same_model_is_refused(cluster: RealCluster,
                                                         reader: ClusterReader) -> None:
    put_younger_rewrite(cluster)
    facts = reader.read(NS)
    (finding,) = check_rewrite(facts, rewrite="small-segment-lora-b", rule=0)
    assert finding.check is Check.REWRITE
    assert "InferenceModelRewrite small-segment-lora also matches model small-segment-lora " \
           "on pool llm-pool and is older than small-segment-lora-b" in finding.problem
    assert "silently ignores small-segment-lora-b" in finding.problem
    assert check_rewrite(facts, rewrite="small-segment-lora", rule=0) == ()


def test_a_route_last_applied_by_argo_cd_is_refused_with_the_remedy(
        cluster: RealCluster, reader: ClusterReader, pickers: None) -> None:
    apply_as(cluster, "argocd-controller", (100, 0))
    before = _route(cluster)
    verdict = preflight(reader.read(NS, route=ROUTE), START, POLICY)
    assert verdict.outcome is Outcome.REFUSE
    (finding,) = verdict.findings
    assert finding.check is Check.GITOPS
    assert "HTTPRoute routes-to-llm is kept by Argo CD: field manager argocd-controller " \
           "(Apply," in finding.problem
    assert "managedFieldsManagers: [rollout-bot]" in finding.remedy
    assert "RespectIgnoreDifferences=true" in finding.remedy
    allowed = PreflightRequest(stable=STABLE, canary=CANARY, allow_gitops=True)
    assert preflight(reader.read(NS, route=ROUTE), allowed, POLICY).ok
    _unchanged(cluster, before)


def test_a_gitops_revert_names_the_manager(cluster: RealCluster,
                                           reader: ClusterReader) -> None:
    apply_as(cluster, "rollout-bot", (90, 10))
    facts = reader.read(NS, route=ROUTE)
    assert facts.route is not None and reverted_by(facts.route) is None  # the bot owns them
    apply_as(cluster, "argocd-controller", (100, 0))
    facts = reader.read(NS, route=ROUTE)
    assert facts.route is not None
    owner = reverted_by(facts.route)
    assert owner is not None and owner.manager == "argocd-controller"
    assert describe(owner).startswith("argocd-controller (Argo CD) at ")
    assert check_gitops(facts.route, allow_gitops=True) == ()


def test_a_group_the_cluster_does_not_serve_is_skipped_for_the_next(
        cluster: RealCluster) -> None:
    admin = cluster.world.admin
    reader = ClusterReader(client.CustomObjectsApi(admin), CoreLists(admin),
                           epp_groups=("absent.example.com", LEGACY_GROUP))
    facts = reader.read(NS)
    assert facts.objective_group == LEGACY_GROUP and facts.objectives == ()
    nothing = ClusterReader(client.CustomObjectsApi(admin), CoreLists(admin),
                            epp_groups=("absent.example.com",)).read(NS)
    assert nothing.objective_group is None and nothing.rewrite_group is None


def test_one_read_costs_one_list_per_kind_and_one_get_of_the_route(cluster: RealCluster) -> None:
    """Through the test's proxy (which logs every request), as the admin."""
    configuration = client.Configuration()
    configuration.host = cluster.url
    configuration.api_key = dict(cluster.world.admin.configuration.api_key)
    with client.ApiClient(configuration) as api:
        reader = ClusterReader(client.CustomObjectsApi(api), CoreLists(api))
        cluster.clear_requests()
        reader.read(NS, route=ROUTE)
    calls = sorted((r.verb, r.resource) for r in cluster.requests)
    assert calls == [("get", "httproutes"), ("list", "inferencemodelrewrites"),
                     ("list", "inferenceobjectives"), ("list", "inferencepools"),
                     ("list", "inferencepools"), ("list", "pods"), ("list", "services")]
