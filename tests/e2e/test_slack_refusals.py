"""Refusals over real HTTP: each is answered and changes nothing (DESIGN invariant 9)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rollout.domain.models import Actor, AuditAction
from rollout.service import Ref
from sandbox.slack import SlackFault, block_actions_body
from sandbox.slack.delivery import deliver
from tests.e2e.conftest import CANARY, CHANNEL, SECRET, World, start_rollout
from tests.support.polling import eventually

UNCHANGED = {"llm-pool": 100, CANARY: 0}


def _denials(world: World, action: str) -> list[str]:
    events = world.container.store.global_audit(limit=50)
    return [e.detail for e in events if e.action is AuditAction.DENIED and e.refused == action]


def test_a_forged_signature_is_refused_with_401(world: World) -> None:
    status, _, _ = world.command("U0ALICE", f"{CANARY} start", signing_secret="not-the-secret")
    assert status == 401
    world.settled()
    assert world.cards() == []
    assert world.weights() == UNCHANGED
    assert world.container.service.list_rollouts() == []


def test_a_request_older_than_five_minutes_is_refused_with_401(world: World) -> None:
    status, _, _ = world.command("U0ALICE", f"{CANARY} start",
                                 timestamp=int(time.time()) - 6 * 60)
    assert status == 401
    world.settled()
    assert world.container.service.list_rollouts() == []
    assert world.weights() == UNCHANGED


def test_a_user_outside_the_approvers_cannot_approve(world: World) -> None:
    card = start_rollout(world)
    before = world.rollout()
    status, _, _ = world.click("U0DAVE", card.ts, "rollout_approve",
                               world.value(card, "rollout_approve").encode())
    assert status == 200
    eventually(lambda: any("only approvers" in t and t.endswith("ask <@U0BOB> or <@U0CAROL>")
                           for t in world.ephemeral_texts("U0DAVE")))
    eventually(lambda: _denials(world, "approve"))
    assert world.weights() == UNCHANGED
    assert world.rollout().version == before.version
    world.command("U0DAVE", f"{CANARY} approve")
    eventually(lambda: len(_denials(world, "approve")) == 2)
    assert world.weights() == UNCHANGED


def test_the_starter_cannot_approve_their_own_rollout(make_world: Callable[..., World]) -> None:
    # alice is an approver too, but she started the rollout: the two-person rule refuses her
    w = make_world(rollout_approvers=["U0ALICE", "U0BOB"])
    card = start_rollout(w)
    before = w.rollout()
    w.click("U0ALICE", card.ts, "rollout_approve", w.value(card, "rollout_approve").encode())
    eventually(lambda: any("two-person rule" in t and t.endswith("\nAsk <@U0BOB>.")
                           for t in w.ephemeral_texts("U0ALICE")))
    eventually(lambda: _denials(w, "approve"))
    assert w.weights() == UNCHANGED
    assert w.rollout().version == before.version


def test_a_channel_that_is_not_allowed_is_refused(make_world: Callable[..., World]) -> None:
    world = make_world(rollout_allowed_channels=[CHANNEL])
    world.command("U0ALICE", f"{CANARY} start --interval 0s", channel="C0OTHER")
    eventually(lambda: any("not allowed in this channel" in t
                           for t in world.ephemeral_texts("U0ALICE", "C0OTHER")))
    eventually(lambda: _denials(world, "start"))
    assert world.container.service.list_rollouts() == []
    assert world.weights() == UNCHANGED
    # reading is fine anywhere
    world.command("U0ALICE", "list", channel="C0OTHER")
    eventually(lambda: any("No rollouts" in t for t in world.ephemeral_texts("U0ALICE",
                                                                           "C0OTHER")))


def test_an_approve_drawn_before_a_pause_and_resume_changes_nothing(world: World) -> None:
    card = start_rollout(world)
    old = world.value(card, "rollout_approve")
    world.command("U0DAVE", f"{CANARY} pause")
    eventually(lambda: world.rollout().phase.value == "paused")
    world.command("U0CAROL", f"{CANARY} resume")
    eventually(lambda: world.rollout().phase.value == "awaiting_approval")
    before = world.rollout()
    assert old.epoch is not None and before.epoch > old.epoch

    world.click("U0BOB", card.ts, "rollout_approve", old.encode())
    eventually(lambda: any("paused or resumed since" in t for t in world.ephemeral_texts("U0BOB")))
    world.settled()
    assert world.weights() == UNCHANGED
    assert world.rollout().version == before.version


def test_the_same_click_delivered_twice_writes_the_weights_once(world: World) -> None:
    card = start_rollout(world)
    value = world.value(card, "rollout_approve").encode()
    message = world.slack.message(CHANNEL, card.ts)
    assert message is not None
    body = block_actions_body(user_id="U0BOB", user_name="bob", channel_id=CHANNEL,
                              message_ts=card.ts, action_id="rollout_approve", value=value,
                              block_id="rollout_actions")
    before = world.route_patches()
    first = deliver(world.bot.events_url, body, signing_secret=SECRET)
    second = deliver(world.bot.events_url, body, signing_secret=SECRET)
    assert first.status == second.status == 200
    eventually(lambda: world.weights()[CANARY] == 10 and world.rollout().step == 0)
    world.settled()
    assert world.route_patches() - before == 1
    assert world.rollout().step == 0
    # a second, distinct click on the same (now outdated) button does not write either
    world.click("U0CAROL", card.ts, "rollout_approve", value)
    world.settled()
    assert world.route_patches() - before == 1


def test_slack_rate_limits_are_retried_and_the_card_still_lands(world: World) -> None:
    world.slack.inject(SlackFault(method="chat.postMessage", error="ratelimited", count=1,
                                  retry_after=1))
    world.slack.inject(SlackFault(method="chat.update", error="ratelimited", count=1,
                                  retry_after=1))
    card = start_rollout(world)
    paused = world.container.service.pause(  # any change redraws the card: chat.update
        Ref(rollout_id=world.rollout().id), actor=Actor(id="U0CAROL", via="slack"))
    assert paused.ok
    failed = [c for c in world.slack.calls if c.error == "ratelimited"]
    assert {c.method for c in failed} == {"chat.postMessage", "chat.update"}
    updates = [c for c in world.slack.calls if c.method == "chat.update" and c.ok]
    assert updates, "the card was not redrawn after the rate limit"
    shown = world.rollout().card
    assert shown is not None and shown.ts == card.ts
    assert world.container.service.get(Ref(rollout_id=world.rollout().id)).card is not None


def test_retire_is_refused_to_a_non_approver_and_to_who_completed_the_rollout(
        world: World) -> None:
    start_rollout(world, text=f"{CANARY} start --steps 100 --interval 0s --keep 1h")
    world.command("U0BOB", f"{CANARY} approve")
    done = {"llm-pool": 0, CANARY: 100}
    eventually(lambda: world.weights() == done)
    world.command("U0DAVE", f"{CANARY} retire")
    eventually(lambda: any("only approvers" in t for t in world.ephemeral_texts("U0DAVE")))
    eventually(lambda: _denials(world, "retire"))
    world.command("U0BOB", f"{CANARY} retire")
    eventually(lambda: any("completed this rollout and cannot retire its old pool "
                           "(two-person rule)" in t for t in world.ephemeral_texts("U0BOB")))
    world.settled()
    assert world.weights() == done and world.rollout().retired_at is None
    world.command("U0CAROL", f"{CANARY} retire")
    eventually(lambda: world.weights() == {CANARY: 100})
    eventually(lambda: world.rollout().retired_at is not None)
