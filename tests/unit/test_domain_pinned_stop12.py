"""Exact pins of the domain code that keeps other backends' shares, reads the weights a
person kept, parses bounded numbers, checks the canary in its own group, refuses promote
past several approvers and refuses competing rules of one rewrite: each line would let a
changed rule pass unnoticed otherwise."""

from __future__ import annotations

import pytest

from rollout.domain import machine
from rollout.domain.admission import request_for
from rollout.domain.errors import Conflict, InvalidInput
from rollout.domain.facts import LEGACY_GROUP, POOL_GROUP, RewriteFacts, RewriteRule
from rollout.domain.findings import Check, Finding
from rollout.domain.models import Baseline, Phase, Plan, Step
from rollout.domain.plan import parse_interval, parse_steps
from rollout.domain.preflight import check_rewrite
from rollout.domain.split import Pair, require_shares_kept, share_percent
from tests.unit.builders import BOB, T0, TARGET, started
from tests.unit.facts_builders import STABLE, world


def _baseline(stable: int, canary: int | None = None) -> Baseline:
    return Baseline(stable={"name": "llm-pool", "weight": stable},
                    canary=None if canary is None else {"name": "v2", "weight": canary},
                    stable_weight=stable, canary_weight=canary or 0)


def test_the_refusal_names_every_weighted_other_and_counts_the_canary_in_the_pair() -> None:
    with pytest.raises(Conflict) as refused:
        require_shares_kept(_baseline(60, 30), [("a", 1), ("b", 7), ("idle", 0)],
                            where="rule 0")
    assert str(refused.value) == (
        "rule 0 also sends traffic to a (weight 1), b (weight 7), and the weights of the pair "
        "the rollout moves sum to 90: too few to write its percentages without taking share "
        "from the others. Multiply every weight in the rule by 2 (every share stays as it is; "
        "an absent weight counts as 1) and start again")
    with pytest.raises(Conflict) as none:
        require_shares_kept(_baseline(0), [("a", 1)], where="rule 0")
    assert str(none.value) == (
        "rule 0 sends its traffic to a (weight 1), and the pair the rollout moves takes none "
        "(its weights sum to 0): give the stable entry the weight it is to have, then start "
        "again")
    require_shares_kept(_baseline(70, 30), [("a", 1)], where="rule 0")  # 100: kept as is


@pytest.mark.parametrize(("pair", "percent"), [
    (Pair(stable=90, canary=10), 10), (Pair(stable=33, canary=67), 67),
    (Pair(stable=2, canary=1), 33), (Pair(stable=199, canary=1), 1),
    (Pair(stable=100, canary=None), 0), (Pair(stable=0, canary=0), 0),
])
def test_the_canarys_share_in_whole_percent(pair: Pair, percent: int) -> None:
    assert share_percent(pair) == percent


def test_an_interval_of_nine_digits_is_read_and_ten_are_cut_in_the_answer() -> None:
    with pytest.raises(InvalidInput) as nine:
        parse_interval("999999999s")
    assert str(nine.value) == "invalid interval `999999999s`: at most 7 days"
    with pytest.raises(InvalidInput) as ten:
        parse_interval("12345678901234567890123s")
    assert str(ten.value) == "invalid interval `12345678901234567890`…: at most 7 days"
    with pytest.raises(InvalidInput) as steps:
        parse_steps("x" * 100)
    assert str(steps.value) == (f"invalid step list `{'x' * 80}`: steps are whole "
                                "percentages like 10,25,50,100")


def test_a_canary_ref_without_a_group_is_the_ga_group_and_one_with_it_its_own() -> None:
    legacy = Baseline(stable={"group": LEGACY_GROUP, "name": STABLE, "weight": 100},
                      canary={"name": "v2", "weight": 0}, stable_weight=100)
    assert request_for(target=TARGET, stable=STABLE, canary="v2", baseline=legacy,
                       share_percent=None, allow_gitops=False).canary_group == POOL_GROUP
    ga = Baseline(stable={"name": STABLE, "weight": 100},
                  canary={"group": LEGACY_GROUP, "name": "v2", "weight": 0}, stable_weight=100)
    assert request_for(target=TARGET, stable=STABLE, canary="v2", baseline=ga,
                       share_percent=None, allow_gitops=False).canary_group == LEGACY_GROUP


def _plan(*approvals: int) -> Plan:
    percents = [10, 50, 100][-len(approvals):]
    return Plan(steps=tuple(Step(percent=p, approvals=a) for p, a in zip(percents, approvals,
                                                                           strict=True)))


def test_promote_counts_the_approvers_of_the_steps_it_skips_only() -> None:
    past_two = started().model_copy(update={"plan": _plan(2, 1, 1), "step": 1,
                                            "phase": Phase.BAKING})  # step 1's two are past
    assert machine.promote(past_two, actor=BOB, now=T0).rollout.phase is Phase.COMPLETED
    next_needs_two = started().model_copy(update={"plan": _plan(1, 2, 1), "step": 0,
                                                  "phase": Phase.BAKING})
    with pytest.raises(Conflict) as refused:
        machine.promote(next_needs_two, actor=BOB, now=T0)
    assert str(refused.value) == (
        "the plan of llm-pool-version-2 needs 2 approvers for a step, and promote would "
        "apply the remaining steps on one: approve them step by step (or roll back)")


def test_two_catch_alls_of_one_rewrite_are_one_exact_finding() -> None:
    two = RewriteFacts(name="lora", pool=STABLE, created="2026-01-01T00:00:00Z", rules=(
        RewriteRule(models=(), targets=("a",)), RewriteRule(models=(), targets=("b",))))
    assert check_rewrite(world(rewrites=(two,)), rewrite="lora", rule=1) == (Finding(
        check=Check.REWRITE,
        problem="rules 0 and 1 of lora are both catch-alls (no matches): which one the "
                "endpoint picker applies is not defined",
        remedy="Keep one catch-all rule in lora"),)


def test_an_interval_of_ten_digits_is_cut_in_the_answer() -> None:
    with pytest.raises(InvalidInput) as ten:
        parse_interval("1234567890s")
    assert str(ten.value) == "invalid interval `1234567890s`…: at most 7 days"


def test_a_model_in_two_rules_of_one_rewrite_is_one_exact_finding() -> None:
    two = RewriteFacts(name="lora", pool=STABLE, created="2026-01-01T00:00:00Z", rules=(
        RewriteRule(models=("m",), targets=("a",)), RewriteRule(models=("m",), targets=("b",))))
    assert check_rewrite(world(rewrites=(two,)), rewrite="lora", rule=0) == (Finding(
        check=Check.REWRITE,
        problem="model m is matched by rules 0 and 1 of lora: which one the endpoint picker "
                "applies is not defined",
        remedy="Keep model m in one rule of lora"),)
