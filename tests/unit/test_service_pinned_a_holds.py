"""A step-up the gates hold, through the service over fakes: what is saved, audited and
answered, also when the command first adopted a step that landed before a crash (that
adoption is saved and audited with the hold, as one version)."""

from __future__ import annotations

from rollout.domain.models import AuditAction, PauseKind, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, Pair, expected_pair
from rollout.service import Outcome, Ref
from tests.unit.builders import ALICE, BOB, T0
from tests.unit.facts_builders import CANARY, STABLE, pods, pool, world
from tests.unit.test_service_gates import World as GatesWorld

REF = Ref(canary=CANARY)
FROZEN = ("Not applied: Rollouts are frozen by bob since 2026-01-01 13:00:00 UTC: incident 42. "
          "Step-ups wait until an approver runs unfreeze; rollback and pause still work.")


class World(GatesWorld):
    """The gates' world (open gates, default capacity), with the states these tests start
    from."""

    def at_first_step(self) -> Rollout:
        """Started by alice, step 1 (10%) approved by bob at T0, an hour later."""
        self.service.start(namespace="default", canary=CANARY, actor=ALICE,
                           plan=build_plan([10, 50, 100], interval_seconds=0))
        assert self.service.approve(REF, actor=BOB).ok
        self.clock.advance(seconds=3600)
        return self.service.get(REF)

    def second_step_landed_unrecorded(self) -> None:
        """Step 2 (50%) reached the cluster, and the bot crashed before recording it."""
        r = self.service.get(REF)
        self.target.pair = expected_pair(r, 1)
        self.target.marker = Marker(rollout_id=r.id, step=1)

    def actions(self) -> list[str]:
        return [e.action for e in self.store.events]


def _adopted_then(out: Outcome, w: World) -> Rollout:
    """The answer carries the rollout as saved: step 2 adopted, in one new version."""
    r = w.service.get(REF)
    assert out.rollout == r
    assert r.step == 1 and r.version == 3
    return r


def test_a_frozen_step_up_answers_the_freeze_and_changes_nothing() -> None:
    w = World()
    before = w.at_first_step()
    w.service.freeze(actor=BOB, reason="incident 42")
    out = w.service.approve(REF, actor=BOB)
    assert (out.message, out.changed, out.ok) == (FROZEN, False, False)
    assert out.rollout == before == w.service.get(REF)
    assert w.target.pair == Pair(stable=90, canary=10)


def test_a_frozen_step_up_still_records_a_step_found_landed_and_answers_the_freeze() -> None:
    w = World()
    w.at_first_step()
    w.service.freeze(actor=BOB, reason="incident 42")
    w.second_step_landed_unrecorded()
    out = w.service.approve(REF, actor=BOB)
    assert (out.message, out.changed, out.ok) == (FROZEN, False, False)
    r = _adopted_then(out, w)
    assert r.phase is not Phase.PAUSED and r.held == ""
    assert w.actions()[-1] == AuditAction.RECOVERED
    assert w.target.pair == Pair(stable=50, canary=50)


def test_a_step_up_paused_by_the_gates_keeps_the_adopted_step_and_its_audit() -> None:
    w = World()
    w.at_first_step()
    w.second_step_landed_unrecorded()
    w.facts.facts = world(pools=(pool(STABLE), pool(CANARY, deleting=True)))
    out = w.service.approve(REF, actor=BOB)
    assert out.ok is False and out.changed
    assert out.message.startswith("Not applied: llm-pool-version-2 paused at 50%: ")
    r = _adopted_then(out, w)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.PREFLIGHT
    assert w.actions()[-2:] == [AuditAction.RECOVERED, AuditAction.PAUSED]
    assert [e.action for e in out.events] == [AuditAction.RECOVERED, AuditAction.PAUSED]


def test_a_step_up_waiting_for_capacity_keeps_the_adopted_step_and_its_audit() -> None:
    w = World()
    w.at_first_step()
    w.second_step_landed_unrecorded()
    w.facts.facts = world(pods=pods(STABLE, 4) + pods(CANARY, 1))
    out = w.service.approve(REF, actor=BOB)
    assert out.ok is False and out.message.startswith("Not applied: step to 100% waits:")
    r = _adopted_then(out, w)
    assert r.phase is not Phase.PAUSED and r.held.startswith("step to 100% waits:")
    assert w.actions()[-2:] == [AuditAction.RECOVERED, AuditAction.STEP_HELD]


def test_a_step_up_waiting_for_capacity_is_noted_once_with_who_when_and_which_step() -> None:
    w = World(world(pods=pods(STABLE, 4) + pods(CANARY, 1)))
    w.at_first_step()
    out = w.service.approve(REF, actor=BOB)
    assert out.ok is False and out.changed
    r = w.service.get(REF)
    assert out.rollout == r and r.version == 3
    assert r.updated_at == w.clock.now() == T0.replace(hour=13)
    [event] = out.events
    assert (event.action, event.actor, event.at, event.step, event.percent) == (
        AuditAction.STEP_HELD, BOB, w.clock.now(), 1, 50)
    assert event.detail == r.held and out.message == f"Not applied: {r.held}"
