"""A step moves weight within the pair and leaves every other entry of the rule its share
(DESIGN invariant 4, section 5): a pair whose weights are too few to carry percentages on
their own total is refused at start, since writing it on 100 would shrink the others."""

from __future__ import annotations

import pytest

from rollout.adapters.kube.rewrite import targets_at
from rollout.domain.errors import Conflict
from rollout.domain.models import Baseline
from rollout.domain.split import pair_at, require_shares_kept


def _baseline(stable: int, canary: int | None = None) -> Baseline:
    return Baseline(stable={"name": "llm-pool", "weight": stable},
                    canary=None if canary is None else {"name": "v2", "weight": canary},
                    stable_weight=stable, canary_weight=canary or 0)


def _share(weights: dict[str, int], name: str) -> float:
    return weights[name] / sum(weights.values())


@pytest.mark.parametrize(("stable", "other"), [(100, 100), (300, 7), (1000, 1)])
def test_a_pair_of_100_or_more_keeps_the_others_share_at_every_step(stable: int,
                                                                     other: int) -> None:
    base = _baseline(stable, 0)
    require_shares_kept(base, [("other", other)], where="rule 0")
    before = _share({"llm-pool": stable, "other": other}, "other")
    for percent in (1, 10, 50, 100):
        pair = pair_at(base, percent)
        after = {"llm-pool": pair.stable, "v2": pair.canary or 0, "other": other}
        assert _share(after, "other") == pytest.approx(before)


@pytest.mark.parametrize(("stable", "factor"), [(50, 2), (1, 100), (33, 4)])
def test_a_pair_under_100_beside_weighted_others_is_refused_with_the_factor(
        stable: int, factor: int) -> None:
    with pytest.raises(Conflict, match=rf"rule 0 also sends traffic to other \(weight 5\), "
                                       rf".*sum to {stable}: .* by {factor} "):
        require_shares_kept(_baseline(stable), [("other", 5), ("idle", 0)], where="rule 0")


def test_a_pair_that_takes_no_traffic_beside_others_is_refused_with_what_to_do() -> None:
    with pytest.raises(Conflict, match=r"the pair the rollout moves takes none \(its weights "
                                       r"sum to 0\): give the stable entry the weight"):
        require_shares_kept(_baseline(0), [("other", 5)], where="rule 0")


def test_a_pair_under_100_alone_or_beside_idle_entries_is_written_on_100() -> None:
    require_shares_kept(_baseline(1), [], where="rule 0")
    require_shares_kept(_baseline(1), [("idle", 0)], where="rule 0")
    assert pair_at(_baseline(1), 10).canary == 10


def test_an_unweighted_rewrite_target_is_given_the_pairs_scale_and_keeps_its_share() -> None:
    """Rewrite targets carry weights on all or none (the CRD): with none, the other target is
    given the pair's scale, so start need not refuse it."""
    base = Baseline(stable={"modelRewrite": "v1"}, stable_weight=1)
    targets = [{"modelRewrite": "v1"}, {"modelRewrite": "other"}]
    after = targets_at(targets, base, pair_at(base, 10), stable="v1", canary="v2")
    weights = {t["modelRewrite"]: t["weight"] for t in after}
    assert _share(weights, "other") == pytest.approx(0.5)
