"""A write whose copy was sent again after it landed is the bot's own write, not a drift: the
copy meets the landed write (409, its resourceVersion is stale), and the fresh read shows the
bot's token on the moved object (a double of the official client that applies JSON patches)."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.markers import FENCE
from rollout.adapters.kube.router import TrafficRouter
from rollout.domain.machine import ApplyStep
from rollout.domain.split import Pair, acceptable_pairs
from tests.unit.builders import started
from tests.unit.kube_double import Cluster, Obj

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}


class ResentApi(Cluster):
    """One route; its first PATCH lands, and the answer the bot gets is a copy's 409."""

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        written = super().patch_namespaced_custom_object(*args, **kwargs)
        if self.patches == 1:
            raise ApiException(status=409)
        return written


def _route() -> Obj:
    refs = [{**POOL, "name": "llm-pool", "weight": 100},
            {**POOL, "name": "llm-pool-version-2", "weight": 0}]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "routes-to-llm", "namespace": "default",
                         "resourceVersion": "1", "annotations": {FENCE: "4"}},
            "spec": {"rules": [{"backendRefs": refs}]}}


def test_a_step_whose_copy_met_its_own_write_is_taken_as_written() -> None:
    r = started()
    api = ResentApi(_route())
    router = TrafficRouter(routes=HTTPRouteSplit(api),  # type: ignore[arg-type]
                           rewrites=None)  # type: ignore[arg-type]
    written = router.apply(r, ApplyStep(step=0, percent=10), fence=5,
                           before=acceptable_pairs(r))
    assert written.pair == Pair(stable=90, canary=10)
    assert api.patches == 1  # decided once: nothing sent again on the fresh read
    assert api.obj["metadata"]["annotations"][FENCE] == "5"


def test_a_409_from_another_writer_is_decided_again() -> None:
    """The fresh read shows someone else's write (our token is not on it): decide again."""
    r = started()
    api = ResentApi(_route())
    api.obj["metadata"]["annotations"][FENCE] = "5"  # our token, already there before
    router = TrafficRouter(routes=HTTPRouteSplit(api),  # type: ignore[arg-type]
                           rewrites=None)  # type: ignore[arg-type]
    written = router.apply(r, ApplyStep(step=0, percent=10), fence=5,
                           before=(*acceptable_pairs(r), Pair(stable=90, canary=10)))
    assert written.pair == Pair(stable=90, canary=10)
    assert api.patches == 2
