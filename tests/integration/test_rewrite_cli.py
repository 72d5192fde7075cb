"""Adapter rollouts through the break-glass CLI: `start NEW --rewrite NAME`, then the usual verbs
by the new adapter's name, wired by bot.bootstrap like production."""

from __future__ import annotations

import copy
from typing import Any

from bot.cli import EXIT_OK, EXIT_REFUSED
from tests.integration.conftest import Cli
from tests.support.real_cluster import RealCluster

REWRITE, V1, V2 = "small-segment-lora", "small-segment-lora-v1", "small-segment-lora-v2"


def _rewrite(emulator: RealCluster) -> dict[str, Any]:
    obj = emulator.get_object("llm-d.ai", "v1alpha2", "inferencemodelrewrites", "default",
                              REWRITE)
    assert obj is not None
    return obj


def _weights(emulator: RealCluster) -> dict[str, int]:
    return {t["modelRewrite"]: t["weight"] for t in _rewrite(emulator)["spec"]["rules"][0]
            ["targets"]}


def test_start_and_approve_an_adapter_rollout_end_to_end(cli: Cli,
                                                         cluster: RealCluster) -> None:
    spec = copy.deepcopy(_rewrite(cluster)["spec"])
    code, out, err = cli("start", V2, "--rewrite", REWRITE, "--interval", "0s", "--as", "alice")
    assert code == EXIT_OK, err
    assert "started" in out and "awaits approval" in out
    assert _weights(cluster) == {V1: 100}
    seen = []
    for _ in range(4):
        code, out, err = cli("approve", V2, "--as", "bob")
        assert code == EXIT_OK, err
        seen.append(_weights(cluster))
    assert seen == [{V1: 90, V2: 10}, {V1: 75, V2: 25}, {V1: 50, V2: 50}, {V2: 100}]
    code, out, _ = cli("status", V2)
    assert code == EXIT_OK and "completed" in out and REWRITE in out
    code, out, _ = cli("history", V2)
    assert out.count("cli:bob applied step") == 4 and "step_applied" not in out
    assert "(login " in out
    code, out, err = cli("rollback", V2, "--as", "bob", "--reason", "bad answers")
    assert code == EXIT_OK, err
    assert _rewrite(cluster)["spec"] == spec


def test_the_pool_routes_are_untouched_by_an_adapter_rollout(cli: Cli,
                                                             cluster: RealCluster) -> None:
    route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                                     "routes-to-llm")
    assert route is not None
    cli("start", V2, "--rewrite", REWRITE, "--as", "alice")
    cli("approve", V2, "--as", "bob")
    after = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                                     "routes-to-llm")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == route["metadata"]["resourceVersion"]


def test_an_unknown_rewrite_is_refused_with_a_clear_line(cli: Cli) -> None:
    code, out, err = cli("start", V2, "--rewrite", "nope")
    assert code == EXIT_REFUSED
    assert err.startswith("refused: ") and "InferenceModelRewrite nope not found" in err
    assert "Traceback" not in err + out
