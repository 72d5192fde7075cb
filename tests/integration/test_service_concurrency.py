"""Invariants 2 and 3 under real concurrency: threads against one Redis and one cluster."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from rollout.domain.errors import Conflict, RolloutError, Superseded
from rollout.domain.models import Actor, Click, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import baseline_pair
from rollout.service import Outcome, Ref
from tests.integration.conftest import ALICE, BOB, CAROL, World

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)
DAVE = Actor(id="U0DAVE", name="dave", via="slack", channel="C0ROLLOUT")


def _together(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls on threads released at the same instant; collect results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_fifty_threads_approving_the_same_step_apply_it_once(world: World) -> None:
    started = world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                  plan=build_plan(interval_seconds=600)).rollout
    assert started is not None
    click = Click(rollout_id=started.id, step=0, epoch=started.epoch)  # one card, many clicks
    before = world.route_patches()
    results = _together([
        partial(world.service.approve, REF, actor=actor, click=click)
        for actor in [BOB, CAROL] * 25
    ])
    assert world.route_patches() == before + 1
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    outcomes = [r for r in results if isinstance(r, Outcome)]
    assert len(outcomes) == 50, [r for r in results if not isinstance(r, Outcome)]
    applied = [o for o in outcomes if o.changed]
    assert len(applied) == 1
    assert all("already applied" in o.message for o in outcomes if not o.changed)
    assert world.service.get(REF).step == 0


@pytest.mark.slow
def test_rollback_racing_an_approval_always_ends_rolled_back(world: World) -> None:
    rng = random.Random(7)
    base = None
    for run in range(200):
        out = world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                  plan=build_plan(interval_seconds=0))
        assert out.rollout is not None
        rollout_id = out.rollout.id
        if run % 2:  # half the runs race at a later step
            world.service.approve(REF, actor=BOB)
        delay = rng.uniform(0, 0.02)

        def approve() -> object:
            return world.service.approve(REF, actor=CAROL)

        def rollback(delay: float = delay) -> object:
            time.sleep(delay)
            return world.service.rollback(REF, actor=BOB)

        results = _together([approve, rollback])
        unexpected = [r for r in results
                      if isinstance(r, Exception) and not isinstance(r, Conflict | Superseded)]
        assert not unexpected, unexpected
        rollout = world.store.get(rollout_id)
        assert rollout is not None
        assert rollout.phase is Phase.ROLLED_BACK, (run, results)
        base = base or baseline_pair(rollout.baseline)
        assert world.weights() == {"llm-pool": base.stable, POOL: base.canary}, (run, results)
        observed = world.service.traffic.observe(rollout)
        assert observed.marker is not None and observed.marker.state.value == "rolled-back"
        assert world.store.active_on(rollout.target.key) is None


def test_two_starts_on_one_target_make_one_rollout(world: World) -> None:
    results = _together([
        lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                    plan=build_plan())
        for _ in range(8)
    ])
    started = [r for r in results if isinstance(r, Outcome) and r.ok]
    refused = [r for r in results if isinstance(r, RolloutError)]
    assert len(started) == 1 and len(refused) == 7
    assert all(isinstance(r, Conflict) for r in refused)


def _awaiting_two_approvals(world: World) -> Rollout:
    plan = build_plan([10, 100], interval_seconds=0, approvals=2).model_copy(
        update={"reminder_seconds": 1})
    out = world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=plan)
    assert out.rollout is not None
    return out.rollout


@pytest.mark.slow
def test_reviewers_approving_one_drawing_while_reminders_fire_are_never_refused(
    world: World,
) -> None:
    """The card is drawn once; two reviewers click it while the scheduler reminds, on
    threads released together, 40 times: both approvals count, the step lands once."""
    svc = world.service
    for _ in range(40):
        r = _awaiting_two_approvals(world)
        click = Click(rollout_id=r.id, step=0, epoch=r.epoch)
        world.clock.advance(2)  # a reminder is due
        results = _together([
            partial(svc.approve, REF, actor=BOB, click=click),
            partial(svc.approve, REF, actor=CAROL, click=click),
            partial(svc.tick, r.id),
        ])
        assert not [x for x in results if isinstance(x, Exception)], results
        after = svc.get(REF)
        assert after.step == 0 and len(after.approvers_of(0)) == 2
        svc.rollback(REF, actor=BOB)


@pytest.mark.slow
def test_pause_and_rollback_from_an_old_drawing_win_against_approvals_and_reminders(
    world: World,
) -> None:
    """Pause and Roll back clicked on the first drawing of the card race an approval and
    a reminder, 40 times: neither is ever refused, whatever landed first."""
    svc = world.service
    for run in range(40):
        r = _awaiting_two_approvals(world)
        drawn = Click(rollout_id=r.id, step=0)
        world.clock.advance(2)
        pausing = bool(run % 2)
        safety = (partial(svc.pause, REF, actor=DAVE, click=drawn) if pausing
                  else partial(svc.rollback, REF, actor=DAVE, click=drawn))
        results = _together([
            partial(svc.approve, REF, actor=BOB,
                    click=Click(rollout_id=r.id, step=0, epoch=r.epoch)),
            partial(svc.tick, r.id),
            safety,
        ])
        assert not isinstance(results[2], Exception), results
        # the approval is refused only because the rollout is paused, or it lost to the rollback
        assert isinstance(results[0], Outcome | Conflict | Superseded), results
        after = svc.get(REF)
        assert after.phase is (Phase.PAUSED if pausing else Phase.ROLLED_BACK)
        if pausing:
            svc.rollback(REF, actor=DAVE)
