"""The happy path over real HTTP: start from Slack, approve by button, and every verb from
both the command and the buttons."""

from __future__ import annotations

import threading
from collections.abc import Callable

from handlers.commands import CommandRequest, Verb, run_command
from handlers.slack_listeners import CARD_MISSED
from rollout.domain.models import Actor, Card
from rollout.service import Ref
from sandbox.slack import Message, SlackFault
from tests.e2e.conftest import CANARY, CHANNEL, World, start_rollout
from tests.support.polling import eventually


def test_start_posts_a_card_and_a_click_moves_the_route(world: World) -> None:
    card = start_rollout(world)
    approve = world.button(card, "rollout_approve")
    assert approve is not None
    assert approve["text"]["text"] == "Approve step 1: 10%"
    assert world.weights() == {"llm-pool": 100, CANARY: 0}

    status, _, _ = world.click("U0BOB", card.ts, "rollout_approve", approve["value"])
    assert status == 200
    eventually(lambda: world.weights() == {"llm-pool": 90, CANARY: 10}, message="90/10")
    updated = eventually(lambda: "10%" in str(world.card().blocks) and
                         "▓░░░░░░░░░ 10%" in str(world.card().blocks) and world.card())
    assert updated.ts == card.ts
    assert any(c.method == "chat.update" for c in world.slack.calls)
    thread = eventually(lambda: len(world.slack.thread(CHANNEL, card.ts)) >= 3 and
                        world.slack.thread(CHANNEL, card.ts))
    texts = "\n".join(m.text for m in thread)
    assert "started the rollout" in texts and "<@U0BOB> applied step 1 (10%)" in texts


def test_a_click_whose_card_cannot_be_redrawn_is_answered_to_the_clicker(world: World) -> None:
    """A click that changed the rollout is answered on its card alone; when Slack fails the
    card's update past the bot's retries, the clicker is told through the click's response
    URL instead of seeing nothing."""
    card = start_rollout(world)
    value = world.value(card, "rollout_approve").encode()
    world.click("U0BOB", card.ts, "rollout_approve", value)  # the card can say this one
    eventually(lambda: world.value(world.card(), "rollout_approve").step == 1,
               message="the card redrawn for step 2")
    assert [p for p in world.slack.responses if p.user == "U0BOB"] == []
    world.slack.inject(SlackFault(method="chat.update", error="internal_error", status=500,
                                  count=None))
    drawn = world.card()
    status, _, _ = world.click("U0CAROL", card.ts, "rollout_approve",
                               world.value(drawn, "rollout_approve").encode())
    assert status == 200
    (answer,) = eventually(lambda: [p.text or "" for p in world.slack.responses
                                    if p.user == "U0CAROL"], message="an answer")
    assert answer.startswith(":white_check_mark:") and "now at 25%" in answer
    assert answer.endswith(CARD_MISSED)
    assert world.weights() == {"llm-pool": 75, CANARY: 25}
    assert world.card().blocks == drawn.blocks


def _phase(world: World) -> str:
    return str(world.rollout().phase.value)


def test_pause_resume_rollback_and_status_from_the_command(world: World) -> None:
    card = start_rollout(world)
    world.click("U0BOB", card.ts, "rollout_approve", world.value(card, "rollout_approve").encode())
    eventually(lambda: world.weights()[CANARY] == 10)

    world.command("U0DAVE", f'{CANARY} pause --reason "p99 latency"')
    eventually(lambda: _phase(world) == "paused")
    eventually(lambda: "p99 latency" in str(world.card().blocks))
    eventually(lambda: world.button(world.card(), "rollout_resume"))

    world.command("U0CAROL", f"{CANARY} resume")
    eventually(lambda: _phase(world) != "paused")

    status, _, _ = world.command("U0DAVE", f"{CANARY} status")
    assert status == 200
    eventually(lambda: any("10%" in t and "routes-to-llm" in t
                           for t in world.ephemeral_texts("U0DAVE")), message="status answer")

    world.command("U0DAVE", f"{CANARY} rollback “bad answers”")
    eventually(lambda: _phase(world) == "rolled_back")
    assert world.weights() == {"llm-pool": 100, CANARY: 0}
    eventually(lambda: "rolled back" in str(world.card().blocks))
    final = world.card()
    assert world.button(final, "rollout_rollback") is None
    assert world.button(final, "rollout_approve") is None


