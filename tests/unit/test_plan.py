"""Plan parsing and validation: bad input gets a clear answer."""

from __future__ import annotations

import pytest

from rollout.domain.errors import InvalidInput
from rollout.domain.models import Gate
from rollout.domain.plan import (
    build_plan,
    describe_plan,
    format_seconds,
    parse_interval,
    parse_steps,
)


def test_default_plan_is_10_25_50_100_with_approvals() -> None:
    plan = build_plan()
    assert plan.percents == [10, 25, 50, 100]
    assert all(s.gate is Gate.APPROVAL and s.approvals == 1 for s in plan.steps)


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0), ("0", 0), ("90s", 90), ("15m", 900), ("2h", 7200)]
)
def test_intervals(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


def test_a_bare_number_is_refused_in_one_line_that_says_how_to_write_it() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_interval("30")
    assert str(refused.value) == "interval 30 has no unit: write 30s, 30m or 30h"
    assert parse_interval("30", require_unit=False) == 30  # settings: seconds, as before


@pytest.mark.parametrize("text", ["", "15x", "m", "-5m", "1.5h", "8000h", "\u0661\u0665m", "²m",
                                  "9" * 5000 + "s", "1" + "0" * 9 + "s"])
def test_bad_intervals_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid interval"):
        parse_interval(text)


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ([], "empty"),
        ([10, 10, 100], "strictly increase"),
        ([50, 25, 100], "strictly increase"),
        ([10, 150], "over 100"),
        ([10, 50], "must be 100"),
        ([0, 100], "at least 1"),
    ],
)
def test_invalid_step_lists_say_why(steps: list[int], why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        build_plan(steps)


@pytest.mark.parametrize("text", ["", "10,,100", "ten,100", "10;100", "\u0661\u0660,100", "²,100",
                                  "+10,100", "-10,100", "9" * 5000 + ",100"])
def test_unparseable_steps(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid step list"):
        parse_steps(text)


def test_steps_accept_percent_signs_and_spaces() -> None:
    assert parse_steps("10%, 50% ,100") == [10, 50, 100]


def test_describe() -> None:
    plan = build_plan([10, 100], interval_seconds=3660, auto=True)
    assert describe_plan(plan) == "10% → 100%, bake 1h1m, automatic"
    assert format_seconds(0) == "0s"
