"""Weight arithmetic: what the managed pair's weights must be at each step.

Pure functions shared by the state machine (to detect drift) and the traffic adapters (to
write), so both always agree on what "step 2 of the plan" means in the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from rollout.domain.errors import Conflict
from rollout.domain.models import Actor, Baseline, Phase, Rollout


class Pair(BaseModel):
    """The managed pair's weights; `canary` None means the canary entry is absent."""

    model_config = ConfigDict(frozen=True)

    stable: int
    canary: int | None

    def describe(self) -> str:
        canary = "absent" if self.canary is None else str(self.canary)
        return f"stable {self.stable} / canary {canary}"


class MarkerState(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled-back"
    RETIRED = "retired"  # the stable entry was removed from the rule after completion


class Marker(BaseModel):
    """What the bot wrote on the object about the rule: which rollout, which step."""

    model_config = ConfigDict(frozen=True)

    rollout_id: str
    step: int
    state: MarkerState = MarkerState.ACTIVE
    fence: int = 0
    #: who applied the last step, on a completion: a completion recorded from the cluster
    #: after its save was lost still knows who may not retire (the two-person rule)
    by: Actor | None = None


class Observed(BaseModel):
    """The cluster's side of a target, as the traffic adapter read it."""

    model_config = ConfigDict(frozen=True)

    pair: Pair
    marker: Marker | None = None
    resource_version: str = ""
    problem: str = ""  # what the gateway reports wrong with the current generation, if any
    writer: str = ""  # who last wrote the weights, when another field manager did
    #: a write's answer: the bot's marker on the object the write was decided on (it may
    #: name a step that landed after the command's own reconcile read)
    replaced: Marker | None = None


def require_single_entries(names: Sequence[str], *, stable: str, canary: str,
                           where: str) -> None:
    """The bot moves weight between one stable and one canary entry. A rule that lists either
    twice splits by the sum of both (a "10%" step would give the canary 6.7% with the stable
    pool listed twice): refuse until the entries are merged."""
    for role, name in (("stable", stable), ("canary", canary)):
        count = sum(1 for n in names if n == name)
        if count > 1:
            raise Conflict(f"{where} lists the {role} {name} {count} times: merge them into "
                           "one entry (with the summed weight) before starting")


def require_shares_kept(baseline: Baseline, others: Sequence[tuple[str, int]], *,
                        where: str) -> None:
    """The bot writes the pair's percentages on the pair's own weight total, which leaves
    every other entry of the rule its share; a pair whose weights sum to less than 100 is
    written on a total of 100 instead, which would shrink the share of every other entry
    that takes traffic (a 50/50 split with another pool would leave it 1% at the first
    step). Refuse that until the rule's weights are scaled up. `others`: the rule's other
    entries that carry a weight of their own, by name."""
    pair = baseline.stable_weight + baseline.canary_weight
    weighted = [(name, weight) for name, weight in others if weight > 0]
    if not weighted or baseline.total == pair:
        return
    names = ", ".join(f"{name} (weight {weight})" for name, weight in weighted)
    if pair == 0:  # no factor helps: the pair takes no share to move
        raise Conflict(f"{where} sends its traffic to {names}, and the pair the rollout moves "
                       "takes none (its weights sum to 0): give the stable entry the weight "
                       "it is to have, then start again")
    factor = -(-100 // pair)
    raise Conflict(
        f"{where} also sends traffic to {names}, and the weights of the pair the rollout "
        f"moves sum to {pair}: too few to write its percentages without taking share from "
        f"the others. Multiply every weight in the rule by {factor} (every share stays as it "
        "is; an absent weight counts as 1) and start again")


def pair_at(baseline: Baseline, percent: int) -> Pair:
    """The weights that give the canary `percent` of the pair's traffic."""
    total = baseline.total
    canary = (total * percent + 50) // 100
    return Pair(stable=total - canary, canary=canary)


def baseline_pair(baseline: Baseline) -> Pair:
    return Pair(
        stable=baseline.stable_weight,
        canary=None if baseline.canary is None else baseline.canary_weight,
    )


def prepared_pair(baseline: Baseline) -> Pair:
    """After start and before the first step: the canary present at weight 0."""
    canary = 0 if baseline.canary is None else baseline.canary_weight
    return Pair(stable=baseline.stable_weight, canary=canary)


def acceptable_pairs(rollout: Rollout) -> tuple[Pair, ...]:
    """Pairs that agree with the state. Before the first step the canary may still be absent
    (a start that crashed before its write): the first step adds it. Weights changed by hand
    that a person resumed over agree too, until the next step writes the plan's."""
    expected = expected_pair(rollout)
    pairs: tuple[Pair, ...] = ((expected, baseline_pair(rollout.baseline)) if rollout.step < 0
                               else (expected,))
    if rollout.accepted_weights is not None:
        stable, canary = rollout.accepted_weights
        pairs += (Pair(stable=stable, canary=canary),)
    return pairs


def standing_pair(rollout: Rollout) -> Pair:
    """The weights the rollout stands at now: those changed by hand that a person resumed
    over after a drift pause, until the next step writes the plan's; else the step's. What
    the canary's traffic share is measured against, and what the card shows."""
    if rollout.accepted_weights is not None and rollout.active:
        stable, canary = rollout.accepted_weights
        return Pair(stable=stable, canary=canary)
    return expected_pair(rollout)


def share_percent(pair: Pair) -> int:
    """The canary's share of the pair's traffic, in whole percent."""
    canary = pair.canary or 0
    total = pair.stable + canary
    return (100 * canary + total // 2) // total if total else 0


def expected_pair(rollout: Rollout, step: int | None = None) -> Pair:
    """What the cluster should show with `step` (default: the rollout's) applied; a rolled
    back rollout shows its baseline."""
    if step is None and rollout.phase is Phase.ROLLED_BACK:
        return baseline_pair(rollout.baseline)
    index = rollout.step if step is None else step
    if index < 0:
        return prepared_pair(rollout.baseline)
    return pair_at(rollout.baseline, rollout.plan.steps[index].percent)
