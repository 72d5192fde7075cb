"""The keep period and `retire`, over the fakes: a completed rollout keeps the old pool (a
rollback still works) until an approver other than who started or completed it retires it;
after that no rollback is offered, and a refusal changes nothing."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

from handlers.card_sync import CardPublisher
from handlers.cards import render_card
from rollout.domain import machine
from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    Busy,
    ClusterUnavailable,
    Conflict,
    StoreUnavailable,
    Unauthorized,
    Unrecorded,
    WriteUnknown,
)
from rollout.domain.models import Actor, Card, Phase
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Pair
from rollout.ports import Opening
from rollout.service import Outcome, Ref, RolloutService, ServiceOptions
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET, started
from tests.unit.fakes import FakeStore, FakeTarget, FakeTraffic, open_gates

CANARY, STABLE = "llm-pool-version-2", "llm-pool"
REF = Ref(canary=CANARY)
DAVE = CAROL.model_copy(update={"id": "U0DAVE", "name": "dave"})


class World:
    def __init__(self, *, keep_seconds: int = 24 * 3600, self_approval: bool = False) -> None:
        self.store = FakeStore()
        self.target = FakeTarget(target=TARGET, stable=STABLE, canary=CANARY,
                                 baseline=BASELINE, pair=Pair(stable=100, canary=0))
        self.clock = ManualClock(T0)
        self.service = RolloutService(
            store=self.store, traffic=FakeTraffic(self.target), clock=self.clock,
            gates=open_gates(), new_id=lambda canary, now: "r1",
            options=ServiceOptions(keep_seconds=keep_seconds, self_approval=self_approval))

    def completed(self, *, keep_seconds: int | None = None) -> None:
        """ALICE starts a one-step plan, BOB approves it to 100%."""
        self.service.start(namespace="default", canary=CANARY, actor=ALICE,
                           plan=build_plan([100]), keep_seconds=keep_seconds)
        assert self.service.approve(REF, actor=BOB).ok
        assert self.service.get(REF).phase is Phase.COMPLETED


def test_completion_keeps_the_old_pool_until_the_keep_period_ends_and_the_card_says_so() -> None:
    w = World()
    w.completed()
    r = w.service.get(REF)
    assert r.keep_until == T0 + timedelta(hours=24) and r.completed_by == BOB
    assert w.target.pair == Pair(stable=0, canary=100) and not w.target.retired
    text = str(render_card(r, now=T0).blocks)
    assert "llm-pool kept for rollback until 2026-01-02 12:00 UTC, then an approver retires " \
           "it (`retire`)" in text
    assert "rollout_rollback" in text


def test_keep_given_at_start_wins_over_the_install_default() -> None:
    w = World()
    w.completed(keep_seconds=3600)
    assert w.service.get(REF).keep_until == T0 + timedelta(hours=1)


def test_a_rollback_in_the_keep_period_still_restores_the_weights() -> None:
    w = World()
    w.completed()
    w.clock.advance(seconds=3600)
    assert w.service.rollback(REF, actor=CAROL).ok
    assert w.target.pair == Pair(stable=100, canary=0)


def test_retire_removes_the_old_entry_says_what_to_delete_and_ends_rollback() -> None:
    w = World()
    w.completed()
    w.clock.advance(seconds=25 * 3600)
    out = w.service.retire(REF, actor=CAROL)
    assert out.ok
    assert out.message == (
        "llm-pool retired: its backendRef is removed from HTTPRoute default/routes-to-llm "
        "rule 0 and nothing else changed; a rollback is no longer possible. The bot deletes "
        "nothing: the team may now delete InferencePool llm-pool, its endpoint picker, and "
        "the model server Deployment (and its nodes) that serve it.")
    assert w.target.retired and w.target.marker is not None
    assert w.target.marker.state is MarkerState.RETIRED
    r = w.service.get(REF)
    assert r.retired_at == w.clock.now() and r.retired_by == CAROL
    assert [e.action for e in w.service.history(REF)][-1] == "retired"
    text = str(render_card(r, now=w.clock.now()).blocks)
    assert "rollout_rollback" not in text and "retired by <@U0CAROL>" in text
    before = w.service.get(REF)
    with pytest.raises(Conflict, match="was retired: llm-pool is no longer in"):
        w.service.rollback(REF, actor=CAROL)
    assert w.service.get(REF) == before and w.target.writes[-1] == Pair(stable=0, canary=100)
    again = w.service.retire(REF, actor=DAVE)
    assert not again.changed and "already retired" in again.message


def test_retire_before_the_keep_period_ends_is_the_approval_and_says_so() -> None:
    w = World()
    w.completed()
    out = w.service.retire(REF, actor=CAROL)
    assert out.message.startswith("llm-pool retired (before the keep period ended at "
                                  "2026-01-02 12:00 UTC): ")


@pytest.mark.parametrize(("who", "why"), [
    (ALICE, "alice started this rollout and cannot retire its old pool (two-person rule)"),
    (BOB, "bob completed this rollout and cannot retire its old pool (two-person rule)"),
])
def test_retire_is_refused_to_who_started_or_completed_the_rollout(who: Actor,
                                                                    why: str) -> None:
    w = World()
    w.completed()
    before, writes = w.service.get(REF), list(w.target.writes)
    with pytest.raises(Unauthorized, match=re.escape(why)):
        w.service.retire(REF, actor=who)
    assert w.service.get(REF) == before and w.target.writes == writes


def test_self_approval_lets_the_completer_retire() -> None:
    w = World(self_approval=True)
    w.completed()
    assert w.service.retire(REF, actor=BOB).ok


def test_retire_of_a_rollout_that_did_not_complete_is_refused_and_changes_nothing() -> None:
    w = World()
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 100]))
    w.service.approve(REF, actor=BOB)
    before = w.service.get(REF)
    with pytest.raises(Conflict, match="only a completed rollout retires its old pool"):
        w.service.retire(REF, actor=CAROL)
    assert w.service.get(REF) == before and not w.target.retired


def test_a_retire_that_landed_before_a_crash_is_recorded_from_its_marker() -> None:
    w = World()
    w.completed()
    r = w.service.get(REF)
    landed = machine.Retire()
    w.target.pair = Pair(stable=0, canary=100)
    w.target.marker = w.target.marker.model_copy(update={"state": MarkerState.RETIRED}) \
        if w.target.marker is not None else None
    found = machine.reconcile(r, w.service.traffic.observe(r), now=w.clock.now())
    assert found is not None and found.rollout.retired_at == w.clock.now()
    assert machine.shows_landed(r, landed, w.service.traffic.observe(r))


# ---- the reminder when the keep period ends ---------------------------------------------------


def test_the_end_of_the_keep_period_is_announced_once_to_the_card() -> None:
    w = World(keep_seconds=3600)
    seen: list[Outcome] = []
    w.service.options.listeners.append(seen.append)
    w.completed()
    w.clock.advance(seconds=1800)
    assert w.service.remind_kept() == []
    w.clock.advance(seconds=1800)
    [told] = w.service.remind_kept()
    assert told.message == ("The keep period of llm-pool is over: an approver may retire it "
                            "(`retire`), or roll back while it is still in the route.")
    assert [e.action for e in told.events] == ["keep_ended"] and seen[-1] == told
    assert w.service.get(REF).keep_reminded
    assert w.service.remind_kept() == []  # once
    assert w.target.writes[-1] == Pair(stable=0, canary=100)  # nothing written


def test_a_reminder_that_fails_does_not_hold_back_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    """Two keep periods end; the first reminder's lock is held by a person's command: the
    second is told now, the first at the next pass (it used to wait behind the first)."""
    w = World(keep_seconds=3600)
    w.completed()
    first = w.service.get(REF)
    w.store.rollouts["r2"] = first.model_copy(update={"id": "r2"})
    w.store.kept["r2"] = w.store.kept["r1"]
    opened = w.store.open

    def r1_busy(**kwargs: Any) -> Opening:
        if kwargs.get("rollout_id") == "r1":
            raise Busy("another operation on r1 is still running", retry_after=0)
        return opened(**kwargs)

    w.store.open = r1_busy  # type: ignore[method-assign]
    w.clock.advance(seconds=3600)
    with caplog.at_level(logging.WARNING, logger="rollout.service"):
        assert [o.rollout.id for o in w.service.remind_kept() if o.rollout] == ["r2"]
    assert [r.getMessage() for r in caplog.records] == [
        "could not remind of the end of r1's keep period: another operation on r1 is still "
        "running (the next pass retries)"]
    w.store.open = opened  # type: ignore[method-assign]
    assert [o.rollout.id for o in w.service.remind_kept() if o.rollout] == ["r1"]


def test_a_reminder_pass_stops_when_redis_is_gone() -> None:
    """Redis gone fails every reminder alike: the pass stops and says so (the scheduler
    logs it once), rather than one warning a kept rollout."""
    w = World(keep_seconds=3600)
    w.completed()
    w.clock.advance(seconds=3600)

    def gone(**_: Any) -> Opening:
        raise StoreUnavailable("Redis did not answer")

    w.store.open = gone  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        w.service.remind_kept()


def test_a_retired_or_rolled_back_rollout_is_not_reminded() -> None:
    w = World(keep_seconds=3600)
    w.completed()
    assert w.store.kept == {"r1": w.clock.now() + timedelta(seconds=3600)}
    w.service.retire(REF, actor=CAROL)
    assert w.store.kept == {}
    w.clock.advance(seconds=7200)
    assert w.service.remind_kept() == []


def test_a_rolled_back_completed_rollout_leaves_the_keep_index() -> None:
    w = World(keep_seconds=3600)
    w.completed()
    assert w.service.rollback(REF, actor=CAROL).ok
    assert w.store.kept == {}


def test_the_keep_reminder_reaches_a_rollout_however_many_started_after_it() -> None:
    """It used to look at the 50 most recent rollouts only."""
    w = World(keep_seconds=3600)
    w.completed()
    for i in range(60):
        later = started().model_copy(update={"id": f"later{i:02}", "version": 1})
        w.store.rollouts[later.id] = later
    assert "r1" not in w.store.recent_ids(50)
    w.clock.advance(seconds=3600)
    [told] = w.service.remind_kept()
    assert told.rollout is not None and told.rollout.id == "r1"


def test_the_keep_reminder_mentions_the_approvers_in_the_thread() -> None:
    w = World(keep_seconds=0)
    w.completed()
    posted: list[dict[str, object]] = []

    class Client(WebClient):
        def chat_postMessage(self, **kwargs: Any) -> Any:  # noqa: N802 - Slack's name
            posted.append(kwargs)
            return SlackResponse(client=self, http_verb="POST", api_url="", req_args={},
                                 data={"ok": True, "channel": "C1", "ts": "1.0"},
                                 headers={}, status_code=200)

        def chat_update(self, **kwargs: Any) -> Any:
            return None

    w.service.attach_card("r1", Card(channel="C1", ts="1.0"))
    w.service.options.listeners.append(CardPublisher(
        client=Client(token="xoxb-test"), service=w.service, clock=w.clock,
        mention="<!subteam^S0REV>"))
    w.service.remind_kept()
    [thread] = [p for p in posted if p.get("thread_ts") == "1.0"]
    assert "the keep period is over (llm-pool was kept for rollback until 2026-01-01 12:00 " \
           "UTC): an approver may now retire it" in str(thread["text"])
    assert str(thread["text"]).endswith(
        "<!subteam^S0REV>: please retire llm-pool (`retire`) or roll back")


def test_retire_over_weights_changed_by_hand_writes_nothing_and_stays_possible() -> None:
    w = World()
    w.completed()
    w.target.pair = Pair(stable=10, canary=90)  # someone gave the old pool traffic again
    out = w.service.retire(REF, actor=CAROL)
    assert not out.ok and out.message.startswith("Not applied: weights changed outside the "
                                                 "bot: stable 10 / canary 90")
    assert out.message.endswith("Nothing was changed.")
    r = w.service.get(REF)
    assert r.retired_at is None and not w.target.retired
    assert w.store.in_flight_ids() == []


def test_retire_is_refused_once_a_later_rollout_holds_the_rule() -> None:
    """As rollback is: it wrote its own retired marker over the later rollout's, which could
    then not be recovered from the rule if Redis lost it."""
    w = World(keep_seconds=3600)
    w.completed()
    first = w.store.rollouts["r1"]
    later = first.model_copy(update={
        "id": "r2", "phase": Phase.AWAITING_APPROVAL, "step": -1, "keep_until": None,
        "finished_at": None, "completed_by": None})
    w.store.rollouts["r2"] = later
    w.target.marker = Marker(rollout_id="r2", step=-1)
    with pytest.raises(Conflict, match="now belongs to rollout r2"):
        w.service.retire(Ref(rollout_id="r1"), actor=CAROL)
    assert w.target.marker == Marker(rollout_id="r2", step=-1)
    assert w.service.get(Ref(rollout_id="r1")).retired_at is None


def test_a_failed_write_on_a_finished_rollout_does_not_say_it_is_paused() -> None:
    """A finished rollout is not paused by a write that failed: it said "The rollout is
    paused; resume or roll back", and resume is refused for it."""
    w = World(keep_seconds=3600)
    w.completed()
    w.target.fail_next = WriteUnknown("the API server did not answer")
    lost = w.service.retire(REF, actor=CAROL)
    assert not lost.ok and lost.message.endswith(
        "but the write may still be in flight. The scheduler's sweep records the change if "
        "it lands.")
    w.target.fail_next = ClusterUnavailable("the Kubernetes API failed: 500")
    refused = w.service.rollback(REF, actor=CAROL)
    assert not refused.ok and refused.message == (
        "Not applied: the Kubernetes API failed: 500. Nothing changed; try again once the "
        "cause is fixed.")
    assert w.service.get(REF).phase is Phase.COMPLETED


