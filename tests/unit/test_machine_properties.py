"""Property-based tests: any sequence of commands keeps the invariants of DESIGN.md §3
that the pure machine is responsible for."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.domain import machine
from rollout.domain.errors import Refused
from rollout.domain.machine import ApplyStep, Decision, Prepare, Restore
from rollout.domain.models import Actor, Click, Phase, Rollout
from rollout.domain.split import Marker, Observed, Pair, acceptable_pairs, expected_pair
from tests.unit.builders import ALICE, BOB, CAROL, T0, started

ACTORS = (ALICE, BOB, CAROL)

command = st.one_of(
    st.tuples(st.just("approve"), st.sampled_from(ACTORS), st.none() | st.integers(-1, 5)),
    st.tuples(st.just("approve_plan"), st.sampled_from(ACTORS), st.none()),
    st.tuples(st.just("pause"), st.sampled_from(ACTORS), st.none()),
    st.tuples(st.just("resume"), st.sampled_from(ACTORS), st.none()),
    st.tuples(st.just("rollback"), st.sampled_from(ACTORS), st.none()),
    st.tuples(st.just("promote"), st.sampled_from(ACTORS), st.none()),
    st.tuples(st.just("tick"), st.none(), st.integers(0, 4000)),
    st.tuples(st.just("fail"), st.sampled_from(ACTORS), st.none()),
    st.tuples(st.just("drift"), st.none(), st.integers(0, 100)),
)

plans = st.fixed_dictionaries({
    "steps": st.sampled_from([(10, 25, 50, 100), (10, 50, 100), (100,), (1, 2, 3, 100)]),
    "interval": st.sampled_from([0, 60, 900]),
    "auto": st.booleans(),
    "approvals": st.integers(1, 2),
    "reminder_seconds": st.sampled_from([300, 1200]),
    "approval_timeout_seconds": st.sampled_from([1800, 3600]),
})


def _run(r: Rollout, cmd: tuple[str, Actor | None, int | None], now: object) -> Decision | None:
    name, actor, arg = cmd
    assert isinstance(now, type(T0))
    try:
        if name == "approve":
            assert actor is not None
            click = None if arg is None else Click(rollout_id=r.id, step=arg, epoch=r.epoch)
            return machine.approve(r, actor=actor, now=now, click=click)
        if name == "approve_plan":
            assert actor is not None
            return machine.approve_plan(r, actor=actor, now=now)
        if name == "pause":
            assert actor is not None
            return machine.pause(r, actor=actor, now=now) if r.active else None
        if name == "resume":
            assert actor is not None
            return machine.resume(r, actor=actor, now=now) if r.active else None
        if name == "rollback":
            assert actor is not None
            return machine.rollback(r, actor=actor, now=now)
        if name == "promote":
            assert actor is not None
            return machine.promote(r, actor=actor, now=now)
        if name == "fail":
            assert actor is not None
            return machine.effect_failed(r, now=now, reason="API 500", actor=actor)
        if name == "drift":
            assert arg is not None
            total = r.baseline.total
            observed = Observed(pair=Pair(stable=total - arg, canary=arg),
                                marker=Marker(rollout_id=r.id, step=r.step))
            return machine.reconcile(r, observed, now=now)
        return machine.tick(r, now=now)
    except Refused:
        return None


@settings(max_examples=400, deadline=None)
@given(plan=plans, commands=st.lists(command, max_size=40))
def test_any_command_sequence_keeps_the_invariants(  # noqa: C901 - one check per invariant
    plan: dict[str, object], commands: list[tuple[str, Actor | None, int | None]]
) -> None:
    r = started(
        plan["steps"], interval=plan["interval"], auto=plan["auto"],  # type: ignore[arg-type]
        approvals=plan["approvals"],  # type: ignore[arg-type]
        reminder_seconds=plan["reminder_seconds"],  # type: ignore[arg-type]
        approval_timeout_seconds=plan["approval_timeout_seconds"],  # type: ignore[arg-type]
    )
    now = T0
    applied: list[int] = []
    rolled_back = False
    for cmd in commands:
        if cmd[0] == "tick":
            now += timedelta(seconds=cmd[2] or 0)
        d = _run(r, cmd, now)
        if cmd[0] == "drift" and (d is None or not d.changed):
            # Invariant 6, the quiet case: reconcile says nothing only when there is nothing
            # to say: the rollout is over, the weights are ones it set, or it is already
            # paused (for drift, or by a person: then its resume meets the drift guard).
            total = r.baseline.total
            seen = Pair(stable=total - (cmd[2] or 0), canary=cmd[2] or 0)
            assert (not r.active or seen in acceptable_pairs(r)
                    or r.phase is Phase.PAUSED), seen
        if d is None or not d.changed:
            continue
        before, after = r, d.rollout
        # Invariant 2: a step is applied at most once, in order or by promote to the end.
        if isinstance(d.effect, ApplyStep):
            assert d.effect.step not in applied
            assert d.effect.step == before.step + 1 or d.effect.step == before.plan.last_index
            # Invariant 4: the weights written are exactly the plan's.
            assert d.effect.percent == before.plan.steps[d.effect.step].percent
            assert expected_pair(after).canary == (
                after.baseline.total * d.effect.percent + 50) // 100
            applied.append(d.effect.step)
            # Invariant 10: an automatic plan applies nothing before another person approved it
            if before.plan.automatic and cmd[0] != "promote":
                assert after.plan_approval is not None
                assert after.plan_approval.actor.id != before.requester.id
            if cmd[0] == "promote":
                assert cmd[1] is not None and cmd[1].id != before.requester.id
            # two-person rule: an approved step has approvers other than the requester
            if cmd[0] == "approve":
                approvers = {a.id for a in after.approvers_of(d.effect.step)}
                assert before.requester.id not in approvers
                assert len(approvers) >= before.plan.steps[d.effect.step].approvals
        # Invariant 3: once rolled back, nothing else is applied.
        if rolled_back:
            assert d.effect is None and after.phase is Phase.ROLLED_BACK
        if isinstance(d.effect, Restore):
            rolled_back = True
            assert after.phase is Phase.ROLLED_BACK
        assert not isinstance(d.effect, Prepare)
        # Invariant 6: drift pauses and never writes.
        if cmd[0] == "drift":
            assert d.effect is None and after.phase is Phase.PAUSED
        # The step never moves back, and terminal phases stay terminal.
        assert after.step >= before.step
        if not before.active:
            assert after.phase is Phase.ROLLED_BACK or after == before
        # Every change is audited.
        assert d.events, f"{cmd[0]} changed the rollout without an audit event"
        r = after
