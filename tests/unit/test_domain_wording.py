"""The exact words of the small domain rules people read: the freeze, plan errors, the split's
description and the plan summary. A refusal is the whole answer, so it is pinned whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rollout.domain.errors import Conflict, InvalidInput, Refused, Unauthorized
from rollout.domain.freeze import (
    MAX_REASON,
    Action,
    Freeze,
    blocks,
    check_blocked,
    freeze,
    unfreeze,
)
from rollout.domain.models import Baseline
from rollout.domain.plan import build_plan, describe_plan, parse_interval, parse_steps
from rollout.domain.split import Pair, acceptable_pairs, pair_at, prepared_pair
from tests.unit.builders import started

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def _said(call: object, error: type[Exception]) -> str:
    with pytest.raises(error) as caught:
        call()  # type: ignore[operator]
    return str(caught.value)


def test_the_freeze_s_refusals_in_full() -> None:
    frozen = Freeze(by="U_ALICE", reason="incident 42", since=T0)
    assert blocks(frozen, Action.START) == (
        "Rollouts are frozen by U_ALICE since 2026-11-26 05:00:00 UTC: incident 42. New "
        "rollouts wait until an approver runs unfreeze; rollback and pause still work.")
    quiet = Freeze(by="U_ALICE", since=T0)
    assert blocks(quiet, Action.STEP_UP) == (
        "Rollouts are frozen by U_ALICE since 2026-11-26 05:00:00 UTC. Step-ups wait until an "
        "approver runs unfreeze; rollback and pause still work.")
    assert _said(lambda: check_blocked(quiet, Action.START), Refused).startswith(
        "Rollouts are frozen by U_ALICE")
    check_blocked(quiet, Action.ROLLBACK)
    assert _said(lambda: freeze(None, actor="U_BOB", is_approver=False, reason="", now=T0),
                 Unauthorized) == "only approvers may freeze rollouts"
    assert _said(lambda: unfreeze(frozen, is_approver=False), Unauthorized) == \
        "only approvers may unfreeze rollouts"
    assert _said(lambda: unfreeze(None, is_approver=True), Conflict) == "rollouts are not frozen"
    assert _said(lambda: freeze(None, actor="U_BOB", is_approver=True,
                                reason="x" * (MAX_REASON + 1), now=T0), InvalidInput) == \
        f"the reason is {MAX_REASON + 1} characters; keep it under {MAX_REASON}"
    at_limit = freeze(None, actor="U_BOB", is_approver=True, reason="x" * MAX_REASON, now=T0)
    assert len(at_limit.reason) == MAX_REASON


def test_plan_errors_in_full() -> None:
    assert _said(lambda: build_plan([10, 101]), InvalidInput) == \
        "invalid plan: a step is over 100 (101)"
    assert _said(lambda: build_plan([0, 100]), InvalidInput) == \
        "invalid plan: a step must be at least 1 (0)"
    assert _said(lambda: build_plan([50, 10, 100]), InvalidInput) == \
        "invalid plan: steps must strictly increase (50 then 10)"
    assert parse_steps("10%, 25% ,100") == [10, 25, 100]
    assert _said(lambda: parse_steps("10,,100"), InvalidInput) == (
        "invalid step list `10,,100`: give percentages like 10,25,50,100")
    assert _said(lambda: parse_steps("  "), InvalidInput) == (
        "invalid step list `  `: give percentages like 10,25,50,100")
    assert parse_interval("168h") == 7 * 24 * 3600
    assert _said(lambda: parse_interval("169h"), InvalidInput) == \
        "invalid interval `169h`: at most 7 days"


def test_the_plan_summary_and_the_pair_in_words() -> None:
    assert describe_plan(build_plan([10, 100], interval_seconds=90)) == \
        "10% → 100%, bake 1m30s, approval at each step"
    assert describe_plan(build_plan([10, 100], interval_seconds=0, auto=True)) == \
        "10% → 100%, bake 0s, automatic"
    assert Pair(stable=100, canary=None).describe() == "stable 100 / canary absent"
    assert Pair(stable=90, canary=10).describe() == "stable 90 / canary 10"


def _baseline(stable: int, canary: int | None) -> Baseline:
    return Baseline(stable={"name": "a", "weight": stable},
                    canary=None if canary is None else {"name": "b", "weight": canary},
                    stable_weight=stable, canary_weight=canary or 0)


def test_rounding_is_to_the_nearest_and_a_half_rounds_up() -> None:
    assert pair_at(_baseline(150, 0), 1) == Pair(stable=148, canary=2)  # 1.5 rounds up
    assert pair_at(_baseline(149, 0), 1) == Pair(stable=148, canary=1)  # 1.49 rounds down


def test_a_prepared_pair_keeps_the_canary_s_baseline_weight() -> None:
    assert prepared_pair(_baseline(100, None)) == Pair(stable=100, canary=0)
    assert prepared_pair(_baseline(95, 5)) == Pair(stable=95, canary=5)


def test_only_before_the_first_step_may_the_canary_still_be_absent() -> None:
    r = started(baseline=_baseline(100, None))
    assert acceptable_pairs(r) == (Pair(stable=100, canary=0), Pair(stable=100, canary=None))
    applied = r.model_copy(update={"step": 0})
    assert acceptable_pairs(applied) == (Pair(stable=90, canary=10),)