def test_a_plan_approved_during_a_freeze_is_answered_with_the_freeze() -> None:
    w = World()
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 100], interval_seconds=60, auto=True))
    w.service.freeze(actor=CAROL, reason="incident 42")
    approved = w.service.approve_plan(REF, actor=BOB)
    assert approved.ok and approved.message.endswith(
        "applies once the freeze is lifted (rollouts are frozen by carol since "
        "2026-01-01 12:00:00 UTC: incident 42).")


def test_a_plan_approved_with_no_freeze_says_its_first_step_applies_now() -> None:
    w = World()
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 100], interval_seconds=60, auto=True))
    approved = w.service.approve_plan(REF, actor=BOB)
    assert approved.message == ("bob approved the plan of llm-pool-version-2; step 1 (10%) "
                                "applies now.")


def test_a_completion_recorded_from_the_rule_after_a_lost_save_keeps_who_completed_it() -> None:
    w = World()
    w.service.start(namespace="default", canary=CANARY, actor=ALICE, plan=build_plan([100]))
    w.store.fail_saves = StoreUnavailable("Redis did not answer")
    with pytest.raises(Unrecorded):
        w.service.approve(REF, actor=BOB)  # the last step lands; its save is lost
    w.store.fail_saves = None
    assert w.target.pair == Pair(stable=0, canary=100)
    assert w.service.get(REF).phase is not Phase.COMPLETED
    w.service.watch(w.service.get(REF))  # the sweep records it from the rule's marker
    r = w.service.get(REF)
    assert r.phase is Phase.COMPLETED and r.completed_by == BOB
    completed = [e for e in w.service.history(REF) if e.action == "completed"]
    assert [e.actor for e in completed] == [BOB]
    with pytest.raises(Unauthorized, match=r"bob completed this rollout and cannot retire"):
        w.service.retire(REF, actor=BOB)
    assert not w.target.retired
    assert w.service.retire(REF, actor=CAROL).ok
