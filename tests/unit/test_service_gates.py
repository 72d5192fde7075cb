"""The gates in the one command path, over fakes: a start the cluster is not ready for (or a
freeze holds) is refused with nothing written; a step-up waits for capacity or a freeze and
says why, or pauses on any other finding; rollback and pause go through a freeze."""

from __future__ import annotations

import logging

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import ClusterUnavailable, Conflict, NotReady, Refused
from rollout.domain.facts import ClusterFacts, ObjectFacts
from rollout.domain.models import AuditAction, PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.domain.preflight import CapacityPolicy
from rollout.domain.split import Pair
from rollout.service import Gates, Ref, RolloutService
from tests.unit.builders import ALICE, BASELINE, BOB, T0, TARGET
from tests.unit.facts_builders import CANARY, STABLE, objectives, pods, pool, world
from tests.unit.fakes import FakeFacts, FakeFreezes, FakeStore, FakeTarget, FakeTraffic

REF = Ref(canary=CANARY)
CAROL = ALICE.model_copy(update={"id": "cli:carol", "name": "cli:carol"})


class World:
    def __init__(self, facts: ClusterFacts | None = None, *, minimum: int = 1,
                 rollback_percent: int = 100) -> None:
        self.freezes = FakeFreezes()
        self.store = FakeStore(self.freezes)
        self.target = FakeTarget(target=TARGET, stable=STABLE, canary=CANARY,
                                 baseline=BASELINE, pair=Pair(stable=100, canary=0))
        self.clock = ManualClock(T0)
        self.facts = FakeFacts(facts or world())
        self.service = RolloutService(
            store=self.store, traffic=FakeTraffic(self.target), clock=self.clock,
            gates=Gates(facts=self.facts, freezes=self.freezes,
                        capacity=CapacityPolicy(minimum=minimum,
                                                rollback_percent=rollback_percent)),
            new_id=lambda canary, now: "r1")

    def start(self, steps: tuple[int, ...] = (10, 50, 100), *, auto: bool = False,
              allow_gitops: bool = False) -> None:
        self.service.start(namespace="default", canary=CANARY, actor=ALICE,
                           plan=build_plan(list(steps), auto=auto), allow_gitops=allow_gitops)

    def nothing_written(self) -> bool:
        return self.store.saves == [] and self.target.writes == []


ARGO_ROUTE = ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io",
                         name="routes-to-llm",
                         annotations={"argocd.argoproj.io/tracking-id": "llm:gateway/x"})


# ---- start ----------------------------------------------------------------------------------


def test_a_start_the_gates_pass_reads_the_namespace_once_under_the_lock() -> None:
    w = World()
    w.start()
    assert w.facts.reads == [("default", "routes-to-llm")]
    assert w.service.get(REF).phase is Phase.AWAITING_APPROVAL


def test_a_start_on_mismatched_objectives_is_refused_listing_them_and_writes_nothing() -> None:
    facts = world(objectives=objectives(STABLE, ("chat", 10), ("batch", 0))
                  + objectives(CANARY, ("chat", 5)))
    w = World(facts)
    with pytest.raises(NotReady) as refused:
        w.start()
    text = str(refused.value)
    assert text.startswith(f"{CANARY} cannot start; nothing was changed:\n• [objectives]")
    assert "missing on llm-pool-version-2: batch" in text
    assert "chat: priority 5 on llm-pool-version-2, 10 on llm-pool" in text
    assert w.nothing_written()


def test_every_refusal_at_start_is_listed_at_once() -> None:
    facts = world(pools=(pool(STABLE), pool(CANARY, deleting=True)),
                  pods=pods(STABLE, 4), route=ARGO_ROUTE)
    w = World(facts)
    with pytest.raises(NotReady) as refused:
        w.start()
    lines = str(refused.value).splitlines()[1:]
    assert [line.split("]")[0] for line in lines] == ["• [pool", "• [capacity", "• [gitops"]
    assert w.nothing_written()


