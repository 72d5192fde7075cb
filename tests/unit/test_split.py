"""Weight arithmetic: the bot writes exactly the plan's weights."""

from __future__ import annotations

import pytest

from rollout.domain.models import Baseline
from rollout.domain.split import baseline_pair, pair_at, prepared_pair


def _baseline(stable: int, canary: int | None) -> Baseline:
    return Baseline(
        stable={"name": "a", "weight": stable},
        canary=None if canary is None else {"name": "b", "weight": canary},
        stable_weight=stable, canary_weight=canary or 0,
    )


@pytest.mark.parametrize(("percent", "stable", "canary"), [(10, 90, 10), (25, 75, 25),
                                                            (50, 50, 50), (100, 0, 100)])
def test_percentages_of_a_100_pair(percent: int, stable: int, canary: int) -> None:
    pair = pair_at(_baseline(100, 0), percent)
    assert (pair.stable, pair.canary) == (stable, canary)


def test_a_pair_that_summed_to_something_else_keeps_its_sum() -> None:
    pair = pair_at(_baseline(1000, 0), 25)
    assert (pair.stable, pair.canary) == (750, 250)


def test_a_default_weight_of_one_is_split_in_percent() -> None:
    pair = pair_at(_baseline(1, None), 10)
    assert (pair.stable, pair.canary) == (90, 10)


def test_absent_canary_is_prepared_at_zero_and_restored_absent() -> None:
    base = _baseline(100, None)
    assert prepared_pair(base).canary == 0
    assert baseline_pair(base).canary is None


@pytest.mark.parametrize(("total", "percent", "canary"), [
    (101, 50, 51),       # 50.5 rounds up, not down to 50
    (150, 1, 2),         # 1.5 rounds up
    (130, 1, 1),         # 1.3 rounds down
    (250, 25, 63),       # 62.5 rounds up
    (999, 50, 500),      # 499.5 rounds up
    (333, 10, 33),       # 33.3 rounds down
])
def test_weights_are_rounded_to_the_nearest_for_any_total_of_at_least_100(
    total: int, percent: int, canary: int
) -> None:
    pair = pair_at(_baseline(total, 0), percent)
    assert (pair.stable, pair.canary) == (total - canary, canary)
