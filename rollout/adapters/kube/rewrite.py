"""InferenceModelRewrite target split: LoRA adapter rollouts.

Moves one rewrite rule's traffic from the old adapter target (the stable) to the new one (the
canary). A rewrite target's weight is 1..1,000,000, so 0 cannot be written: at 0% the canary
target is absent and at 100% the stable target is removed (the baseline remembers it for
rollback). The pure functions below map the domain's weight pairs onto target lists and back;
the adapter turns them into spec ops, which the router sends with the same fenced JSON patch
as an HTTPRoute's, leaving every other rule, target, field and annotation exactly as read.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client import CustomObjectsApi

from rollout.adapters.kube.fenced import FencedObjects, Kind, Listing, Obj
from rollout.adapters.kube.markers import (
    decode_marker,
    decode_record,
)
from rollout.adapters.kube.writes import (
    baseline_of,
    fingerprint,
    last_writer,
    recorded_rule,
    rule_entries,
)
from rollout.domain import patch
from rollout.domain.errors import Ambiguous, Conflict, InvalidInput, NeedsOperator, NotFound
from rollout.domain.machine import Effect, Prepare, Restore, Retire
from rollout.domain.models import Baseline, Rollout, Target, TargetKind
from rollout.domain.names import model_name
from rollout.domain.patch import Ops
from rollout.domain.split import (
    Observed,
    Pair,
    baseline_pair,
    expected_pair,
    require_single_entries,
)
from rollout.ports import Located, Marked

#: preferred first: the current group, then the one older clusters still have
REWRITE_KINDS = (
    Kind("llm-d.ai", "v1alpha2", "inferencemodelrewrites", "InferenceModelRewrite"),
    Kind("inference.networking.x-k8s.io", "v1alpha2", "inferencemodelrewrites",
         "InferenceModelRewrite"),
)
IMPLIED_WEIGHT = 1  # a rule without weights splits equally: each target counts as 1

Targets = list[dict[str, Any]]

# -- the pure weight mapping ---------------------------------------------------------------


def index_of(targets: Targets, adapter: str) -> int | None:
    return next((i for i, t in enumerate(targets) if t.get("modelRewrite") == adapter), None)


def weight_of(target: dict[str, Any]) -> int:
    """A target's weight; one without a weight (a rule that sets none) counts as 1."""
    weight = target.get("weight")
    return weight if isinstance(weight, int) and not isinstance(weight, bool) else IMPLIED_WEIGHT


def pair_of(targets: Targets, *, stable: str, canary: str) -> Pair:
    """The managed pair as the domain sees it: an absent stable is 0 (100% reached), an absent
    canary is None (0%, as `baseline_pair` and `acceptable_pairs` expect)."""
    s, c = index_of(targets, stable), index_of(targets, canary)
    return Pair(stable=0 if s is None else weight_of(targets[s]),
                canary=None if c is None else weight_of(targets[c]))


