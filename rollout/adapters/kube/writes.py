"""What every target kind reads and writes the same way, as plain functions: the drift guard,
the bot's marker and record, the check of the object as written (the router's write), and a
rule's entries and their baseline (the kind adapters' reads), and which rule a target is
(its fingerprint: the index alone shifts when a rule is inserted before it)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from rollout.adapters.cluster_facts import object_facts
from rollout.adapters.kube.fenced import Obj, annotation_op
from rollout.adapters.kube.markers import (
    encode_marker,
    encode_record,
    pointer,
    record_key,
    rule_key,
)
from rollout.domain import patch
from rollout.domain.errors import DriftDetected, NeedsOperator
from rollout.domain.gitops import describe, reverted_by
from rollout.domain.machine import ApplyStep, Effect, Prepare, Restore, Retire
from rollout.domain.models import Baseline, RecoveryRecord, Rollout, Target
from rollout.domain.patch import Ops
from rollout.domain.split import Marker, MarkerState, Observed, Pair


def marker_for(rollout: Rollout, effect: Effect) -> Marker:
    """The marker that says, on the object, what this effect leaves behind."""
    if isinstance(effect, Restore):
        return Marker(rollout_id=rollout.id, step=rollout.step, state=MarkerState.ROLLED_BACK)
    if isinstance(effect, Prepare):
        return Marker(rollout_id=rollout.id, step=-1)
    if isinstance(effect, Retire):
        return Marker(rollout_id=rollout.id, step=rollout.step, state=MarkerState.RETIRED)
    assert isinstance(effect, ApplyStep)
    done = effect.step == rollout.plan.last_index
    return Marker(rollout_id=rollout.id, step=effect.step,
                  state=MarkerState.COMPLETED if done else MarkerState.ACTIVE,
                  by=rollout.completed_by if done else None)


def bookkeeping_ops(rollout: Rollout, effect: Effect, obj: Obj) -> Ops:
    """The bot's marker, and its record for recovery when a rollout takes the rule, or
    when a step that leaves the rule active finds the record gone (the object replaced by
    one without the bot's annotations: a step rewrote the marker, and after a loss of Redis
    the rollout could be neither recovered nor told from an unknown one)."""
    t = rollout.target
    marker = marker_for(rollout, effect)
    ops = [annotation_op(rule_key(t.rule), encode_marker(marker))]
    annotations = obj.get("metadata", {}).get("annotations") or {}
    lost = marker.state is MarkerState.ACTIVE and record_key(t.rule) not in annotations
    if isinstance(effect, Prepare) or lost:
        ops.append(annotation_op(record_key(t.rule), encode_record(rollout)))
    return ops


def refuse_drift(rollout: Rollout, current: Observed, before: tuple[Pair, ...] | None) -> None:
    """A write decided on weights the rollout did not set would overwrite a person (or a
    GitOps tool: the manager that last wrote them is named)."""
    if before is not None and current.pair not in before:
        by = f"; last written by {current.writer}" if current.writer else ""
        raise DriftDetected(
            f"weights changed outside the bot: {rollout.target.describe()} has "
            f"{current.pair.describe()}, expected {before[0].describe()}{by}"
        )


def last_writer(obj: Obj, *, kind: str, group: str) -> str:
    """The newest field manager other than the bot that wrote the weights, described
    (`argocd-controller (Argo CD) at ...`), or '' when only the bot did."""
    owner = reverted_by(object_facts(obj, kind=kind, group=group))
    return describe(owner) if owner is not None else ""


def insist(rollout: Rollout, written: Observed, wanted: Pair) -> Observed:
    """The object as the server wrote it must show the weights the step meant."""
    if written.pair != wanted:
        raise NeedsOperator(
            f"read-back of {rollout.target.describe()} shows {written.pair.describe()}, "
            f"not {wanted.describe()}"
        )
    return written


def clearing_ops(obj: Obj, rule: int) -> Ops:
    """Remove the bot's marker and record of one rule (weights untouched)."""
    annotations = obj["metadata"].get("annotations") or {}
    return [patch.remove(pointer(key))
            for key in (rule_key(rule), record_key(rule)) if key in annotations]


Entry = dict[str, Any]


def rule_entries(obj: Obj, rule: int, field: str) -> list[Entry] | None:
    """One rule's weighted entries (`backendRefs`, `targets`); None when the rule is gone."""
    rules = obj.get("spec", {}).get("rules") or []
    if rule >= len(rules):
        return None
    entries: list[Entry] = rules[rule].get(field) or []
    return entries


def baseline_of(entries: list[Entry], stable_i: int | None, canary_i: int | None,
                weight: Callable[[Entry], int]) -> Baseline:
    """What a rollback restores: the two entries exactly as read, with their weights."""
    stable = entries[stable_i or 0]
    canary = entries[canary_i] if canary_i is not None else None
    return Baseline(
        stable=copy.deepcopy(stable), canary=copy.deepcopy(canary),
        stable_weight=weight(stable), canary_weight=weight(canary) if canary is not None else 0,
    )


def fingerprint(obj: Obj, rule: int) -> str:
    """What tells rule `rule` apart from the object's other rules besides its index: its
    `name` where it has one (a rule's own identity), else a digest of its `matches` (what
    the rule serves). The bot writes neither, so its own steps never change it; '' when the
    object has no such rule."""
    rules = obj.get("spec", {}).get("rules") or []
    if rule >= len(rules):
        return ""
    name = rules[rule].get("name")
    if name:
        return f"name={name}"
    matches = json.dumps(rules[rule].get("matches") or [], sort_keys=True,
                         separators=(",", ":"))
    return "matches#" + hashlib.sha256(matches.encode()).hexdigest()[:16]


def require_rule(obj: Obj, target: Target) -> None:
    """The rule at the target's index must be the rule the rollout started on: a rule
    inserted before it (a GitOps sync) shifts the index, and a write there, a rollback's
    too (which checks no weights), would move another rule's traffic and report success
    while the real rule still sends the canary its share. A target recorded without a
    fingerprint is known by its index alone; a missing rule is the kind's to describe."""
    now = fingerprint(obj, target.rule)
    if target.fingerprint and now and now != target.fingerprint:
        raise NeedsOperator(
            f"{target.describe()} is no longer the rule the rollout manages (it was "
            f"{target.fingerprint}, the rule at that index is {now}): the rules were "
            "reordered or edited outside the bot, and the bot writes no other rule. Put "
            f"the rule back at index {target.rule} as it was, then resume or roll back"
        )


def recorded_rule(record: RecoveryRecord | None, obj: Obj, rule: int) -> str:
    """The fingerprint a recovered rollout's target carries: the record's, written with the
    rule's marker (a rule inserted since then shows another, and the recover is refused);
    the rule's own where the record predates it."""
    return record.fingerprint if record is not None and record.fingerprint else \
        fingerprint(obj, rule)
