"""The emulator answers the recorded set of requests exactly as the real kube-apiserver does.

Each case runs on a fresh emulator (demo seed, the official CRDs) and on the real server
(the `cluster` fixture: the demo objects reseeded), as an admin; status codes, Status
reason, message and causes, warnings and the objects read back afterwards must be equal.
"""

from __future__ import annotations

import pytest

from sandbox.kube import KubeEmulator
from tests.conformance.cases import CASES, Case
from tests.conformance.replay import Target, replay
from tests.support.control_plane import ADMIN_TOKEN
from tests.support.crds import official_crds
from tests.support.real_cluster import RealCluster


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_emulator_answers_like_the_real_server(case: Case, cluster: RealCluster) -> None:
    world = cluster.world
    token = world.admin.configuration.api_key.get("authorization") or f"Bearer {ADMIN_TOKEN}"
    admin = {"Authorization": token}
    real = replay(Target(world.upstream, admin, world.ca_file or None), case)
    with KubeEmulator(seed="demo", crds=official_crds()) as emulator:
        emulated = replay(Target(emulator.url, {}), case)
    assert emulated == real
