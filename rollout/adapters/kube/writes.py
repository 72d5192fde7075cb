"""What every traffic adapter writes the same way: the drift guard, the bot's marker and
record, and the read-back check around one fenced patch. Adapters supply only the spec ops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollout.adapters.kube.fenced import FencedObjects, Obj, annotation_op
from rollout.adapters.kube.markers import (
    encode_marker,
    encode_record,
    pointer,
    record_key,
    rule_key,
)
from rollout.domain.errors import DriftDetected, NeedsOperator
from rollout.domain.machine import ApplyStep, Effect, Prepare, Restore
from rollout.domain.models import Rollout
from rollout.domain.split import Marker, MarkerState, Observed, Pair

Ops = list[dict[str, Any]]


def marker_for(rollout: Rollout, effect: Effect) -> Marker:
    """The marker that says, on the object, what this effect leaves behind."""
    if isinstance(effect, Restore):
        return Marker(rollout_id=rollout.id, step=rollout.step, state=MarkerState.ROLLED_BACK)
    if isinstance(effect, Prepare):
        return Marker(rollout_id=rollout.id, step=-1)
    assert isinstance(effect, ApplyStep)
    done = effect.step == rollout.plan.last_index
    return Marker(rollout_id=rollout.id, step=effect.step,
                  state=MarkerState.COMPLETED if done else MarkerState.ACTIVE)


def fenced_apply(
    objects: FencedObjects, rollout: Rollout, effect: Effect, *, fence: int,
    before: tuple[Pair, ...] | None, observe_obj: Callable[[Obj], Observed],
    spec_ops: Callable[[Obj], Ops], wanted: Pair,
) -> Observed:
    """Write `spec_ops` and the bookkeeping under the fence, unless the managed weights moved
    since the state was saved (drift); then insist on `wanted` in the object as the server
    wrote it (the PATCH answers with it: no second read)."""
    t = rollout.target

    def mutate(obj: Obj) -> Ops:
        current = observe_obj(obj).pair
        if before is not None and current not in before:
            raise DriftDetected(
                f"weights changed outside the bot: {t.describe()} has {current.describe()}, "
                f"expected {before[0].describe()}"
            )
        ops = spec_ops(obj)
        ops.append(annotation_op(rule_key(t.rule), encode_marker(marker_for(rollout, effect))))
        if isinstance(effect, Prepare):
            ops.append(annotation_op(record_key(t.rule), encode_record(rollout)))
        return ops

    observed = observe_obj(objects.patch(t.namespace, t.name, mutate, fence=fence))
    if observed.pair != wanted:
        raise NeedsOperator(
            f"read-back of {t.describe()} shows {observed.pair.describe()}, "
            f"not {wanted.describe()}"
        )
    return observed


def clearing_ops(obj: Obj, rule: int) -> Ops:
    """Remove the bot's marker and record of one rule (weights untouched)."""
    annotations = obj["metadata"].get("annotations") or {}
    return [{"op": "remove", "path": pointer(key)}
            for key in (rule_key(rule), record_key(rule)) if key in annotations]
