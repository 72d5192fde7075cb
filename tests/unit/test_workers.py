"""The bot's bounded pool for the work after a Slack ack, and the listeners' answer when it
is full: "busy" at once, in the ack, and nothing done."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookResponse

from handlers.authorization import Authorizer, Policy
from handlers.card_sync import CardPublisher
from handlers.cards import ROLLBACK, ButtonValue
from handlers.slack_listeners import SlackEdge
from handlers.workers import BUSY, Workers
from rollout.domain.clock import ManualClock
from rollout.domain.models import Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref, RolloutService
from tests.unit.builders import ALICE, BOB
from tests.unit.fakes import FakeStore, FakeTraffic, one_route_world, open_gates

WAIT = 10.0  # a bound on waiting for another thread, never a sleep


def _blocked(workers: Workers, count: int) -> threading.Event:
    """Fill `count` slots with work that waits for the returned event."""
    release = threading.Event()

    def hold() -> None:
        release.wait(WAIT)

    for _ in range(count):
        assert workers.submit(hold)
    return release


def test_the_pool_refuses_work_beyond_workers_plus_backlog_at_once() -> None:
    workers = Workers(workers=1, backlog=1)
    release = _blocked(workers, 2)
    assert workers.busy == 2
    assert not workers.submit(lambda: None)
    release.set()
    workers.drain(WAIT)
    assert workers.busy == 0  # every slot freed as its work ended
    assert not workers.submit(lambda: None)  # shut down: refused, not queued


def test_work_that_fails_frees_its_slot() -> None:
    workers = Workers(workers=1, backlog=0)

    def fail() -> None:
        raise RuntimeError("boom")

    assert workers.submit(fail)
    workers.drain(WAIT)
    assert workers.busy == 0


@pytest.mark.parametrize("round_", range(50))  # the release races the drain: many rounds
def test_drain_waits_for_the_work_taken_and_then_refuses_more(round_: int) -> None:
    """Work acked in Slack (running, or waiting for a worker) ends before drain returns;
    work offered after drain began is refused."""
    workers = Workers(workers=1, backlog=1)
    done: list[str] = []
    release = _blocked(workers, 1)
    assert workers.submit(lambda: done.append("queued"))
    drained: list[int] = []
    drainer = threading.Thread(target=lambda: drained.append(workers.drain(WAIT)))
    drainer.start()
    release.set()
    drainer.join(WAIT)
    assert drained == [0] and done == ["queued"] and workers.busy == 0
    assert not workers.submit(lambda: done.append("late"))
    assert done == ["queued"]


def test_drain_gives_up_at_its_deadline_and_drops_what_has_not_begun() -> None:
    workers = Workers(workers=1, backlog=1)
    done: list[str] = []
    release = _blocked(workers, 1)
    assert workers.submit(lambda: done.append("queued"))
    assert workers.drain(0) == 2  # one running, one waiting: both still taken at the deadline
    release.set()
    assert workers.drain(WAIT) == 0  # the running one ended, the dropped one freed its slot
    assert done == [] and workers.busy == 0  # the waiting one was dropped, never run


def test_a_pool_without_workers_is_refused() -> None:
    for workers, backlog in ((0, 1), (1, -1)):
        try:
            Workers(workers=workers, backlog=backlog)
        except ValueError:
            continue
        raise AssertionError(f"Workers({workers}, {backlog}) was accepted")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.called = threading.Event()

    def __call__(self, **kwargs: Any) -> WebhookResponse:
        self.calls.append(kwargs)
        self.called.set()
        return WebhookResponse(url="", status_code=200, body="ok", headers={})


def _edge(store: FakeStore, workers: Workers) -> SlackEdge:
    clock = ManualClock()
    service = RolloutService(store=store, traffic=FakeTraffic(), clock=clock,
                             gates=open_gates())
    cards = CardPublisher(client=WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/"),
                          service=service, clock=clock)
    return SlackEdge(service=service, authorizer=Authorizer(Policy.of(approvers=["U0BOB"])),
                     cards=cards, workers=workers)


COMMAND = {"text": "llm-pool-version-2 start", "user_id": "U0ALICE", "channel_id": "C0R",
           "trigger_id": "1.2.abc"}


def test_a_full_pool_is_answered_busy_in_the_ack_and_nothing_is_done() -> None:
    store = FakeStore()
    workers = Workers(workers=1, backlog=0)
    release = _blocked(workers, 1)
    ack, respond = Recorder(), Recorder()
    try:
        _edge(store, workers).on_command(ack, COMMAND, respond)  # type: ignore[arg-type]
    finally:
        release.set()
        workers.drain(WAIT)
    assert ack.calls == [{"text": BUSY}]
    assert respond.calls == []
    assert store.saves == [] and store.events == []


def test_with_room_the_ack_is_empty_and_the_answer_follows_from_a_worker() -> None:
    workers = Workers(workers=1, backlog=0)
    ack, respond = Recorder(), Recorder()
    _edge(FakeStore(), workers).on_command(ack, COMMAND, respond)  # type: ignore[arg-type]
    assert ack.calls == [{}]
    workers.drain(WAIT)
    texts = [c["text"] for c in respond.calls]
    assert len(texts) == 2 and "Working on it" in texts[0]
    assert respond.calls[1]["replace_original"] is True


class _Stalled(Recorder):
    """A response URL (or an audit) that does not answer until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def __call__(self, **kwargs: Any) -> WebhookResponse:
        self.called.set()
        assert self.release.wait(WAIT)
        return super().__call__(**kwargs)


