"""Least privilege, held by the real authorizer: the bot (as its service account, bound to the
ClusterRole `deploy/` ships) uses every permission it is granted and needs no other."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from bot.cli import EXIT_OK, EXIT_REFUSED
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.namespace_cache import NamespaceCache
from tests.integration.conftest import Cli
from tests.support.control_plane import BOT_USER
from tests.support.polling import eventually
from tests.support.real_cluster import KubeWorld, RealCluster, bot_rbac_documents

Access = tuple[str, str, str]  # (verb, API group, resource)
LEGACY = "inference.networking.x-k8s.io"


def granted() -> set[Access]:
    found: set[Access] = set()
    for doc in bot_rbac_documents():
        if doc["kind"] != "ClusterRole":
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found |= {(verb, group, resource) for verb in rule["verbs"]}
    return found


def _answered(entry: dict[str, object]) -> bool:
    """A request the server answered; a watch counts from its start (it is open until the
    server ends it, long after the test has looked)."""
    return entry.get("stage") == "ResponseComplete" or (
        entry.get("stage") == "ResponseStarted" and entry.get("verb") == "watch")


def used_since(log: Path, since: datetime) -> tuple[set[Access], list[str]]:
    """What the bot asked of the server since `since`, and what it was refused."""
    used: set[Access] = set()
    refused: list[str] = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry["user"]["username"] != BOT_USER or not _answered(entry):
            continue
        received = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if received < since or "objectRef" not in entry:
            continue
        ref = entry["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((entry["verb"], ref.get("apiGroup", ""), resource))
        if entry.get("responseStatus", {}).get("code") == 403:
            refused.append(f"{entry['verb']} {entry['requestURI']}")
    return used, refused


def _legacy_rewrite(cluster: RealCluster) -> None:
    cluster.put_object({
        "apiVersion": f"{LEGACY}/v1alpha2", "kind": "InferenceModelRewrite",
        "metadata": {"name": "legacy-lora", "namespace": "default"},
        "spec": {"poolRef": {"name": "llm-pool"}, "rules": [{
            "matches": [{"model": {"type": "Exact", "value": "legacy-lora"}}],
            "targets": [{"modelRewrite": "legacy-lora-v1", "weight": 100}]}]},
    })


def _watch(cluster: RealCluster) -> None:
    """The namespace cache of serve and the scheduler, as the bot: a list and a watch of every
    kind the gates and a start read, in each group the cluster serves."""
    with client.ApiClient(cluster.bot_configuration()) as api:
        cache = NamespaceCache(client.CustomObjectsApi(api), CoreLists(api))
        cache.watch("default")
        try:
            eventually(lambda: cache.live("default"), message="the cache synced")
        finally:
            cache.stop()


def _exercise(cli: Cli, cluster: RealCluster, world: KubeWorld) -> None:
    """Every kind of call the bot makes: locate, refuse, step, roll back, on both groups (the
    legacy one as an older cluster serves it alone, where the endpoint picker reads it), with
    the preflight gates' reads of objectives, pods and Services before each start and step,
    and the namespace cache's watches."""
    code, _, _ = cli("start", "no-such-pool", "--as", "alice")
    assert code == EXIT_REFUSED
    for argv in (("start", "llm-pool-version-2", "--interval", "0s"),
                 ("approve", "llm-pool-version-2"), ("rollback", "llm-pool-version-2"),
                 ("start", "small-segment-lora-v2", "--rewrite", "small-segment-lora",
                  "--interval", "0s"),
                 ("approve", "small-segment-lora-v2"), ("rollback", "small-segment-lora-v2")):
        code, _, err = cli(*argv, "--as", "bob" if argv[0] != "start" else "alice")
        assert code == EXIT_OK, (argv, err)
    _watch(cluster)
    with world.legacy_only():
        _legacy_rewrite(cluster)
        _watch(cluster)
        for argv in (("start", "legacy-lora-v2", "--rewrite", "legacy-lora", "--interval",
                      "0s"), ("approve", "legacy-lora-v2"), ("rollback", "legacy-lora-v2")):
            code, _, err = cli(*argv, "--as", "bob" if argv[0] != "start" else "alice")
            assert code == EXIT_OK, (argv, err)


def test_the_bot_uses_exactly_what_deploy_grants(cli: Cli, cluster: RealCluster,
                                                 kube_world: KubeWorld) -> None:
    if kube_world.audit_log is None:
        pytest.skip("the audit log is read from the test world's own API server")
    since = datetime.now(UTC)
    _exercise(cli, cluster, kube_world)
    used, refused = used_since(kube_world.audit_log, since)
    assert not refused, f"the API server refused the bot: {refused}"
    assert used <= granted(), f"used but not granted: {sorted(used - granted())}"
    assert granted() <= used, f"granted but never used: {sorted(granted() - used)}"
