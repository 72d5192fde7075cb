"""The grammar's refusals of numbers and names, pinned word for word: which option is named,
what it wants, whether the digits must be ASCII, where a long value is cut and how long a
value may be before it is no number anyone meant."""

from __future__ import annotations

import pytest

from handlers.grammar import GrammarError, parse

POOL = "llm-pool-version-2"
STEPS = "`--steps` wants percentages like 10,25,50,100"
DURATION = "a duration like 90s, 15m or 2h"
ASCII = ", in the digits 0-9"


def _refusal(text: str) -> str:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} start {text}")
    return str(err.value)


@pytest.mark.parametrize("flag", ["--route", "--rewrite"])
def test_a_bad_name_names_the_option_it_was_given_to(flag: str) -> None:
    assert _refusal(f"{flag} Bad_Name") == (
        f"`{flag}` `Bad_Name` is not a Kubernetes name: use at most 253 lowercase letters, "
        "digits, `-` and `.`, starting and ending with a letter or digit")


@pytest.mark.parametrize("text, message", [
    ("--steps \uff110,50,100", f"{STEPS}{ASCII}, not `\uff110,50,100`"),
    ("--interval \u0661\u0665m", f"`--interval` wants {DURATION}{ASCII}, not `\u0661\u0665m`"),
    ("--keep \uff12h", f"`--keep` wants {DURATION}{ASCII}, not `\uff12h`"),
    ("--approvals ²", f"`--approvals` wants a number of approvers from 1 to 10{ASCII}, not `²`"),
])
def test_digits_that_are_not_ascii_are_refused_saying_so(text: str, message: str) -> None:
    assert _refusal(text) == message


def test_a_step_number_in_other_digits_is_refused_saying_so() -> None:
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} approve --step \u0663")
    assert str(err.value) == ("`--step` wants the number of the step to approve (1 is the "
                              f"first){ASCII}, not `\u0663`")


def test_ascii_numbers_that_are_wrong_are_refused_without_the_digits_hint() -> None:
    assert _refusal("--approvals 0") == ("`--approvals` wants a number of approvers from 1 to "
                                         "10, not `0`")
    with pytest.raises(GrammarError) as err:
        parse(f"{POOL} approve --step 0")
    assert str(err.value) == ("`--step` wants the number of the step to approve (1 is the "
                              "first), not `0`")


def test_400_characters_reach_the_plan_parser_and_401_are_refused_before_it() -> None:
    at_limit = _refusal("--steps " + "5" * 400)
    assert not at_limit.startswith(STEPS) and "invalid step list" in at_limit
    assert _refusal("--steps " + "5" * 401) == f"{STEPS}, not `{'5' * 57}...`"
    interval = _refusal("--interval " + "1" * 399 + "s")
    assert not interval.startswith("`--interval` wants") and "at most 7 days" in interval
    assert _refusal("--interval " + "1" * 400 + "s") == (
        f"`--interval` wants {DURATION}, not `{'1' * 57}...`")


def test_a_value_of_60_characters_is_quoted_whole_and_61_are_cut_to_57_and_dots() -> None:
    assert _refusal("--steps " + "é" * 60) == f"{STEPS}{ASCII}, not `{'é' * 60}`"
    assert _refusal("--steps " + "é" * 61) == f"{STEPS}{ASCII}, not `{'é' * 57}...`"
    assert _refusal("--approvals " + "²" * 59) == (
        f"`--approvals` wants a number of approvers from 1 to 10{ASCII}, not `{'²' * 59}`")