def _returns(listener: Any, *args: Any) -> bool:
    """Whether `listener(*args)` returns (its ack goes out) within a second, on a thread."""
    done = threading.Event()

    def run() -> None:
        listener(*args)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(1.0)


def test_a_full_pools_busy_answer_to_a_click_does_not_hold_its_ack() -> None:
    """The answer went through the response URL before the listener returned: a slow
    response URL (retried) held the ack past Slack's 3 s."""
    workers = Workers(workers=1, backlog=0)
    release = _blocked(workers, 1)
    edge = _edge(FakeStore(), workers)
    respond = _Stalled()
    body = {"user": {"id": "U0BOB"}, "channel": {"id": "C0R"}}
    try:
        assert _returns(edge.on_button, Recorder(), body,
                        {"action_id": "rollout_pause", "value": "{}"}, respond, None)
        assert respond.called.wait(WAIT)  # the answer is on its way, beside the ack
    finally:
        respond.release.set()
        release.set()
        workers.drain(WAIT)
        edge.side.drain(WAIT)
    assert [c["text"] for c in respond.calls] == [BUSY]


def test_a_bad_commands_audit_does_not_hold_its_ack() -> None:
    """The refusal was audited in Redis before the listener returned: a stalled Redis held
    the ack past Slack's 3 s."""
    store = FakeStore()
    audited = threading.Event()
    release = threading.Event()

    def stalled(event: Any) -> None:
        audited.set()
        assert release.wait(WAIT)
        store.events.append(event)

    store.record = stalled  # type: ignore[method-assign]
    edge = _edge(store, Workers(workers=1, backlog=0))
    ack = Recorder()
    try:
        assert _returns(edge.on_command, ack, {**COMMAND, "text": "llm-pool-version-2 launch"},
                        Recorder())
        assert audited.wait(WAIT)
    finally:
        release.set()
        edge.side.drain(WAIT)
    assert "launch" in ack.calls[0]["text"] and len(store.events) == 1


class _Views:
    """The WebClient's `views_open`, recorded (the Roll back dialog)."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def views_open(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        self.opened.append(trigger_id)


def _edge_on(service: RolloutService, workers: Workers) -> SlackEdge:
    cards = CardPublisher(client=WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/"),
                          service=service, clock=ManualClock())
    return SlackEdge(service=service, authorizer=Authorizer(Policy.of(approvers=["U0BOB"])),
                     cards=cards, workers=workers)


def test_a_roll_back_click_opens_its_dialog_while_every_worker_is_taken() -> None:
    """Every worker held by commands waiting on a slow cluster: the Roll back dialog, whose
    trigger lasts 3 s, waited behind them (or was refused as busy). Rollbacks have a pool
    of their own."""
    service, _store, _target, _clock = one_route_world()
    r = service.start(namespace="default", canary="llm-pool-version-2",
                      plan=build_plan([10, 50, 100]), actor=ALICE).rollout
    assert r is not None
    workers = Workers(workers=1, backlog=0)
    release = _blocked(workers, 1)
    edge, views, respond = _edge_on(service, workers), _Views(), Recorder()
    value = ButtonValue(rollout_id=r.id, step=r.step).encode()
    body = {"user": {"id": "U0BOB"}, "channel": {"id": "C0R"}, "trigger_id": "9.9.roll"}
    try:
        click = {"action_id": ROLLBACK, "value": value}
        edge.on_button(Recorder(), body, click, respond, views)  # type: ignore[arg-type]
        edge.rollbacks.drain(WAIT)
    finally:
        release.set()
        workers.drain(WAIT)
    assert views.opened == ["9.9.roll"] and respond.calls == []


def test_a_rollback_command_is_taken_while_every_worker_is_taken() -> None:
    service, _store, target, _clock = one_route_world()
    service.start(namespace="default", canary="llm-pool-version-2",
                  plan=build_plan([10, 50, 100]), actor=ALICE)
    service.approve(Ref(canary="llm-pool-version-2"), actor=BOB)
    workers = Workers(workers=1, backlog=0)
    release = _blocked(workers, 1)
    edge, ack, respond = _edge_on(service, workers), Recorder(), Recorder()
    try:
        command = {**COMMAND, "user_id": "U0BOB", "text": "llm-pool-version-2 rollback"}
        edge.on_command(ack, command, respond)  # type: ignore[arg-type]
        edge.rollbacks.drain(WAIT)
    finally:
        release.set()
        workers.drain(WAIT)
    assert ack.calls == [{}]
    assert service.get(Ref(canary="llm-pool-version-2")).phase is Phase.ROLLED_BACK
    assert target.pair.canary == 0