def test_a_gitops_owned_route_is_refused_unless_allowed_and_allowing_is_remembered() -> None:
    w = World(world(route=ARGO_ROUTE))
    with pytest.raises(NotReady, match="kept by Argo CD"):
        w.start()
    assert w.nothing_written()
    w.start(allow_gitops=True)
    assert w.service.get(REF).allow_gitops
    out = w.service.approve(REF, actor=BOB)
    assert out.ok and w.target.pair == Pair(stable=90, canary=10)


def test_a_freeze_refuses_a_start_before_reading_the_cluster() -> None:
    w = World()
    w.service.freeze(actor=BOB, reason="incident 42")
    with pytest.raises(Refused, match=r"Rollouts are frozen by bob .*: incident 42"):
        w.start()
    assert w.nothing_written() and w.facts.reads == []


# ---- step-ups ---------------------------------------------------------------------------


def test_a_step_too_big_for_the_canary_waits_keeps_the_state_and_goes_ahead_later() -> None:
    w = World(world(pods=pods(STABLE, 4) + pods(CANARY, 1)))
    w.start()
    assert w.service.approve(REF, actor=BOB).ok  # 10% of 4 endpoints needs 1
    w.clock.advance(seconds=3600)
    held = w.service.approve(REF, actor=BOB)
    assert not held.ok
    assert "Not applied: step to 50% waits:\n• [capacity] llm-pool-version-2 has 1 Ready " \
           "endpoint: 50% of the traffic llm-pool serves with 4 needs 2" in held.message
    r = w.service.get(REF)
    assert r.phase is not Phase.PAUSED and r.step == 0 and r.held.startswith("step to")
    assert w.target.pair == Pair(stable=90, canary=10)
    again = w.service.approve(REF, actor=BOB)
    assert not again.changed  # the same wait is not saved twice
    w.facts.facts = world()  # the canary's pods became Ready
    done = w.service.approve(REF, actor=BOB)
    assert done.ok and w.target.pair == Pair(stable=50, canary=50)
    assert w.service.get(REF).held == ""
    assert [e.action for e in w.store.events].count(AuditAction.STEP_HELD) == 1


def test_any_other_finding_before_a_step_pauses_with_the_itemised_reason() -> None:
    w = World()
    w.start()
    w.facts.facts = world(pools=(pool(STABLE), pool(CANARY, deleting=True)))
    out = w.service.approve(REF, actor=BOB)
    r = w.service.get(REF)
    assert not out.ok and r.phase is Phase.PAUSED
    assert r.pause is not None and r.pause.kind is PauseKind.PREFLIGHT
    assert "• [pool] InferencePool llm-pool-version-2 is being deleted" in r.pause.reason
    assert w.target.writes == [Pair(stable=100, canary=0)]  # only the start's prepare


def test_a_freeze_recorded_while_a_step_up_reads_its_gates_holds_that_step() -> None:
    """The opening read no freeze; one recorded before the write (here while the gates read
    the namespace) answered "held", so the step does not land after it: the confirm just
    before the write reads the freeze again."""
    w = World()
    w.start(steps=(10, 100))
    read = w.facts.read

    def freezing_meanwhile(namespace: str, **kwargs: str | None) -> ClusterFacts:
        if w.freezes.current is None:
            w.service.freeze(actor=CAROL, reason="incident 42")
        return read(namespace, **kwargs)

    w.facts.read = freezing_meanwhile  # type: ignore[method-assign]
    out = w.service.approve(REF, actor=BOB)
    assert not out.ok and out.message.startswith(
        "Not applied: Rollouts are frozen by cli:carol since ")
    assert w.target.writes == [Pair(stable=100, canary=0)]  # only the start's prepare
    assert w.service.get(REF).step == -1
    w.facts.read = read  # type: ignore[method-assign]
    w.service.unfreeze(actor=CAROL)
    assert w.service.approve(REF, actor=BOB).ok
    assert w.target.pair == Pair(stable=90, canary=10)