def test_pause_resume_rollback_and_status_from_the_buttons(world: World) -> None:
    card = start_rollout(world)
    world.click("U0BOB", card.ts, "rollout_approve", world.value(card, "rollout_approve").encode())
    # the weights land before the state is saved: wait for the saved step, not the route
    eventually(lambda: world.rollout().step == 0 and world.weights()[CANARY] == 10)

    def current(action: str) -> str:
        rollout = world.rollout()
        value = world.value(world.card(), action)
        assert value.epoch == rollout.epoch
        return value.encode()

    world.click("U0DAVE", card.ts, "rollout_pause", eventually(lambda: current("rollout_pause")))
    eventually(lambda: _phase(world) == "paused")
    world.click("U0CAROL", card.ts, "rollout_resume", eventually(lambda: current("rollout_resume")))
    eventually(lambda: _phase(world) in ("baking", "awaiting_approval"))
    world.click("U0DAVE", card.ts, "rollout_rollback",
                eventually(lambda: current("rollout_rollback")))
    modal = eventually(lambda: world.slack.workspace.views_of("U0DAVE"), message="a modal")[0]
    world.slack.submit_view("U0DAVE", modal.id, {})
    eventually(lambda: _phase(world) == "rolled_back")
    assert world.weights() == {"llm-pool": 100, CANARY: 0}
    eventually(lambda: "rolled back" in world.card().text)
    thread = "\n".join(m.text for m in world.slack.thread(CHANNEL, card.ts))
    for word in ("paused", "resumed", "rolled back"):
        assert word in thread


def test_roll_back_opens_a_modal_whose_reason_reaches_the_audit_and_the_thread(
    world: World,
) -> None:
    card = start_rollout(world)
    value = world.value(card, "rollout_rollback").encode()
    world.click("U0DAVE", card.ts, "rollout_rollback", value)
    modal = eventually(lambda: world.slack.workspace.views_of("U0DAVE"), message="a modal")[0]
    assert modal.view["callback_id"] == "rollout_rollback_modal"
    assert world.rollout().phase.value == "awaiting_approval"  # the click alone changes nothing
    assert world.route_patches() == 1

    status, _, _ = world.slack.submit_view("U0DAVE", modal.id, {"rollback_reason": "bad answers"})
    assert status == 200
    eventually(lambda: _phase(world) == "rolled_back")
    assert world.slack.workspace.views_of("U0DAVE") == []
    history = world.container.service.history(Ref(namespace="default", canary=CANARY))
    rolled = [e for e in history if e.action == "rolled_back"]
    assert [(e.actor.id, e.detail) for e in rolled] == [("U0DAVE", "bad answers")]
    eventually(lambda: any("rolled back from 0%: bad answers" in m.text
                           for m in world.slack.thread(CHANNEL, card.ts)))


def test_a_cancelled_rollback_modal_changes_nothing(world: World) -> None:
    card = start_rollout(world)
    world.click("U0DAVE", card.ts, "rollout_rollback",
                world.value(card, "rollout_rollback").encode())
    modal = eventually(lambda: world.slack.workspace.views_of("U0DAVE"))[0]
    world.slack.close_view("U0DAVE", modal.id)
    assert world.slack.workspace.views_of("U0DAVE") == []
    assert world.rollout().phase.value == "awaiting_approval"
    assert world.weights() == {"llm-pool": 100, CANARY: 0}


def test_a_modal_submitted_after_the_rollout_moved_on_is_answered_and_changes_nothing(
    world: World,
) -> None:
    card = start_rollout(world)
    world.click("U0DAVE", card.ts, "rollout_rollback",
                world.value(card, "rollout_rollback").encode())
    modal = eventually(lambda: world.slack.workspace.views_of("U0DAVE"))[0]
    world.command("U0CAROL", f"{CANARY} rollback too slow")
    eventually(lambda: _phase(world) == "rolled_back")
    version = world.rollout().version
    world.slack.submit_view("U0DAVE", modal.id, {"rollback_reason": "late"})
    eventually(lambda: any("outdated" in m.text or "already" in m.text
                           for m in world.slack.ephemerals(CHANNEL, "U0DAVE")),
               message="an answer to the late submission")
    assert world.rollout().version == version
    history = world.container.service.history(Ref(namespace="default", canary=CANARY))
    assert [e.detail for e in history if e.action == "rolled_back"] == ["too slow"]


def test_the_answer_replaces_working_on_it(world: World) -> None:
    status, _, body = world.command("U0ALICE", f"{CANARY} start --interval 0s")
    assert status == 200 and body == ""
    answer = eventually(lambda: [m.text for m in world.slack.ephemerals(CHANNEL, "U0ALICE")
                                 if "started" in m.text], message="the answer")
    assert len(answer) == 1 and len(world.slack.ephemerals(CHANNEL, "U0ALICE")) == 1
    posts = [(p.text or "", p.replace_original) for p in world.slack.responses
             if p.user == "U0ALICE"]
    assert posts[0] == (":hourglass_flowing_sand: Working on it…", False)
    assert posts[1][1] is True and "started" in posts[1][0]


