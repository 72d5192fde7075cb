"""The `/rollout` grammar at its edges: bounds of numeric options, the usage line a typo
earns, and the exact words of a refusal."""

from __future__ import annotations

import pytest

from handlers.commands import Verb
from handlers.grammar import GENERAL_USAGE, USAGE_LINES, GrammarError, parse

POOL = "llm-pool-version-2"


@pytest.mark.parametrize("text", ["strat", f"{POOL} strat", f"{POOL} STRAT", f"strat {POOL}"])
def test_a_mistyped_verb_is_answered_with_the_usage_of_the_verb_meant(text: str) -> None:
    with pytest.raises(GrammarError) as err:
        parse(text)
    assert str(err.value).endswith("; did you mean `start`?")
    assert err.value.usage == USAGE_LINES[Verb.START]


def test_an_unknown_option_with_no_verb_in_sight_gets_the_general_usage() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} --frob")
    assert str(err.value) == "unknown option `--frob`; did you mean `--route`?"
    assert err.value.usage == GENERAL_USAGE


@pytest.mark.parametrize("bound", ["1", "10"])
def test_approvals_accepts_both_ends_of_its_range(bound: str) -> None:
    assert parse(f"{POOL} start --approvals {bound}").approvals == int(bound)


def test_approvals_above_the_maximum_is_refused_with_the_range() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} start --approvals 11")
    assert str(err.value) == "`--approvals` wants a number of approvers from 1 to 10, not `11`"


@pytest.mark.parametrize("bound", ["1", "100"])
def test_step_accepts_both_ends_of_its_range(bound: str) -> None:
    assert parse(f"{POOL} approve --step {bound}").step == int(bound)


def test_step_above_the_maximum_is_refused() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} approve --step 101")
    assert str(err.value) == ("`--step` wants the number of the step to approve (1 is the "
                              "first), not `101`")


def test_a_bad_step_is_answered_with_an_approve_usage_that_shows_the_step() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} approve --step 0")
    assert err.value.usage == USAGE_LINES[Verb.APPROVE]
    assert err.value.usage == "`/rollout <pool> approve [--step N] [-n NS]`"


def test_an_analysis_name_may_use_capital_letters() -> None:
    assert parse(f"{POOL} start --analysis Latency-SLO").analysis == "Latency-SLO"


def test_unexpected_words_are_quoted_back_as_typed() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} status now please")
    assert str(err.value) == "unexpected `now please` after `status`"


def test_a_lone_dash_is_a_word_not_an_option() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} status -")
    assert str(err.value) == "unexpected `-` after `status`"
    assert parse(f"{POOL} rollback -").reason == "-"


def test_an_install_verb_after_a_pool_names_the_pool() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} freeze")
    assert str(err.value) == (f"`freeze` applies to the whole install, not to `{POOL}`: "
                              '`/rollout freeze [--reason "text"]`')
