"""Slack's `history` answer at the edge of one message: every event while they fit, to the
character; past that the latest ones in their order, under a heading that counts what it
leaves out."""

from __future__ import annotations

from datetime import timedelta

from handlers.commands import CommandRequest, CommandResult, Verb
from handlers.replies import MAX_REPLY, result_reply
from rollout.domain.models import AuditAction, AuditEvent
from tests.unit.builders import BOB, T0, TARGET

POOL = "llm-pool-version-2"


def _events(details: list[str]) -> list[AuditEvent]:
    return [AuditEvent(at=T0 + timedelta(seconds=i), rollout_id="r1", target=TARGET.key,
                       action=AuditAction.PAUSED, actor=BOB, detail=d)
            for i, d in enumerate(details)]


def _reply(details: list[str]) -> str:
    return result_reply(CommandResult(CommandRequest(verb=Verb.HISTORY, pool=POOL),
                                      history=_events(details)))


def _fill(count: int, total: int) -> list[str]:
    """`count` details whose whole answer is `total` characters long."""
    details = ["x" * 100] * count
    details[-1] = "x" * (100 + total - len(_reply(details)))
    assert len(_reply(details)) == total
    return details


def test_events_that_fill_the_message_exactly_are_all_shown() -> None:
    reply = _reply(_fill(22, MAX_REPLY))
    assert reply.startswith(f"*History of {POOL}*\n") and "left out" not in reply


def test_past_the_message_the_latest_are_shown_in_order_and_the_rest_counted() -> None:
    details = [f"{i:03d}" + "x" * 150 for i in range(40)]
    reply = _reply(details)
    assert len(reply) <= MAX_REPLY
    head, *lines = reply.split("\n")
    shown = len(lines)
    assert head == (f"*History of {POOL}*: the latest {shown} of 40 events ({40 - shown} "
                    f"earlier left out; `rollout-bot history {POOL} -n default` shows up to "
                    "the last 200)")
    numbers = [int(line.split("paused at 0%: ")[1][:3]) for line in lines]
    assert numbers == list(range(40 - shown, 40))  # the latest, oldest first
    one_more = "\n".join([head.replace(f"latest {shown} ", f"latest {shown + 1} "),
                          lines[0], *lines])
    assert len(one_more) > MAX_REPLY  # as many as fit


def test_the_latest_events_fill_the_message_to_its_last_character_when_they_can() -> None:
    """Forty events too many for one message: the oldest shown line is lengthened until
    the answer is exactly the message's size; it is then still shown."""
    shown = len(_reply(["x" * 150] * 40).split("\n")) - 1
    for pad in range(200):
        details = ["x" * 150] * 40
        details[-shown] = "x" * (150 + pad)
        reply = _reply(details)
        if len(reply) == MAX_REPLY:
            assert reply.split("\n")[1].endswith("x" * (150 + pad))
            return
    raise AssertionError("no length gave an answer of exactly the message's size")
