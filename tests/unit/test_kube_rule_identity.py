"""A target is a rule, not an index: a rule inserted before it (a GitOps sync) shifts the index,
and no write, a rollback's neither, goes to the rule that now sits there (a double of the
official client that applies JSON patches)."""

from __future__ import annotations

import copy

import pytest

from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.markers import encode_record, record_key
from rollout.adapters.kube.rewrite import RewriteSplit
from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.kube.writes import fingerprint, recorded_rule
from rollout.domain.errors import NeedsOperator
from rollout.domain.machine import ApplyStep, Restore
from rollout.domain.models import (
    Baseline,
    RecoveryRecord,
    Rollout,
    Target,
    TargetKind,
)
from rollout.domain.split import Pair
from tests.unit.builders import started
from tests.unit.kube_double import Cluster as BaseCluster
from tests.unit.kube_double import Obj

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}


class Cluster(BaseCluster):
    """The object double, and what a GitOps sync does to it."""

    def insert_rule(self, rule: Obj) -> None:
        """What a GitOps sync does: a new rule at index 0, the others shift by one."""
        self.obj["spec"]["rules"].insert(0, rule)
        self.obj["metadata"]["resourceVersion"] = "50"


def _route(name: str | None = None) -> Obj:
    rule: Obj = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{**POOL, "name": "llm-pool", "weight": 100},
                                 {**POOL, "name": "llm-pool-version-2", "weight": 0}]}
    if name is not None:
        rule["name"] = name
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "routes-to-llm", "namespace": "default",
                         "resourceVersion": "1", "annotations": {}},
            "spec": {"rules": [rule]}}


BATCH_RULE = {"matches": [{"headers": [{"name": "x-tier", "value": "batch"}]}],
              "backendRefs": [{**POOL, "name": "llm-pool", "weight": 1}]}


def _on(rollout: Rollout, obj: Obj) -> Rollout:
    target = rollout.target.model_copy(update={"fingerprint": fingerprint(obj, 0)})
    return rollout.model_copy(update={"target": target})


def _router(cluster: Cluster) -> TrafficRouter:
    return TrafficRouter(routes=HTTPRouteSplit(cluster),  # type: ignore[arg-type]
                         rewrites=RewriteSplit(cluster))  # type: ignore[arg-type]


@pytest.mark.parametrize("named", [None, "default-route"])
def test_a_rollback_never_writes_the_rule_that_took_the_index(named: str | None) -> None:
    cluster = Cluster(_route(named))
    r = _on(started(), cluster.obj)
    router = _router(cluster)
    router.apply(r, ApplyStep(step=1, percent=25), fence=5, before=None)
    cluster.insert_rule(copy.deepcopy(BATCH_RULE))
    before, patches = copy.deepcopy(cluster.obj), cluster.patches
    with pytest.raises(NeedsOperator) as refused:
        router.apply(r, Restore(), fence=6, before=None)
    assert cluster.obj == before and cluster.patches == patches
    assert ("HTTPRoute default/routes-to-llm rule 0 is no longer the rule the rollout "
            "manages") in str(refused.value)
    assert "Put the rule back at index 0 as it was, then resume or roll back" in str(refused.value)


def test_a_look_at_the_shifted_index_needs_an_operator() -> None:
    """The drift watch's look and the reconcile read see it first: the rollout pauses."""
    cluster = Cluster(_route())
    r = _on(started(), cluster.obj)
    cluster.insert_rule(copy.deepcopy(BATCH_RULE))
    with pytest.raises(NeedsOperator):
        _router(cluster).observe(r)
    with pytest.raises(NeedsOperator):
        _router(cluster).glance(r)


def test_the_bots_own_steps_keep_the_rule_what_it_was() -> None:
    cluster = Cluster(_route())
    r = _on(started(), cluster.obj)
    router = _router(cluster)
    for step, percent in enumerate((10, 25, 50)):
        router.apply(r, ApplyStep(step=step, percent=percent), fence=5 + step, before=None)
    assert router.apply(r, Restore(), fence=9, before=None).pair == Pair(stable=100, canary=0)
    assert cluster.obj["spec"] == _route()["spec"]


