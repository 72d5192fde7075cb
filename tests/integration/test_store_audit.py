"""A rollout's history as Redis keeps it: the most recent events, oldest first."""

from __future__ import annotations

from datetime import timedelta

from rollout.domain.models import Actor, AuditAction, AuditEvent
from rollout.service import Ref
from tests.integration.conftest import World


def test_history_gives_the_last_two_hundred_events_oldest_first(world: World) -> None:
    """It gave the first 200: a long rollout's `history` stopped before its latest events."""
    at = world.clock.now()
    for i in range(201):
        world.store.record(AuditEvent(at=at + timedelta(seconds=i), rollout_id="r1",
                                      target="httproute/default/routes-to-llm/0",
                                      action=AuditAction.REMINDER, actor=Actor.scheduler(),
                                      detail=str(i)))
    shown = world.service.history(Ref(rollout_id="r1"))
    assert [e.detail for e in shown] == [str(i) for i in range(1, 201)]
    assert [e.detail for e in world.service.history(Ref(rollout_id="r1"), limit=3)] == \
        ["198", "199", "200"]
