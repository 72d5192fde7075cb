"""Rewrite target weights: 0% means the canary is absent, 100% means the stable is removed, and
a rule without weights gets them on every target once the bot writes any."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from rollout.adapters.kube.rewrite import (
    next_targets,
    pair_after,
    pair_of,
    restored_targets,
    targets_at,
)
from rollout.domain import machine
from rollout.domain.machine import ApplyStep, Prepare, Restore
from rollout.domain.models import Actor, Baseline, Rollout, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Pair, acceptable_pairs, baseline_pair, expected_pair, pair_at

V1, V2 = "lora-v1", "lora-v2"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _baseline(targets: list[dict[str, Any]]) -> Baseline:
    stable = next(t for t in targets if t["modelRewrite"] == V1)
    return Baseline(stable=copy.deepcopy(stable), stable_weight=stable.get("weight", 1))


def _rollout(targets: list[dict[str, Any]], steps: tuple[int, ...] = (10, 25, 50, 100)) -> Rollout:
    target = Target(kind=TargetKind.REWRITE, namespace="default", name="rw", rule=0,
                    api_group="llm-d.ai")
    return machine.start(
        rollout_id="r1", target=target, stable=V1, canary=V2,
        plan=build_plan(list(steps), interval_seconds=0), baseline=_baseline(targets),
        actor=Actor(id="cli:alice"), now=T0,
    ).rollout


def _walk(targets: list[dict[str, Any]], steps: tuple[int, ...]) -> list[list[dict[str, Any]]]:
    """The targets after each step, as the adapter would write them one after another."""
    r = _rollout(targets, steps)
    seen, current = [], targets
    for i, percent in enumerate(steps):
        r = r.model_copy(update={"step": i})
        current = next_targets(current, r, ApplyStep(step=i, percent=percent))
        seen.append(current)
    return seen


def test_steps_add_the_canary_and_remove_the_stable_at_100() -> None:
    seen = _walk([{"modelRewrite": V1, "weight": 100}], (10, 25, 50, 100))
    assert seen == [
        [{"modelRewrite": V1, "weight": 90}, {"modelRewrite": V2, "weight": 10}],
        [{"modelRewrite": V1, "weight": 75}, {"modelRewrite": V2, "weight": 25}],
        [{"modelRewrite": V1, "weight": 50}, {"modelRewrite": V2, "weight": 50}],
        [{"modelRewrite": V2, "weight": 100}],
    ]


def test_absent_is_zero_for_the_stable_and_none_for_the_canary() -> None:
    assert pair_of([{"modelRewrite": V1, "weight": 7}], stable=V1, canary=V2) == Pair(
        stable=7, canary=None)
    assert pair_of([{"modelRewrite": V2, "weight": 100}], stable=V1, canary=V2) == Pair(
        stable=0, canary=100)


def test_what_the_adapter_reads_back_is_what_the_domain_expects() -> None:
    targets = [{"modelRewrite": V1, "weight": 100}]
    r = _rollout(targets)
    assert pair_of(targets, stable=V1, canary=V2) in acceptable_pairs(r)  # prepared, 0%
    for i, written in enumerate(_walk(targets, (10, 25, 50, 100))):
        assert pair_of(written, stable=V1, canary=V2) == expected_pair(r, i)
    assert pair_of(targets, stable=V1, canary=V2) == baseline_pair(r.baseline)  # rolled back


@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_restore_puts_the_exact_targets_back_from_any_step(at: int) -> None:
    original = [{"modelRewrite": "other", "weight": 30}, {"modelRewrite": V1, "weight": 70},
                {"modelRewrite": "last", "weight": 5}]
    written = _walk(original, (10, 25, 50, 100))[at]
    assert written[0] == {"modelRewrite": "other", "weight": 30}  # untouched throughout
    r = _rollout(original)
    assert next_targets(written, r, Restore()) == original


def test_the_new_adapter_takes_the_old_ones_place_at_100() -> None:
    original = [{"modelRewrite": V1, "weight": 100}, {"modelRewrite": "b", "weight": 100}]
    assert _walk(original, (50, 100))[-1] == [{"modelRewrite": V2, "weight": 100},
                                              {"modelRewrite": "b", "weight": 100}]


def test_a_rule_without_weights_gets_them_on_every_target_keeping_shares() -> None:
    original = [{"modelRewrite": V1}, {"modelRewrite": "b"}]
    assert pair_of(original, stable=V1, canary=V2) == Pair(stable=1, canary=None)
    seen = _walk(original, (10, 100))
    # the pair is written in percent; b keeps its half by weighing as much as the pair
    assert seen == [
        [{"modelRewrite": V1, "weight": 90}, {"modelRewrite": V2, "weight": 10},
         {"modelRewrite": "b", "weight": 100}],
        [{"modelRewrite": V2, "weight": 100}, {"modelRewrite": "b", "weight": 100}],
    ]
    r = _rollout(original)
    for written in seen:
        assert next_targets(written, r, Restore()) == original


def test_prepare_writes_no_target() -> None:
    original = [{"modelRewrite": V1, "weight": 100}]
    r = _rollout(original)
    assert next_targets(original, r, Prepare()) == original
    assert pair_after(r, Prepare()) == Pair(stable=100, canary=None)


def test_a_canary_present_before_start_is_restored_in_place() -> None:
    original = [{"modelRewrite": V1, "weight": 100}, {"modelRewrite": V2, "weight": 3}]
    base = Baseline(stable=original[0], canary=original[1], stable_weight=100, canary_weight=3)
    moved = targets_at(original, base, pair_at(base, 100), stable=V1, canary=V2)
    assert moved == [{"modelRewrite": V2, "weight": 103}]
    assert restored_targets(moved, base, stable=V1, canary=V2) == original