def test_a_target_recorded_before_fingerprints_is_known_by_its_index() -> None:
    """A state saved by an older version has none: it goes on as it did."""
    cluster = Cluster(_route())
    r = started()
    assert r.target.fingerprint == ""
    cluster.insert_rule(copy.deepcopy(BATCH_RULE))
    _router(cluster).observe(r)  # no refusal: the index alone is all it knows


def test_a_rule_is_its_name_where_it_has_one_else_its_matches() -> None:
    named, plain = _route("default-route"), _route()
    assert fingerprint(named, 0) == "name=default-route"
    edited = copy.deepcopy(named)
    edited["spec"]["rules"][0]["matches"] = BATCH_RULE["matches"]
    assert fingerprint(edited, 0) == fingerprint(named, 0)
    assert fingerprint(plain, 0).startswith("matches#")
    other = copy.deepcopy(plain)
    other["spec"]["rules"][0]["matches"] = BATCH_RULE["matches"]
    assert fingerprint(other, 0) != fingerprint(plain, 0)
    assert fingerprint(plain, 1) == ""


def _rewrite() -> Obj:
    def rule(model: str, adapter: str) -> Obj:
        return {"matches": [{"model": {"type": "Exact", "value": model}}],
                "targets": [{"modelRewrite": adapter}]}
    return {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
            "metadata": {"name": "small-segment-lora", "namespace": "default",
                         "resourceVersion": "1", "annotations": {}},
            "spec": {"poolRef": {"name": "llm-pool"},
                     "rules": [rule("small-segment", "lora-v1"), rule("other", "lora-v1")]}}


def test_a_rewrite_rollback_never_writes_the_rule_that_took_the_index() -> None:
    """The inserted rule moves the same adapter for another model: by its targets alone it
    would pass for the rollout's rule."""
    cluster = Cluster(_rewrite())
    stable = {"modelRewrite": "lora-v1"}
    r = started(baseline=Baseline(stable=stable, canary=None, stable_weight=1,
                                  canary_weight=0))
    target = Target(kind=TargetKind.REWRITE, namespace="default", name="small-segment-lora",
                    rule=0, api_group="llm-d.ai", fingerprint=fingerprint(cluster.obj, 0))
    r = r.model_copy(update={"target": target, "stable": "lora-v1", "canary": "lora-v2"})
    router = _router(cluster)
    router.apply(r, ApplyStep(step=1, percent=25), fence=5, before=None)
    cluster.insert_rule(copy.deepcopy(_rewrite()["spec"]["rules"][1]))
    before = copy.deepcopy(cluster.obj)
    with pytest.raises(NeedsOperator, match="InferenceModelRewrite default/small-segment-lora "
                                            "rule 0 is no longer the rule"):
        router.apply(r, Restore(), fence=6, before=None)
    assert cluster.obj == before


def test_a_recovered_target_is_the_rule_its_record_names() -> None:
    """Redis lost, then a rule inserted: the marker and record at index 0 are the old rule's;
    the target recovered from them carries the record's fingerprint, and the read refuses."""
    route = _route()
    r = _on(started(), route)
    record = encode_record(r)
    assert RecoveryRecord.model_validate_json(record).fingerprint == r.target.fingerprint
    shifted = copy.deepcopy(route)
    shifted["spec"]["rules"].insert(0, copy.deepcopy(BATCH_RULE))
    shifted["metadata"]["annotations"][record_key(0)] = record
    parsed = RecoveryRecord.model_validate_json(record)
    assert recorded_rule(parsed, shifted, 0) == r.target.fingerprint
    assert recorded_rule(None, shifted, 0) == fingerprint(shifted, 0)


def test_states_and_records_from_before_fingerprints_still_load() -> None:
    target = Target.model_validate({"kind": "httproute", "namespace": "default",
                                    "name": "routes-to-llm", "rule": 0})
    assert target.fingerprint == ""
    data = RecoveryRecord.of(started()).model_dump(mode="json")
    del data["fingerprint"]
    assert RecoveryRecord.model_validate(data).fingerprint == ""
    assert target.key == "httproute/default/routes-to-llm/0"  # one rollout per rule, as ever
