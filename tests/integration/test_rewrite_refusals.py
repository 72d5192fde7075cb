"""Adapter rollouts: bad input gets a clear answer and changes nothing, in the cluster or Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rollout.domain.errors import Ambiguous, Conflict, InvalidInput, NotFound
from tests.integration.conftest import World
from tests.integration.rewrite_support import (
    LEGACY,
    LLMD,
    REWRITE,
    V1,
    V2,
    put_rewrite,
    rule,
    start,
)


def _snapshot(world: World) -> tuple[object, ...]:
    versions: list[object] = []
    for group in (LLMD, LEGACY):
        for name in ("small-segment-lora", "twice", "weighted", "several", "mixed",
                     "markup"):
            obj = world.emulator.get_object(group, "v1alpha2", "inferencemodelrewrites",
                                            "default", name)
            versions.append(None if obj is None else obj["metadata"]["resourceVersion"])
    versions.append(world.route()["metadata"]["resourceVersion"])
    keys = tuple(sorted(world.store.client.keys(world.store.key("*"))))
    return tuple(versions), keys


def _refused(world: World, call: Callable[[], object], kind: type[Exception], match: str) -> None:
    before = _snapshot(world)
    with pytest.raises(kind, match=match):
        call()
    assert _snapshot(world) == before


def test_unknown_rewrite(world: World) -> None:
    _refused(world, lambda: start(world, "nope"), NotFound,
             "InferenceModelRewrite nope not found in default")


def test_stable_not_in_any_rule(world: World) -> None:
    _refused(world, lambda: start(world, stable="small-segment-lora-v0"), NotFound,
             f"InferenceModelRewrite {REWRITE} has no rule with target small-segment-lora-v0")


def test_two_rules_with_the_stable_are_ambiguous(world: World) -> None:
    put_rewrite(world, "twice", [rule("a", {"modelRewrite": V1, "weight": 100}),
                                 rule("b", {"modelRewrite": V1, "weight": 100})])
    _refused(world, lambda: start(world, "twice", stable=V1), Ambiguous,
             r"has 2 rules with target small-segment-lora-v1 \(rule 0: model a; "
             r"rule 1: model b\)")
    _refused(world, lambda: start(world, "twice"), Ambiguous,
             r"\(rule 0: model a; rule 1: model b\): pick the old adapter with --stable")


def test_several_targets_need_stable(world: World) -> None:
    put_rewrite(world, "several", [rule("m", {"modelRewrite": "x", "weight": 100},
                                        {"modelRewrite": "y", "weight": 100})])
    _refused(world, lambda: start(world, "several", canary="z"), Ambiguous,
             r"rule 0 has several targets \(x, y\): pick the old adapter with --stable")
    assert start(world, "several", canary="z", stable="y").ok


def test_canary_already_weighted(world: World) -> None:
    put_rewrite(world, "weighted", [rule("m", {"modelRewrite": V1, "weight": 95},
                                         {"modelRewrite": V2, "weight": 5})])
    _refused(world, lambda: start(world, "weighted"), Conflict,
             r"small-segment-lora-v2 already receives traffic \(weight 5\).*remove it from "
             "the rule")


def test_weights_on_some_targets_only_are_refused(world: World) -> None:
    """The picker never selects an unweighted target beside weighted ones; the bot's first
    step would have given it a weight (and traffic) that a rollback left in place."""
    put_rewrite(world, "mixed", [rule("m", {"modelRewrite": V1, "weight": 100},
                                      {"modelRewrite": "x"})])
    _refused(world, lambda: start(world, "mixed", stable=V1), Conflict,
             r"^InferenceModelRewrite mixed rule 0 gives weights to some targets and none to "
             r"x, which the endpoint picker therefore never selects: give every target a "
             r"weight, or remove the targets without one, and start again$")
    put_rewrite(world, "mixed", [rule("m", {"modelRewrite": V1}, {"modelRewrite": "x"})])
    assert start(world, "mixed", stable=V1).ok  # none weighted: an equal split


def test_a_stable_adapter_name_the_card_cannot_show_is_refused(world: World) -> None:
    """The CRD lets a target be any string: one with Slack's markup would have gone live
    onto the card (`<!here>`), and a very long one broke the Roll back dialog."""
    put_rewrite(world, "markup", [rule("m", {"modelRewrite": "lora-v1<!here>", "weight": 100})])
    _refused(world, lambda: start(world, "markup"), InvalidInput,
             r"^the stable adapter of InferenceModelRewrite markup rule 0 `lora-v1<!here>` "
             r"is not a model name")
    put_rewrite(world, "markup", [rule("m", {"modelRewrite": "v" * 300, "weight": 100})])
    _refused(world, lambda: start(world, "markup"), InvalidInput, "is not a model name")


def test_canary_is_the_stable(world: World) -> None:
    _refused(world, lambda: start(world, canary=V1, stable=V1), Conflict,
             "the stable and the canary adapter are both")


def test_route_and_rewrite_together(world: World) -> None:
    _refused(world, lambda: start(world, route="routes-to-llm"), InvalidInput,
             "not both")


def test_second_rollout_on_the_same_rule(world: World) -> None:
    assert start(world).ok
    _refused(world, lambda: start(world, canary="small-segment-lora-v3", stable=V1), Conflict,
             "already has an active rollout")
