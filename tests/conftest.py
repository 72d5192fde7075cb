"""Fixtures every tier may use: the real Kubernetes API server of the test world.

`kube_world` starts once per session (etcd, kube-apiserver, the official CRDs, the bot's RBAC,
the late gateway controller); `cluster` gives each test the demo objects freshly seeded and a
proxy of its own, reached as the bot's service account.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.real_cluster import KubeWorld, RealCluster, real_cluster


@pytest.fixture(scope="session")
def kube_world() -> Iterator[KubeWorld]:
    world = KubeWorld()
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def cluster(kube_world: KubeWorld) -> Iterator[RealCluster]:
    with real_cluster(kube_world) as view:
        yield view


@pytest.fixture
def cluster_kubeconfig(cluster: RealCluster, tmp_path: Path) -> Path:
    """A kubeconfig for the bot's service account, through the test's proxy."""
    return cluster.write_kubeconfig(tmp_path / "kubeconfig")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with `@slow` tests (the short soak, the leader killed 20 times, the races)
    first, in collection order otherwise: `make test` hands whole files to its workers in
    this order, and these, a minute or two each, then run side by side from the start
    rather than one of them (the soak was collected last but one) lengthening the tail."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
