"""What each branch of the command path answers and saves: the outcome a person is shown
(message, ok, changed), the version saved and the audit events, exactly; on the fakes."""

from __future__ import annotations

from rollout.domain.errors import ClusterUnavailable, DriftDetected
from rollout.domain.models import AuditEvent, PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, Pair
from rollout.service import Outcome
from tests.unit.builders import ALICE, BOB
from tests.unit.test_service import CANARY, REF, _started, _world

SCHEDULER = "scheduler"
DRIFT_60_40 = ("weights changed outside the bot: the cluster has stable 60 / canary 40, the "
               "rollout set stable 100 / canary 0")
NOT_APPLIED = ("Not applied: boom. The rollout is paused; resume or roll back once the cause "
               "is fixed.")


def _events(events: tuple[AuditEvent, ...]) -> list[tuple[str, str, int | None, str]]:
    return [(e.action.value, e.actor.id, e.step, e.detail) for e in events]


def _shown(o: Outcome) -> tuple[str, bool, bool]:
    return o.message, o.ok, o.changed


def test_a_start_answers_and_saves_its_first_version() -> None:
    service, _store, target, _ = _world()
    o = service.start(namespace="default", canary=CANARY, plan=build_plan([10, 100]),
                      actor=ALICE)
    assert _shown(o) == ("Rollout r1 started: llm-pool → llm-pool-version-2; step 1 (10%) "
                         "awaits approval. No canary analysis: steps are not gated on metrics "
                         "(the bot has no PROMETHEUS_URL).", True, True)
    assert _events(o.events) == [("started", "U0ALICE", None, "llm-pool → llm-pool-version-2 "
                                  "on HTTPRoute default/routes-to-llm rule 0")]
    assert o.rollout == service.get(REF) and o.rollout.version == 1
    assert target.writes == [Pair(stable=100, canary=0)]


def test_a_failed_first_write_answers_the_failure_in_the_second_version() -> None:
    service, store, target, _ = _world()
    target.fail_next = ClusterUnavailable("boom")
    o = service.start(namespace="default", canary=CANARY, plan=build_plan([10, 100]),
                      actor=ALICE)
    assert _shown(o) == ("Rollout r1 failed: boom", False, True)
    assert _events(o.events) == [("failed", "U0ALICE", None, "boom")]
    assert o.rollout is not None and o.rollout.version == 2
    assert o.rollout.phase is Phase.FAILED and store.saves == [("r1", 1), ("r1", 2)]


def test_a_command_that_changes_nothing_saves_nothing() -> None:
    service, store, _, _ = _started()
    service.pause(REF, actor=BOB)
    before = service.get(REF)
    o = service.pause(REF, actor=BOB)
    assert _shown(o) == ("llm-pool-version-2 is already paused (paused by bob).", True, False)
    assert o.rollout == before and o.events == ()
    assert store.saves == [("r1", 1), ("r1", 2)]


def test_a_write_that_landed_before_a_crash_is_adopted_with_the_command_in_one_version() -> None:
    service, store, target, _ = _started()
    target.pair, target.marker = Pair(stable=90, canary=10), Marker(rollout_id="r1", step=0)
    o = service.pause(REF, actor=BOB)
    assert _shown(o) == ("llm-pool-version-2 paused at 10%: paused by bob.", True, True)
    assert _events(o.events) == [
        ("recovered", SCHEDULER, 0, "step 1 (10%) found applied in the cluster; recorded once"),
        ("paused", "U0BOB", 0, "paused by bob"),
    ]
    assert store.saves == [("r1", 1), ("r1", 2)] and store.events[-2:] == list(o.events)
    assert o.rollout is not None and o.rollout.step == 0 and o.rollout.version == 2


def test_drift_found_by_the_sweep_is_saved_and_shown_as_unchanged_by_the_command() -> None:
    service, _store, target, _ = _started()
    target.pair = Pair(stable=60, canary=40)
    o = service.watch(service.get(REF))
    assert o is not None
    assert _shown(o) == (f"llm-pool-version-2 paused at 0%: {DRIFT_60_40}.", True, False)
    assert _events(o.events) == [("paused", SCHEDULER, -1, DRIFT_60_40)]
    assert o.rollout == service.get(REF) and o.rollout.version == 2
    assert o.rollout.pause is not None and o.rollout.pause.kind is PauseKind.DRIFT


