"""A rollout's target deleted under it, over the fakes: every path that reads it pauses the
rollout saying so, a rollback ends it with nothing to restore, and a finished rollout's
write in flight stops being looked for."""

from __future__ import annotations

import pytest

from rollout.domain.errors import NotFound
from rollout.domain.models import AuditAction, PauseKind, Phase, Rollout
from rollout.domain.split import Marker, Pair
from rollout.service import RolloutService
from tests.unit.builders import BOB, CAROL
from tests.unit.fakes import FakeStore, FakeTraffic
from tests.unit.test_service import REF, _started

GONE = ("HTTPRoute default/routes-to-llm rule 0 is gone from the cluster (HTTPRoute "
        "default/routes-to-llm not found): recreate it and resume, or roll back (the rollout "
        "then ends, with nothing left to restore)")


def _deleted(traffic: FakeTraffic) -> None:
    def gone(*_args: object, **_kwargs: object) -> None:
        raise NotFound("HTTPRoute default/routes-to-llm not found")

    for read in ("observe", "glance", "apply"):
        setattr(traffic, read, gone)
    traffic.recall = lambda r: None  # type: ignore[method-assign, assignment]


def _at_10_then_deleted() -> tuple[RolloutService, FakeStore]:
    service, store, target, _clock = _started()
    service.approve(REF, actor=BOB)
    assert target.pair == Pair(stable=90, canary=10)
    assert isinstance(service.traffic, FakeTraffic)
    _deleted(service.traffic)
    return service, store


@pytest.mark.parametrize("path", ["watch", "tick", "pause"])
def test_each_path_that_reads_the_target_pauses_the_rollout_saying_it_is_gone(path: str) -> None:
    service, _store = _at_10_then_deleted()
    r = service.get(REF)
    if path == "watch":
        service.watch(r)
    elif path == "tick":
        service.tick(r.id)
    else:
        service.pause(REF, actor=BOB)
    paused = service.get(REF)
    assert paused.phase is Phase.PAUSED and paused.pause is not None
    assert (paused.pause.kind, paused.pause.reason) == (PauseKind.DRIFT, GONE)


def test_a_rollback_ends_the_rollout_with_nothing_to_restore() -> None:
    """The reconcile read paused it first (saved with the rollback, as one version); only
    the rollback's event says nothing was restored, after the reason it was given."""
    service, store = _at_10_then_deleted()
    out = service.rollback(REF, actor=BOB, reason="p99 latency")
    assert out.ok and out.message.endswith(f"({GONE}; nothing was restored.)")
    r = service.get(REF)
    assert r.phase is Phase.ROLLED_BACK and not r.active
    assert [e.action for e in out.events] == [AuditAction.PAUSED, AuditAction.ROLLED_BACK]
    paused, ended = out.events
    assert paused.detail == GONE
    assert ended.detail == f"p99 latency; {GONE}; nothing was restored"
    assert store.events[-2:] == list(out.events)


def test_a_rollback_without_a_reason_says_who_asked_and_that_nothing_was_restored() -> None:
    service, _store = _at_10_then_deleted()
    out = service.rollback(REF, actor=BOB)
    assert out.events[-1].detail == f"requested by bob; {GONE}; nothing was restored"


def _landed_then_deleted_at_write() -> tuple[RolloutService, FakeStore]:
    """Step 1 landed before a crash and was not recorded; the route is deleted between the
    command's read (which adopts the step) and its write."""
    service, store, target, _clock = _started()
    target.pair, target.marker = Pair(stable=90, canary=10), Marker(rollout_id="r1", step=0)
    target.fail_next = NotFound("HTTPRoute default/routes-to-llm not found")
    return service, store


def test_a_rollback_keeps_what_its_read_adopted_when_the_target_vanishes() -> None:
    service, store = _landed_then_deleted_at_write()
    out = service.rollback(REF, actor=BOB)
    assert [e.action for e in out.events] == [AuditAction.RECOVERED, AuditAction.ROLLED_BACK]
    assert service.get(REF).phase is Phase.ROLLED_BACK and store.events[-2:] == list(out.events)


def test_a_write_keeps_what_its_read_adopted_when_the_target_vanishes() -> None:
    service, store = _landed_then_deleted_at_write()
    out = service.promote(REF, actor=BOB)
    assert not out.ok and out.message.startswith(f"Not applied: {GONE}.")
    r = service.get(REF)
    assert r.step == 0 and r.phase is Phase.PAUSED  # the landed step recorded, then paused
    assert AuditAction.RECOVERED in [e.action for e in store.events]


def test_a_step_whose_target_vanished_between_its_read_and_its_write_pauses() -> None:
    service, _store, target, _clock = _started()
    assert isinstance(service.traffic, FakeTraffic)
    traffic = service.traffic

    def gone(*_args: object, **_kwargs: object) -> None:
        raise NotFound("HTTPRoute default/routes-to-llm not found")

    traffic.apply = gone  # type: ignore[method-assign, assignment]
    out = service.approve(REF, actor=BOB)
    assert not out.ok and out.message.startswith(f"Not applied: {GONE}. The rollout is paused")
    assert service.get(REF).phase is Phase.PAUSED and target.pair == Pair(stable=100, canary=0)


def test_a_finished_rollouts_write_in_flight_on_a_deleted_target_is_no_longer_looked_for(
) -> None:
    service, store = _at_10_then_deleted()
    service.rollback(REF, actor=BOB)
    r: Rollout = service.get(REF)
    store.mark_in_flight(r.id)
    service.watch(r)
    assert r.id not in store.in_flight_ids()


def test_a_retire_whose_target_was_deleted_changes_nothing_and_stops_the_look(
) -> None:
    service, store, _target, clock = _started()
    for _ in range(3):
        service.approve(REF, actor=BOB)
        clock.advance(3600)  # past each bake
    assert service.get(REF).phase is Phase.COMPLETED
    assert isinstance(service.traffic, FakeTraffic)
    _deleted(service.traffic)
    out = service.retire(REF, actor=CAROL)
    assert not out.ok and out.message == (
        f"Not applied: {GONE}. Nothing changed; try again once the cause is fixed.")
    r = service.get(REF)
    assert r.phase is Phase.COMPLETED and r.retired_at is None
    assert r.id not in store.in_flight_ids()


def test_a_rollback_whose_target_vanishes_between_its_read_and_its_write_ends_too() -> None:
    service, _store, target, _clock = _started()
    service.approve(REF, actor=BOB)
    target.fail_next = NotFound("HTTPRoute default/routes-to-llm not found")
    out = service.rollback(REF, actor=BOB)
    assert out.ok and [e.action for e in out.events] == [AuditAction.ROLLED_BACK]
    assert service.get(REF).phase is Phase.ROLLED_BACK