def test_help_list_and_history_answer_ephemerally(world: World) -> None:
    status, _, body = world.command("U0DAVE", "help")
    assert status == 200 and "Usage" in body
    status, _, body = world.command("U0DAVE", "help rollback")
    assert status == 200 and "/rollout <pool> rollback" in body and "--steps" not in body
    start_rollout(world)
    world.command("U0DAVE", "list")
    eventually(lambda: any(CANARY in t and "awaiting approval" in t
                           for t in world.ephemeral_texts("U0DAVE")))
    world.command("U0DAVE", f"{CANARY} history")
    eventually(lambda: any("History" in t and "started" in t
                           for t in world.ephemeral_texts("U0DAVE")))


def test_a_malformed_command_gets_usage_not_a_trace(world: World) -> None:
    status, _, body = world.command("U0ALICE", f"{CANARY} start --steps 50,10")
    assert status == 200
    assert "steps must strictly increase" in body and "Usage" in body
    assert "Traceback" not in body
    status, _, body = world.command("U0ALICE", f"{CANARY} frobnicate")
    assert "unknown verb" in body and "Usage" in body
    status, _, body = world.command("U0ALICE", f"{CANARY} strat")
    assert "did you mean `start`?" in body and len(body.splitlines()) == 2
    assert world.cards() == []


def test_a_rollout_started_from_the_cli_gets_a_card_in_the_notify_channel(
    make_world: Callable[..., World],
) -> None:
    world = make_world(rollout_notify_channel="C0OTHER")
    cli = Actor(id="cli:ops", name="ops", via="cli")
    out = run_command(world.container.service,
                      CommandRequest(verb=Verb.START, pool=CANARY, interval_seconds=0), cli)
    assert out.outcome is not None and out.outcome.rollout is not None
    def notified() -> Message | None:
        return world.card("C0OTHER") if world.cards("C0OTHER") else None

    card = eventually(notified)
    assert world.rollout().card == Card(channel="C0OTHER", ts=card.ts)
    # a later change from outside Slack updates the same card
    world.container.service.pause(Ref(rollout_id=out.outcome.rollout.id), actor=cli)
    eventually(lambda: "paused" in world.card("C0OTHER").text)
    assert len(world.cards("C0OTHER")) == 1


def test_an_approver_freezes_from_slack_and_the_card_shows_it_until_unfreeze(
        world: World) -> None:
    card = start_rollout(world)
    world.command("U0DAVE", 'freeze --reason "incident 42"')
    eventually(lambda: any("only approvers may `freeze`" in t
                           for t in world.ephemeral_texts("U0DAVE")), message="denied")
    world.command("U0BOB", 'freeze --reason "incident 42"')
    eventually(lambda: "Rollouts are frozen by" in str(world.card().blocks) and
               "incident 42" in str(world.card().blocks), message="the freeze on the card")
    world.click("U0CAROL", card.ts, "rollout_approve",
                world.value(card, "rollout_approve").encode())
    eventually(lambda: any("Step-ups wait until an approver runs unfreeze" in t
                           for t in world.ephemeral_texts("U0CAROL")), message="held")
    assert world.weights() == {"llm-pool": 100, CANARY: 0}
    world.command("U0CAROL", "unfreeze")
    eventually(lambda: "Rollouts are frozen" not in str(world.card().blocks),
               message="the card after unfreeze")
    world.click("U0CAROL", card.ts, "rollout_approve",
                world.value(world.card(), "rollout_approve").encode())
    eventually(lambda: world.weights() == {"llm-pool": 90, CANARY: 10}, message="90/10")


def test_roll_back_opens_and_lands_while_every_worker_is_taken(world: World) -> None:
    """Every worker and backlog place of the bot held (commands waiting on a slow cluster):
    the Roll back dialog, whose trigger Slack lets live 3 s, still opens, and its
    submission still rolls back, on the rollbacks' own pool."""
    card = start_rollout(world)
    release = threading.Event()

    def hold() -> None:
        release.wait(30)

    # the start's own work done first: a place it freed after the filling took the status
    eventually(lambda: world.bot.workers.busy == 0, message="the start's work done")
    while world.bot.workers.submit(hold):
        pass  # every place taken
    try:
        status, _, body = world.command("U0ALICE", f"{CANARY} status")
        assert status == 200 and "busy" in body  # the other commands are refused, as before
        world.click("U0DAVE", card.ts, "rollout_rollback",
                    world.value(card, "rollout_rollback").encode())
        modal = eventually(lambda: world.slack.workspace.views_of("U0DAVE"),
                           message="the Roll back dialog")[0]
        world.slack.submit_view("U0DAVE", modal.id, {"rollback_reason": "while busy"})
        eventually(lambda: _phase(world) == "rolled_back", message="the rollback")
    finally:
        release.set()
