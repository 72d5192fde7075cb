"""The traffic router: each target kind goes to its own adapter; markers come from both."""

from __future__ import annotations

from typing import Any

from rollout.adapters.kube.router import TrafficRouter
from rollout.domain.machine import Prepare
from rollout.domain.models import Target, TargetKind
from rollout.domain.split import Marker, Observed, Pair
from rollout.ports import Marked, Traffic
from tests.unit.builders import started


class Recording:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    def _seen(self, what: str) -> Observed:
        self.calls.append(what)
        return Observed(pair=Pair(stable=100, canary=None))

    def locate(self, **kwargs: Any) -> Any:
        self.calls.append(f"locate {kwargs['target_name']}")
        return self.name

    def observe(self, rollout: Any) -> Observed:
        return self._seen("observe")

    def apply(self, rollout: Any, effect: Any, *, fence: int, before: Any = None) -> Observed:
        return self._seen(f"apply {fence}")

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        return self._seen("observe_target")

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        target = Target(kind=TargetKind.ROUTE if self.name == "routes" else TargetKind.REWRITE,
                        namespace=namespace, name=self.name, rule=0)
        return [Marked(target=target, marker=Marker(rollout_id=self.name, step=0), record=None)]

    def clear_marker(self, target: Target, *, fence: int) -> None:
        self.calls.append("clear_marker")


def _router() -> tuple[TrafficRouter, Recording, Recording]:
    routes, rewrites = Recording("routes"), Recording("rewrites")
    return TrafficRouter(routes=routes, rewrites=rewrites), routes, rewrites


def test_locate_is_a_pool_unless_told_otherwise() -> None:
    router, routes, rewrites = _router()
    assert isinstance(router, Traffic)
    where: dict[str, Any] = {"namespace": "default", "canary": "c", "stable": None}
    assert router.locate(target_name="r", **where) == "routes"
    assert router.locate_kind(TargetKind.REWRITE, target_name="rw", **where) == "rewrites"
    assert (routes.calls, rewrites.calls) == (["locate r"], ["locate rw"])


def test_a_rollout_goes_to_the_adapter_of_its_target() -> None:
    router, routes, rewrites = _router()
    pool = started()
    adapter = pool.model_copy(update={"target": pool.target.model_copy(
        update={"kind": TargetKind.REWRITE})})
    router.observe(pool)
    router.apply(adapter, Prepare(), fence=7)
    router.clear_marker(adapter.target, fence=8)
    router.observe_target(pool.target, stable="a", canary="b")
    assert routes.calls == ["observe", "observe_target"]
    assert rewrites.calls == ["apply 7", "clear_marker"]


def test_markers_are_searched_in_both_kinds() -> None:
    router, _, _ = _router()
    found = router.find_marked(namespace="default", canary="c")
    assert [m.target.kind for m in found] == [TargetKind.ROUTE, TargetKind.REWRITE]
