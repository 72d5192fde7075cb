"""The traffic router: each target kind goes to its own adapter; markers come from both."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.adapters.kube.router import TrafficRouter
from rollout.domain.errors import DriftDetected
from rollout.domain.machine import Prepare
from rollout.domain.models import Target, TargetKind
from rollout.domain.split import Marker, Observed, Pair
from rollout.ports import Marked, Traffic
from tests.unit.builders import started


class RecordingObjects:
    """The fenced reader and writer of one kind, recording what the router asks of it."""

    conflict_retries = 0

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(f"get {name}")
        return {"metadata": {"name": name}}

    def latest(self, namespace: str, name: str, *, fence: int) -> dict[str, Any]:
        self.calls.append(f"latest {name} {fence}")
        return {"metadata": {"name": name}}

    def send(self, namespace: str, name: str, current: Any, ops: list[Any], *,
             fence: int, recalled: bool = False) -> dict[str, Any]:
        self.calls.append(f"send {name} {fence} {[op['path'] for op in ops]}"
                          + (" recalled" if recalled else ""))
        return current  # type: ignore[no-any-return]


class Recording:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []
        self.objs = RecordingObjects(self.calls)

    def locate(self, **kwargs: Any) -> Any:
        self.calls.append(f"locate {kwargs['target_name']}")
        return self.name

    def objects(self, target: Target) -> Any:
        return self.objs

    def observed(self, obj: Any, rule: int, stable: str, canary: str) -> Observed:
        return Observed(pair=Pair(stable=100, canary=None))

    def spec_ops(self, obj: Any, rollout: Any, effect: Any) -> list[Any]:
        return [{"op": "replace", "path": f"/spec/{self.name}", "value": []}]

    def pair_after(self, rollout: Any, effect: Any) -> Pair:
        return Pair(stable=100, canary=None)

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        target = Target(kind=TargetKind.ROUTE if self.name == "routes" else TargetKind.REWRITE,
                        namespace=namespace, name=self.name, rule=0)
        return [Marked(target=target, marker=Marker(rollout_id=self.name, step=0), record=None)]


def _router() -> tuple[TrafficRouter, Recording, Recording]:
    routes, rewrites = Recording("routes"), Recording("rewrites")
    return TrafficRouter(routes=routes, rewrites=rewrites), routes, rewrites


def test_locate_is_a_pool_unless_told_otherwise() -> None:
    router, routes, rewrites = _router()
    assert isinstance(router, Traffic)
    where: dict[str, Any] = {"namespace": "default", "canary": "c", "stable": None}
    # each recorder answers its own name for a Located
    pool: object = router.locate(target_name="r", **where)
    assert pool == "routes"
    adapter: object = router.locate_kind(TargetKind.REWRITE, target_name="rw", **where)
    assert adapter == "rewrites"
    assert (routes.calls, rewrites.calls) == (["locate r"], ["locate rw"])


def test_a_rollout_goes_to_the_adapter_of_its_target_and_is_written_once() -> None:
    router, routes, rewrites = _router()
    pool = started()
    adapter = pool.model_copy(update={
        "target": pool.target.model_copy(update={"kind": TargetKind.REWRITE, "name": "rw"}),
        "baseline": pool.baseline.model_copy(update={"canary": None, "canary_weight": 0})})
    router.observe(pool)
    router.apply(adapter, Prepare(), fence=7)
    router.clear_marker(adapter.target, fence=8)
    assert routes.calls == [f"get {pool.target.name}"]
    marker = "/metadata/annotations/inference-rollout.dev~1rule-0"
    assert rewrites.calls == [
        "latest rw 7", f"send rw 7 ['/spec/rewrites', '{marker}', '{marker}-record']",
        "latest rw 8", "send rw 8 []",  # nothing of the bot's on the object to clear
    ]


def test_markers_are_searched_in_both_kinds() -> None:
    router, _, _ = _router()
    found = router.find_marked(namespace="default", canary="c")
    assert [m.target.kind for m in found] == [TargetKind.ROUTE, TargetKind.REWRITE]


def test_a_start_whose_rule_moved_since_it_was_located_writes_nothing() -> None:
    """The baseline was located (perhaps on the namespace cache) at stable 100 / canary 0;
    the write's read shows the canary absent: someone changed the rule meanwhile."""
    router, routes, _ = _router()
    pool = started()
    with pytest.raises(DriftDetected, match="expected stable 100 / canary 0"):
        router.apply(pool, Prepare(), fence=7)
    assert routes.calls == [f"latest {pool.target.name} 7"]
