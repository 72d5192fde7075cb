"""A slash command works in any channel, but the bot posts only where it is a member: a
start from a channel the bot was never invited to runs, and its card cannot be posted. The
person who asked is told so, by the error code Slack answered, with what to do."""

from __future__ import annotations

from sandbox.slack import SlackFault
from tests.e2e.conftest import CANARY, World
from tests.support.polling import eventually


def _answers(world: World, user: str) -> list[str]:
    return [p.text or "" for p in world.slack.responses if p.user == user]


def test_a_start_whose_card_cannot_be_posted_says_why(world: World) -> None:
    world.slack.inject(SlackFault(method="chat.postMessage", error="not_in_channel",
                                  count=None))
    status, _, _ = world.command("U0ALICE", f"{CANARY} start --interval 0s")
    assert status == 200
    answer = eventually(lambda: [t for t in _answers(world, "U0ALICE") if "started" in t],
                        message="the start's answer")[-1]
    assert "could not be posted" in answer and "not in this channel" in answer
    assert "/invite" in answer
    assert world.rollout().card is None


def test_a_start_into_an_archived_channel_says_so(world: World) -> None:
    world.slack.inject(SlackFault(method="chat.postMessage", error="is_archived", count=None))
    world.command("U0ALICE", f"{CANARY} start --interval 0s")
    answer = eventually(lambda: [t for t in _answers(world, "U0ALICE") if "started" in t],
                        message="the start's answer")[-1]
    assert "could not be posted" in answer and "archived" in answer
    assert f"/rollout {CANARY} status" in answer


def test_a_start_whose_card_is_posted_says_nothing_more(world: World) -> None:
    world.command("U0ALICE", f"{CANARY} start --interval 0s")
    answer = eventually(lambda: [t for t in _answers(world, "U0ALICE") if "started" in t],
                        message="the start's answer")[-1]
    assert "could not be posted" not in answer


def test_a_card_someone_deleted_is_posted_again_with_the_next_change(world: World) -> None:
    """Slack answers `message_not_found` to the update of a deleted card: its buttons and its
    thread were gone for good, and every later change only logged a failed update."""
    world.command("U0ALICE", f"{CANARY} start --interval 0s")
    eventually(lambda: [t for t in _answers(world, "U0ALICE") if "started" in t],
               message="the start's answer")
    old = eventually(lambda: world.rollout().card, message="the started rollout's card")
    world.slack.workspace.delete_message(old.channel, old.ts)
    world.command("U0BOB", f"{CANARY} approve")
    new = eventually(lambda: (c := world.rollout().card) is not None and c.ts != old.ts and c,
                     message="a new card, remembered")
    assert new.channel == old.channel
    assert [m.ts for m in world.cards()] == [new.ts]
    eventually(lambda: world.button(world.card(), "rollout_approve") is not None
               and world.value(world.card(), "rollout_approve").step == 1,
               message="the new card offers step 2")
    thread = eventually(lambda: [m.text for m in world.slack.thread(new.channel, new.ts)[1:]
                                 if "applied step 1" in m.text], message="the change's line")
    assert len(thread) == 1
