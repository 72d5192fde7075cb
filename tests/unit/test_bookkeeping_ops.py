"""The bot's annotations a write carries: its marker always; its record for recovery when a
rollout takes the rule, and again when a step that leaves the rule active finds it gone."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.adapters.kube.markers import record_key, rule_key
from rollout.adapters.kube.writes import bookkeeping_ops
from rollout.domain.machine import ApplyStep, Effect, Prepare, Restore, Retire
from rollout.domain.models import Rollout
from tests.unit.builders import started

RECORD = record_key(0)


def _keys(rollout: Rollout, effect: Effect, annotations: dict[str, str] | None) -> list[str]:
    obj: dict[str, Any] = {"metadata": {} if annotations is None
                           else {"annotations": annotations}}
    return [op["path"].rsplit("/", 1)[1].replace("~1", "/")
            for op in bookkeeping_ops(rollout, effect, obj)]


def test_a_start_writes_the_marker_and_the_record() -> None:
    assert _keys(started(), Prepare(), None) == [rule_key(0), RECORD]


@pytest.mark.parametrize("annotations", [None, {}, {rule_key(0): "{}"}])
def test_a_step_that_finds_the_record_gone_writes_it_again(
        annotations: dict[str, str] | None) -> None:
    assert _keys(started(), ApplyStep(step=1, percent=25), annotations) == [rule_key(0), RECORD]


def test_a_step_that_finds_the_record_writes_the_marker_alone() -> None:
    kept = {rule_key(0): "{}", RECORD: "{}"}
    assert _keys(started(), ApplyStep(step=1, percent=25), kept) == [rule_key(0)]


@pytest.mark.parametrize("effect", [Restore(), Retire()])
def test_an_ending_never_writes_a_record(effect: Effect) -> None:
    assert _keys(started(), effect, {}) == [rule_key(0)]


def test_the_last_step_leaves_no_active_rule_and_writes_no_record() -> None:
    r = started()
    last = ApplyStep(step=r.plan.last_index, percent=100)
    assert _keys(r, last, {}) == [rule_key(0)]