def test_a_freeze_holds_an_automatic_step_and_a_rollback_still_goes_through() -> None:
    w = World()
    w.start(steps=(10, 100), auto=True)
    w.service.approve_plan(REF, actor=BOB)
    w.service.freeze(actor=CAROL, reason="change freeze")
    saves = len(w.store.saves)
    tick = w.service.tick("r1")
    assert not tick.ok and "Rollouts are frozen by cli:carol" in tick.message
    r = w.service.get(REF)
    assert r.step == -1 and r.phase is Phase.BAKING and r.held == ""  # the card shows the freeze
    assert not tick.changed and len(w.store.saves) == saves
    assert w.facts.reads == [("default", "routes-to-llm")]  # the start's; a freeze reads none
    back = w.service.rollback(REF, actor=BOB)
    assert back.ok and w.service.get(REF).phase is Phase.ROLLED_BACK
    assert w.target.pair == Pair(stable=100, canary=0)


def test_after_unfreeze_the_held_step_applies_at_the_next_tick() -> None:
    w = World()
    w.start(steps=(10, 100), auto=True)
    w.service.approve_plan(REF, actor=BOB)
    w.service.freeze(actor=CAROL, reason="")
    w.service.tick("r1")
    w.service.unfreeze(actor=CAROL)
    assert w.service.tick("r1").ok
    assert w.target.pair == Pair(stable=90, canary=10)


def test_a_freeze_holds_promote_but_never_pause() -> None:
    w = World()
    w.start()
    w.service.freeze(actor=CAROL, reason="")
    assert not w.service.promote(REF, actor=BOB).ok
    assert w.service.pause(REF, actor=BOB).ok
    assert w.service.get(REF).phase is Phase.PAUSED


# ---- the freeze itself ----------------------------------------------------------------------


def test_freeze_and_unfreeze_are_audited_and_refused_twice() -> None:
    w = World()
    w.start()
    out = w.service.freeze(actor=CAROL, reason="incident")
    assert "1 active rollout held" in out.message
    with pytest.raises(Conflict, match="already frozen by cli:carol"):
        w.service.freeze(actor=BOB, reason="")
    assert w.service.status(REF).freeze is not None
    w.service.unfreeze(actor=BOB)
    with pytest.raises(Conflict, match="not frozen"):
        w.service.unfreeze(actor=BOB)
    actions = [(e.rollout_id, e.action) for e in w.store.events if e.action.endswith("frozen")]
    assert actions == [("", "frozen"), ("r1", "frozen"), ("", "unfrozen"), ("r1", "unfrozen")]
    assert w.service.status(REF).freeze is None


def test_a_reason_too_long_is_refused_and_freezes_nothing() -> None:
    w = World()
    with pytest.raises(Refused, match="keep it under 500"):
        w.service.freeze(actor=CAROL, reason="x" * 501)
    assert w.freezes.current is None and w.store.events == []



# ---- rollback readiness (the stable pool) ----------------------------------------------------


def test_a_stable_pool_that_lost_endpoints_pauses_the_next_step_with_the_numbers() -> None:
    w = World()
    w.start()
    assert w.service.get(REF).stable_ready == 4
    w.facts.facts = world(pods=pods(STABLE, 1) + pods(CANARY, 4))
    out = w.service.approve(REF, actor=BOB)
    r = w.service.get(REF)
    assert not out.ok and r.phase is Phase.PAUSED and r.pause is not None
    assert "• [rollback] llm-pool: 1 of 4 Ready endpoints; a rollback now would overload it" \
        in r.pause.reason
    assert w.target.writes == [Pair(stable=100, canary=0)]
    back = w.service.rollback(REF, actor=BOB)  # still carried out
    assert back.ok and w.service.get(REF).phase is Phase.ROLLED_BACK


def test_the_rollback_share_is_configurable() -> None:
    w = World(rollback_percent=25)
    w.start()
    w.facts.facts = world(pods=pods(STABLE, 1) + pods(CANARY, 4))
    assert w.service.approve(REF, actor=BOB).ok  # 25% of 4 is 1
    w.facts.facts = world(pods=pods(CANARY, 4))
    w.clock.advance(seconds=3600)
    w.service.approve(REF, actor=BOB)
    r = w.service.get(REF)
    assert r.pause is not None
    assert "llm-pool: 0 of 4 Ready endpoints; a rollback now would overload it (it needs 1, " \
           "25% of what it had at start)" in r.pause.reason


