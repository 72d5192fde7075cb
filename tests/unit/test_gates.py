"""The gateway gate: a step the gateway rejects pauses the rollout, at the step it reached."""

from __future__ import annotations

from typing import Any

from rollout.domain import machine
from rollout.domain.gates import gateway_problem
from rollout.domain.models import PauseKind, Phase, Rollout
from rollout.domain.split import Marker, Observed, Pair
from tests.unit.builders import BOB, T0


def _route(generation: int, *conditions: tuple[str, str, str, int]) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {"parents": [{"parentRef": {"name": "inference-gateway"}, "conditions": [
            {"type": t, "status": s, "reason": reason, "message": "pool x not found",
             "observedGeneration": g} for t, s, reason, g in conditions]}]},
    }


def test_a_false_condition_of_the_current_generation_is_a_problem() -> None:
    route = _route(3, ("Accepted", "True", "Accepted", 3),
                   ("ResolvedRefs", "False", "BackendNotFound", 3))
    problem = gateway_problem(route)
    assert "ResolvedRefs=False" in problem and "BackendNotFound" in problem
    assert "inference-gateway" in problem


def test_conditions_about_an_older_generation_say_nothing_yet() -> None:
    assert gateway_problem(_route(4, ("ResolvedRefs", "False", "BackendNotFound", 3))) == ""
    assert gateway_problem(_route(3, ("ResolvedRefs", "True", "ResolvedRefs", 3))) == ""
    assert gateway_problem({"metadata": {"generation": 1}}) == ""


def test_a_false_condition_that_names_no_generation_is_a_problem() -> None:
    """observedGeneration is optional: a gateway that never sets it rejected every step
    unseen, since a condition without it was taken as about an older generation."""
    route = _route(3, ("ResolvedRefs", "False", "BackendNotFound", 3))
    del route["status"]["parents"][0]["conditions"][0]["observedGeneration"]
    assert "ResolvedRefs=False (BackendNotFound" in gateway_problem(route)


def test_reconcile_pauses_on_a_gateway_problem_without_writing(rollout: Rollout) -> None:
    applied = machine.approve(rollout, actor=BOB, now=T0).rollout
    observed = Observed(pair=Pair(stable=90, canary=10), marker=Marker(rollout_id="r1", step=0),
                        problem="gateway g reports ResolvedRefs=False (BackendNotFound)")
    d = machine.reconcile(applied, observed, now=T0)
    assert d is not None and d.effect is None
    assert d.rollout.phase is Phase.PAUSED and d.rollout.step == 0
    assert d.rollout.pause is not None and d.rollout.pause.kind is PauseKind.FAILURE
    assert machine.reconcile(d.rollout, observed, now=T0) is None  # said once


def test_the_problem_is_said_exactly_for_every_parent_and_condition() -> None:
    route: dict[str, Any] = {
        "metadata": {"generation": 2},
        "status": {"parents": [
            {"parentRef": {"name": "a"}, "conditions": [
                {"type": "Accepted", "status": "False", "reason": "NotAllowed",
                 "message": "no listener", "observedGeneration": 2},
                {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
                 "observedGeneration": 2},
                {"type": "Programmed", "status": "False", "reason": "Pending",
                 "observedGeneration": 2},
            ]},
            {"conditions": [{"type": "ResolvedRefs", "status": "False",
                             "observedGeneration": 2}]},
        ]},
    }
    assert gateway_problem(route) == (
        "gateway a reports Accepted=False (NotAllowed: no listener); "
        "gateway a reports ResolvedRefs=False (BackendNotFound); "
        "gateway ? reports ResolvedRefs=False")


def test_without_a_generation_every_false_condition_counts() -> None:
    route = _route(1, ("ResolvedRefs", "False", "BackendNotFound", 7))
    del route["metadata"]
    assert gateway_problem(route) == ("gateway inference-gateway reports ResolvedRefs=False "
                                      "(BackendNotFound: pool x not found)")
