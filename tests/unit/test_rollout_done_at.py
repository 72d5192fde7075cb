"""When nothing more is asked of a rollout, from which ROLLOUT_RETENTION counts: a rollback
or a failed start at once, a retire when it came, a completion at the end of its keep period
(a rollback is possible until then), never while it is active."""

from __future__ import annotations

from datetime import timedelta

from rollout.domain import machine
from rollout.domain.models import Rollout
from rollout.domain.plan import build_plan
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET

HOUR = timedelta(hours=1)


def _started(keep: int = 0) -> Rollout:
    return machine.start(rollout_id="r1", target=TARGET, stable="llm-pool",
                         canary="llm-pool-version-2", plan=build_plan((10, 100)),
                         baseline=BASELINE, actor=ALICE, now=T0, keep_seconds=keep).rollout


def test_an_active_rollout_is_never_done() -> None:
    r = _started()
    assert r.done_at is None
    paused = machine.pause(r, actor=BOB, now=T0 + HOUR, reason="look").rollout
    assert paused.done_at is None


def test_a_rollback_is_done_when_it_came() -> None:
    r = machine.rollback(_started(), actor=BOB, now=T0 + HOUR, reason="bad").rollout
    assert r.done_at == T0 + HOUR


def test_a_failed_start_is_done_when_it_failed() -> None:
    r = machine.fail(_started(), now=T0 + HOUR, reason="the write failed", actor=ALICE).rollout
    assert r.done_at == T0 + HOUR


def test_a_completion_is_done_at_the_end_of_its_keep_period_and_a_retire_when_it_came() -> None:
    completed = machine.promote(_started(keep=7200), actor=BOB, now=T0 + HOUR).rollout
    assert completed.done_at == T0 + 3 * HOUR
    retired = machine.retire(completed, actor=CAROL, now=T0 + 2 * HOUR).rollout
    assert retired.done_at == T0 + 2 * HOUR


def test_a_completion_that_keeps_nothing_is_done_at_once() -> None:
    completed = machine.promote(_started(keep=0), actor=BOB, now=T0 + HOUR).rollout
    assert completed.done_at == T0 + HOUR