# ---- exact: what a step reads, what a hold records, what a freeze tells ------------------------


def test_a_step_reads_the_rollouts_own_namespace_and_route() -> None:
    w = World()
    w.start()
    w.facts.reads.clear()
    w.service.approve(REF, actor=BOB)
    assert w.facts.reads == [("default", "routes-to-llm")]


def test_a_capacity_wait_is_audited_once_with_its_step_and_share() -> None:
    w = World(world(pods=pods(STABLE, 4) + pods(CANARY, 1)))
    w.start()
    w.service.approve(REF, actor=BOB)
    w.clock.advance(seconds=3600)
    before = len(w.store.events)
    held = w.service.approve(REF, actor=BOB)
    assert (held.ok, held.changed) == (False, True)
    [event] = w.store.events[before:]
    assert (event.action, event.step, event.percent, event.rollout_id) == \
        ("step_held", 1, 50, "r1")
    assert event.actor == BOB and event.detail == w.service.get(REF).held
    assert event.at == w.clock.now()


def test_a_freeze_hold_is_answered_but_never_noted_on_the_rollout() -> None:
    w = World()
    w.start()
    w.service.freeze(actor=CAROL, reason="incident 7")
    saves = list(w.store.saves)
    held = w.service.approve(REF, actor=BOB)
    assert (held.ok, held.changed) == (False, False)
    assert held.message.startswith("Not applied: ")
    assert "incident 7" in held.message
    assert w.store.saves == saves and w.service.get(REF).held == ""


def test_a_preflight_pause_is_saved_with_its_kind_and_answered() -> None:
    w = World()
    w.start()
    w.facts.facts = world(objectives=objectives(STABLE, ("chat", 1)))
    out = w.service.approve(REF, actor=BOB)
    r = w.service.get(REF)
    assert not out.ok and out.message.startswith("Not applied: ")
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.PREFLIGHT and r.pause.by.id == "scheduler"
    assert "preflight before the step to 10% failed" in r.pause.reason


def test_a_freeze_is_told_on_every_active_rollouts_card_with_its_reason() -> None:
    w = World()
    w.start()
    heard: list[object] = []
    w.service.options.listeners.append(heard.append)
    out = w.service.freeze(actor=CAROL, reason="incident 7")
    since = "since 2026-01-01 12:00:00 UTC"
    assert out.message == (f"Rollouts are frozen by cli:carol {since}: incident 7. New starts and "
                           "step-ups wait until an approver runs unfreeze (1 active rollout "
                           "held); rollback and pause still work.")
    install, card = w.store.events[-2:]
    assert (install.rollout_id, install.target, install.detail) == ("", "install", "incident 7")
    assert (card.rollout_id, card.target, card.detail, card.actor) == \
        ("r1", TARGET.key, "incident 7", CAROL)
    assert len(heard) == 1
    lifted = w.service.unfreeze(actor=BOB)
    assert lifted.message == (f"Rollouts are no longer frozen (frozen by cli:carol {since}: "
                              "incident 7); held steps go ahead at the next tick or approval.")
    assert w.store.events[-1].detail == \
        f"lifted the freeze (frozen by cli:carol {since}: incident 7)"


# ---- rollback readiness on every sweep --------------------------------------------------------


def _baking(w: World) -> None:
    w.start(steps=(10, 50, 100))
    w.service.approve(REF, actor=BOB)
    assert w.service.get(REF).phase is Phase.BAKING