def implied_weight(baseline: Baseline) -> int:
    """What an unweighted target weighs in the scale the bot writes the pair in, so that it
    keeps its share once the rule has weights (CRD: weights on all targets or none)."""
    pair = baseline.stable_weight + baseline.canary_weight
    return max(1, baseline.total // max(1, pair))


def targets_at(
    targets: Targets, baseline: Baseline, pair: Pair, *, stable: str, canary: str
) -> Targets:
    """`targets` with the pair written: weight 0 (or None) removes a target, a positive weight
    adds it if absent. A new canary goes right after the stable, so that at 100% it sits in the
    stable's place and a rollback can put the stable back where it was."""
    out = copy.deepcopy(targets)
    want_stable, want_canary = pair.stable, pair.canary or 0
    if index_of(out, canary) is None and want_canary > 0:
        s = index_of(out, stable)
        out.insert(len(out) if s is None else s + 1, {"modelRewrite": canary})
    if index_of(out, stable) is None and want_stable > 0:
        c = index_of(out, canary)
        out.insert(len(out) if c is None else c, copy.deepcopy(baseline.stable))
    for name, weight in ((stable, want_stable), (canary, want_canary)):
        i = index_of(out, name)
        if i is None:
            continue
        if weight > 0:
            out[i]["weight"] = weight
        else:
            del out[i]
    if any("weight" in t for t in out):
        fill = implied_weight(baseline)
        for t in out:
            t.setdefault("weight", fill)
    return out


def restored_targets(targets: Targets, baseline: Baseline, *, stable: str, canary: str) -> Targets:
    """`targets` with the stable and canary entries exactly as in the baseline (the canary
    removed if it was absent). If the rule had no weights, the weights the bot gave the other
    targets go again, so each of them is its original dict."""
    out = copy.deepcopy(targets)
    s = index_of(out, stable)
    if s is not None:
        out[s] = copy.deepcopy(baseline.stable)
    else:
        c = index_of(out, canary)
        out.insert(len(out) if c is None else c, copy.deepcopy(baseline.stable))
    c = index_of(out, canary)
    if baseline.canary is None:
        if c is not None:
            del out[c]
    elif c is not None:
        out[c] = copy.deepcopy(baseline.canary)
    else:
        s = index_of(out, stable)
        out.insert(len(out) if s is None else s + 1, copy.deepcopy(baseline.canary))
    if "weight" not in baseline.stable:
        for t in out:
            t.pop("weight", None)
    return out


def next_targets(targets: Targets, rollout: Rollout, effect: Effect) -> Targets:
    """The rule's targets once `effect` has landed."""
    base, stable, canary = rollout.baseline, rollout.stable, rollout.canary
    if isinstance(effect, Restore):
        return restored_targets(targets, base, stable=stable, canary=canary)
    if isinstance(effect, Prepare):
        return copy.deepcopy(targets)  # 0%: the canary stays absent; only the marker is new
    if isinstance(effect, Retire):
        return [copy.deepcopy(t) for t in targets if t.get("modelRewrite") != stable]
    return targets_at(targets, base, expected_pair(rollout, effect.step),
                      stable=stable, canary=canary)


def pair_after(rollout: Rollout, effect: Effect) -> Pair:
    """What a read-back must show once `effect` has landed."""
    if isinstance(effect, Restore | Prepare):
        return baseline_pair(rollout.baseline)
    if isinstance(effect, Retire):
        return expected_pair(rollout)
    return expected_pair(rollout, effect.step)


def _rule_targets(obj: Obj, rule: int) -> Targets | None:
    return rule_entries(obj, rule, "targets")


def _require_weights_on_all_or_none(targets: Targets, *, where: str) -> None:
    """The CRD asks for weights on every target or none, without a rule the API server
    enforces: where some have one, the endpoint picker never selects a target without one
    (`selectWeightedModel`), and the bot's fill (`targets_at`) would give those targets
    traffic they do not take today, which no rollback takes away."""
    unweighted = [str(t.get("modelRewrite")) for t in targets if "weight" not in t]
    if unweighted and len(unweighted) < len(targets):
        raise Conflict(
            f"{where} gives weights to some targets and none to {', '.join(unweighted)}, "
            "which the endpoint picker therefore never selects: give every target a weight, "
            "or remove the targets without one, and start again")


def _models(rule: dict[str, Any]) -> str:
    values = [str((m.get("model") or {}).get("value", "?")) for m in rule.get("matches") or []]
    return f"model {', '.join(values)}" if values else "any model"


# -- the adapter ---------------------------------------------------------------------------


class RewriteSplit:
    """The KindSplit of InferenceModelRewrites: one rule's target weights, in either API group."""

    def __init__(self, api: CustomObjectsApi, *, timeout: tuple[float, float] = (3.0, 5.0),
                 cache: Listing | None = None) -> None:
        self.groups = {k.group: FencedObjects(api, k, timeout=timeout, cache=cache)
                       for k in REWRITE_KINDS}

    def objects(self, target: Target) -> FencedObjects:
        return self.groups.get(target.api_group) or self.groups[REWRITE_KINDS[0].group]

    def _find(self, namespace: str, name: str) -> tuple[str, Obj]:
        for group, objects in self.groups.items():
            try:
                return group, objects.get(namespace, name)
            except NotFound:
                continue  # not in this group, or the group is not installed
        raise NotFound(f"InferenceModelRewrite {name} not found in {namespace}")

    # -- locate --------------------------------------------------------------------------

    def locate(
        self, *, namespace: str, canary: str, target_name: str | None, stable: str | None
    ) -> Located:
        if target_name is None:
            raise InvalidInput("an adapter rollout names its InferenceModelRewrite: --rewrite")
        if stable == canary:
            raise Conflict(f"the stable and the canary adapter are both {canary}")
        group, obj = self._find(namespace, target_name)
        rule = self._pick_rule(obj, canary, stable)
        targets = _rule_targets(obj, rule) or []
        _require_weights_on_all_or_none(targets, where=f"InferenceModelRewrite {target_name} "
                                                       f"rule {rule}")
        # a target's name is any string to the CRD; the card shows it and buttons carry it
        stable_name = stable or model_name(
            f"the stable adapter of InferenceModelRewrite {target_name} rule {rule}",
            self._pick_stable(target_name, rule, targets, canary))
        require_single_entries([str(t.get("modelRewrite")) for t in targets],
                               stable=stable_name, canary=canary,
                               where=f"InferenceModelRewrite {target_name} rule {rule}")
        managed = (index_of(targets, stable_name), index_of(targets, canary))
        baseline = baseline_of(targets, *managed, weight_of)
        # unweighted targets are given the pair's scale (targets_at): their share stays
        others = tuple((str(t.get("modelRewrite")), weight_of(t))
                       for i, t in enumerate(targets) if i not in managed and "weight" in t)
        target = Target(kind=TargetKind.REWRITE, namespace=namespace, name=target_name,
                        rule=rule, api_group=group, fingerprint=fingerprint(obj, rule))
        matches = (obj.get("spec", {}).get("rules") or [{}])[rule].get("matches") or [{}]
        return Located(target=target, stable=stable_name, canary=canary, baseline=baseline,
                       observed=self.observed(obj, rule, stable_name, canary),
                       pool=str((obj.get("spec", {}).get("poolRef") or {}).get("name", "")),
                       model=str((matches[0].get("model") or {}).get("value", "")),
                       others=others)

    @staticmethod
    def _pick_rule(obj: Obj, canary: str, stable: str | None) -> int:
        name = obj["metadata"]["name"]
        rules = obj.get("spec", {}).get("rules") or []

        def qualifies(rule: dict[str, Any]) -> bool:
            names = [t.get("modelRewrite") for t in rule.get("targets") or []]
            return stable in names if stable else any(n != canary for n in names)

        found = [i for i, rule in enumerate(rules) if qualifies(rule)]
        which = f"target {stable}" if stable else "an adapter target to shift from"
        if not found:
            raise NotFound(f"InferenceModelRewrite {name} has no rule with {which}")
        if len(found) > 1:
            listed = "; ".join(f"rule {i}: {_models(rules[i])}" for i in found)
            how = ("an adapter rollout moves one rule: give each rule its own stable adapter"
                   if stable else "pick the old adapter with --stable")
            raise Ambiguous(f"InferenceModelRewrite {name} has {len(found)} rules with {which} "
                            f"({listed}): {how}")
        return found[0]

    @staticmethod
    def _pick_stable(name: str, rule: int, targets: Targets, canary: str) -> str:
        others = sorted({str(t.get("modelRewrite")) for t in targets} - {canary})
        if len(others) > 1:
            raise Ambiguous(f"InferenceModelRewrite {name} rule {rule} has several targets "
                            f"({', '.join(others)}): pick the old adapter with --stable")
        return others[0]

    # -- markers (for an emptied Redis) ----------------------------------------------------

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        """Marked rules that have `canary` as a target or, at 0% where it is absent, whose
        record names it."""
        found = []
        for group, objects in self.groups.items():
            try:
                rewrites = objects.list(namespace)
            except NotFound:
                continue  # the group is not installed in this cluster
            for obj in rewrites:
                annotations = obj["metadata"].get("annotations") or {}
                for i, rule in enumerate(obj.get("spec", {}).get("rules") or []):
                    marker = decode_marker(annotations, i)
                    if marker is None:
                        continue
                    record = decode_record(annotations, i)
                    named = record is not None and record.canary == canary
                    if index_of(rule.get("targets") or [], canary) is None and not named:
                        continue
                    target = Target(kind=TargetKind.REWRITE, namespace=namespace,
                                    name=obj["metadata"]["name"], rule=i, api_group=group,
                                    fingerprint=recorded_rule(record, obj, i))
                    found.append(Marked(target=target, marker=marker, record=record))
        return found

    # -- what the router reads and writes -------------------------------------------------

    @staticmethod
    def observed(obj: Obj, rule: int, stable: str, canary: str) -> Observed:
        targets = _rule_targets(obj, rule)
        if targets is None:
            raise NeedsOperator(
                f"InferenceModelRewrite {obj['metadata']['name']} has no rule {rule} any more; "
                "the rewrite was restructured outside the bot"
            )
        annotations = obj["metadata"].get("annotations") or {}
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        return Observed(pair=pair_of(targets, stable=stable, canary=canary),
                        marker=decode_marker(annotations, rule),
                        resource_version=str(obj["metadata"].get("resourceVersion", "")),
                        writer=last_writer(obj, kind="InferenceModelRewrite", group=group))

    @staticmethod
    def spec_ops(obj: Obj, rollout: Rollout, effect: Effect) -> Ops:
        rule = rollout.target.rule
        targets = _rule_targets(obj, rule) or []
        wanted = next_targets(targets, rollout, effect)
        return [] if wanted == targets else [patch.replace(f"/spec/rules/{rule}/targets", wanted)]

    @staticmethod
    def pair_after(rollout: Rollout, effect: Effect) -> Pair:
        return pair_after(rollout, effect)