def test_drift_at_write_time_is_not_applied_and_pauses_for_drift() -> None:
    service, store, target, _ = _started()
    target.fail_next = DriftDetected("weights changed outside the bot: 70/30")
    o = service.approve(REF, actor=BOB)
    assert _shown(o) == ("Not applied: weights changed outside the bot: 70/30. "
                         "llm-pool-version-2 paused at 0%: weights changed outside the bot: "
                         "70/30.", False, True)
    assert _events(o.events) == [("paused", SCHEDULER, -1,
                                  "weights changed outside the bot: 70/30")]
    r = service.get(REF)
    assert r.pause is not None and r.pause.kind is PauseKind.DRIFT and r.step == -1
    assert store.saves[-1] == ("r1", 2) and target.writes == [Pair(stable=100, canary=0)]


def test_a_refused_write_pauses_with_its_reason_and_the_way_out() -> None:
    service, store, target, _ = _started()
    target.fail_next = ClusterUnavailable("boom")
    o = service.approve(REF, actor=BOB)
    assert _shown(o) == (NOT_APPLIED, False, True)
    assert _events(o.events) == [("paused", "U0BOB", -1, "boom")]
    r = service.get(REF)
    assert r.pause is not None and (r.pause.kind, r.pause.reason) == (PauseKind.FAILURE, "boom")
    assert o.rollout == r and store.saves[-1] == ("r1", 2)


def test_a_refused_rollback_with_drift_found_saves_the_drift_pause() -> None:
    service, store, target, _ = _started()
    service.approve(REF, actor=BOB)
    target.pair = Pair(stable=60, canary=40)
    target.fail_next = ClusterUnavailable("boom")
    o = service.rollback(REF, actor=BOB)
    drift = ("weights changed outside the bot: the cluster has stable 60 / canary 40, the "
             "rollout set stable 90 / canary 10")
    assert _shown(o) == (NOT_APPLIED, False, True)
    assert _events(o.events) == [("paused", SCHEDULER, 0, drift)]
    assert o.rollout == service.get(REF) and store.saves[-1] == ("r1", 3)


def test_a_refused_rollback_of_a_rollout_already_paused_by_a_failure_saves_nothing() -> None:
    service, store, target, _ = _started()
    target.fail_next = ClusterUnavailable("boom")
    service.approve(REF, actor=BOB)
    before = service.get(REF)
    target.fail_next = ClusterUnavailable("boom")
    o = service.rollback(REF, actor=BOB)
    assert _shown(o) == (NOT_APPLIED, False, True)
    assert o.rollout == before and o.events == () and store.saves[-1] == ("r1", 2)


def test_a_gateway_objection_is_answered_with_the_step_in_one_version() -> None:
    service, store, target, _ = _started()
    target.objects_to_writes = "ResolvedRefs False: BackendNotFound"
    o = service.approve(REF, actor=BOB)
    assert _shown(o) == ("llm-pool-version-2 now at 10% (step 1 (10%)). llm-pool-version-2 "
                         "paused at 10%: ResolvedRefs False: BackendNotFound.", False, True)
    assert _events(o.events) == [
        ("approved", "U0BOB", 0, "1/1"),
        ("step_applied", "U0BOB", 0, "stable 90 / canary 10"),
        ("paused", SCHEDULER, 0, "ResolvedRefs False: BackendNotFound"),
    ]
    assert store.events[-3:] == list(o.events) and store.saves[-1] == ("r1", 2)


def test_a_step_that_lands_answers_and_saves_with_what_reconcile_found() -> None:
    service, _store, _target, _ = _started()
    o = service.approve(REF, actor=BOB)
    assert _shown(o) == ("llm-pool-version-2 now at 10% (step 1 (10%)).", True, True)
    assert _events(o.events) == [("approved", "U0BOB", 0, "1/1"),
                                 ("step_applied", "U0BOB", 0, "stable 90 / canary 10")]
    assert o.rollout == service.get(REF) and o.rollout.version == 2
