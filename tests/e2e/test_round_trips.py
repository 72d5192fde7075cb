"""A Slack button approve, counted on the wire of the real redis-server from the click to the
card's thread line: the step's three round trips (open, confirm, close), and what drawing
the card reads after it (the newest state, the freeze, and the state again after the update:
another process may have saved a newer one meanwhile)."""

from __future__ import annotations

from tests.e2e.conftest import CANARY, CHANNEL, World, start_rollout
from tests.support.polling import eventually
from tests.support.redis_trips import round_trips

STEP = [["EVALSHA"], ["EVALSHA"], ["EVALSHA"]]  # open, confirm, close
#: the card is drawn from the newest state, with the freeze; then the state is read again
CARD = [["HMGET"], ["GET"], ["HMGET"]]


def _approved(world: World, card_ts: str, lines: int) -> bool:
    """The click's work is over: its line is in the card's thread (the last thing it does)."""
    thread = world.slack.thread(CHANNEL, card_ts)
    return len(thread) >= lines and "applied step" in thread[-1].text


def test_a_button_approve_is_three_round_trips_then_the_card_s_three_reads(world: World) -> None:
    card = start_rollout(world)
    world.click("U0BOB", card.ts, "rollout_approve", world.value(card, "rollout_approve").encode())
    eventually(lambda: world.rollout().step == 0 and _approved(world, card.ts, 2))
    value = eventually(lambda: world.value(world.card(), "rollout_approve").step == 1
                       and world.value(world.card(), "rollout_approve").encode())
    lines = len(world.slack.thread(CHANNEL, card.ts)) + 1
    with round_trips() as trips:
        status, _, _ = world.click("U0BOB", card.ts, "rollout_approve", value)
        assert status == 200
        eventually(lambda: _approved(world, card.ts, lines), message="the step's thread line")
    assert world.weights() == {"llm-pool": 75, CANARY: 25}
    assert trips.work == [*STEP, *CARD], trips.sent
