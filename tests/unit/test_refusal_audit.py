"""A refusal whose audit line the store cannot take: the service says so (False) without
raising, logs a store out of reach in one line, and Slack still answers the refusal."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from handlers.authorization import Authorizer, Policy
from handlers.card_sync import CardPublisher
from handlers.slack_listeners import SlackEdge
from handlers.workers import Workers
from rollout.domain.errors import StoreUnavailable
from rollout.domain.plan import build_plan
from rollout.service import Ref, RolloutService
from tests.unit.builders import ALICE, BOB, CAROL
from tests.unit.fakes import FakeStore, one_route_world

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


def _redis_down(event: object) -> None:
    raise StoreUnavailable("Redis is unavailable (connection refused); nothing was changed")


def _started_by(actor: Any) -> tuple[RolloutService, FakeStore]:
    service, store, _, _ = one_route_world(POOL)
    service.start(namespace="default", canary=POOL, plan=build_plan([10, 50, 100]),
                  actor=actor)
    return service, store


def test_a_refusal_is_audited_and_says_so() -> None:
    service, store = _started_by(ALICE)
    assert service.record_denial(actor=BOB, action="approve", ref=REF, reason="no") is True
    assert store.events[-1].refused == "approve"


def test_a_store_out_of_reach_is_one_warning_line_and_false(
        caplog: pytest.LogCaptureFixture) -> None:
    """The CLI prints its own line below the refusal instead: a traceback buried it."""
    service, store = _started_by(ALICE)
    store.record = _redis_down  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="rollout.service"):
        recorded = service.record_denial(actor=BOB, action="approve", ref=REF, reason="no")
    assert recorded is False
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (logging.WARNING, "could not audit the refusal of approve by U0BOB: Redis is "
                          "unavailable (connection refused); nothing was changed", None)]


class _Inline(Workers):
    def __init__(self) -> None:
        super().__init__(workers=1, backlog=0)

    def submit(self, work: Any) -> bool:
        work()
        return True


class _Said:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, text: str | None = None, **_: Any) -> None:
        if text:
            self.texts.append(text)


def test_slack_answers_the_two_person_refusal_when_redis_takes_no_audit() -> None:
    """Slack's listener was checked for the CLI's flaw: the refusal is still its answer."""
    service, store = _started_by(BOB)
    store.record = _redis_down  # type: ignore[method-assign]
    edge = SlackEdge(service=service,
                     authorizer=Authorizer(Policy.of(approvers=[BOB.id, CAROL.id])),
                     cards=CardPublisher(client=cast(Any, None), service=service,
                                         clock=service.clock),
                     workers=_Inline(), side=_Inline())
    ack, respond = _Said(), _Said()
    edge.on_command(cast(Any, ack), {"text": f"{POOL} approve", "user_id": BOB.id,
                                     "user_name": BOB.name, "channel_id": BOB.channel},
                    cast(Any, respond))
    assert respond.texts[-1].startswith(":no_entry: ")
    assert "two-person rule" in respond.texts[-1] and respond.texts[-1].endswith("Ask <@U0CAROL>.")
