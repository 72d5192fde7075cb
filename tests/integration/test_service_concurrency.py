"""Invariants 2 and 3 under real concurrency: threads against one Redis and one cluster."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from rollout.errors import Conflict, RolloutError, Superseded
from rollout.models import Click, Phase
from rollout.plan import build_plan
from rollout.service import Outcome, Ref
from rollout.split import baseline_pair
from tests.integration.conftest import ALICE, BOB, CAROL, World

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


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
        (lambda actor=actor: world.service.approve(REF, actor=actor, click=click))
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