def test_the_sweep_pauses_a_baking_rollout_whose_stable_pool_lost_endpoints() -> None:
    w = World()
    _baking(w)
    w.facts.facts = world(pods=pods(STABLE, 1) + pods(CANARY, 4))
    out = w.service.watch(w.service.get(REF))
    r = w.service.get(REF)
    assert out is not None and r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.ROLLBACK
    assert r.pause.reason.startswith("llm-pool could not take the traffic back:\n• [rollback] "
                                     "llm-pool: 1 of 4 Ready endpoints; a rollback now would "
                                     "overload it")
    assert w.target.writes == [Pair(stable=100, canary=0), Pair(stable=90, canary=10)]
    saves = len(w.store.saves)
    assert w.service.watch(r) is None  # paused: nothing more to do, nothing read
    assert len(w.store.saves) == saves


def test_a_sweep_over_a_stable_pool_still_ready_changes_nothing() -> None:
    w = World()
    _baking(w)
    saves, reads = len(w.store.saves), len(w.facts.reads)
    assert w.service.watch(w.service.get(REF)) is None
    assert len(w.store.saves) == saves
    assert len(w.facts.reads) == reads + 1  # one read of the namespace per sweep


def test_resume_is_refused_with_the_numbers_until_the_stable_pool_is_ready_again() -> None:
    w = World()
    _baking(w)
    w.facts.facts = world(pods=pods(STABLE, 2) + pods(CANARY, 4))
    w.service.watch(w.service.get(REF))
    before = w.service.get(REF)
    with pytest.raises(NotReady, match=r"^llm-pool-version-2 stays paused: llm-pool could not "
                                       r"take the traffic back:\n• \[rollback\] llm-pool: 2 of 4"):
        w.service.resume(REF, actor=BOB)
    assert w.service.get(REF) == before  # refused: nothing changed
    w.facts.facts = world()
    assert w.service.resume(REF, actor=BOB).ok
    assert w.service.get(REF).phase is Phase.BAKING


def test_a_rollback_while_the_stable_pool_is_short_warns_first_and_restores() -> None:
    w = World()
    _baking(w)
    w.facts.facts = world(pods=pods(STABLE, 1) + pods(CANARY, 4))
    w.service.watch(w.service.get(REF))
    out = w.service.rollback(REF, actor=BOB)
    assert out.ok
    assert out.message.startswith("Warning: llm-pool: 1 of 4 Ready endpoints; a rollback now "
                                  "would overload it; rolling back anyway.\n")
    assert w.service.get(REF).phase is Phase.ROLLED_BACK
    assert w.target.writes[-1] == Pair(stable=100, canary=0)


def test_a_rollback_while_the_cluster_cannot_be_read_goes_ahead_without_the_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """Readiness is advice: a namespace that cannot be read never holds a rollback back; the
    reason it gave no warning is logged."""
    w = World()
    _baking(w)
    w.facts.unreadable = ClusterUnavailable("the Kubernetes API timed out")
    with caplog.at_level(logging.WARNING, logger="rollout.service"):
        out = w.service.rollback(REF, actor=BOB)
    assert out.ok and not out.message.startswith("Warning")
    assert w.service.get(REF).phase is Phase.ROLLED_BACK
    assert w.target.writes[-1] == Pair(stable=100, canary=0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "could not read default before the rollback of r1: the Kubernetes "
                          "API timed out")]


def test_a_rollback_with_a_ready_stable_pool_carries_no_warning() -> None:
    w = World()
    _baking(w)
    assert not w.service.rollback(REF, actor=BOB).message.startswith("Warning")


def test_rollback_readiness_leaves_a_rollout_before_its_first_step_alone() -> None:
    w = World()
    w.start()
    w.facts.facts = world(pods=pods(STABLE, 1) + pods(CANARY, 4))
    reads = len(w.facts.reads)
    assert w.service.watch(w.service.get(REF)) is None  # no traffic moved: nothing to take back
    assert w.service.get(REF).phase is Phase.AWAITING_APPROVAL
    assert len(w.facts.reads) == reads
    w.service.pause(REF, actor=BOB)
    assert w.service.resume(REF, actor=BOB).ok  # nor is a resume held back
    assert not w.service.rollback(REF, actor=BOB).message.startswith("Warning")
