"""Which rollout's next tick goes ahead of the automatic backlog.

The leader remembers the rollouts a person changed lately (heard from its own replica's
commands or another's announcement); a job such a change makes due at once runs on a small
lane of its own threads, so the person waits for that step and not for every automatic step
due before it. The lane is bounded: a burst of changes beyond its threads queues with the
other ticks. Pure bookkeeping, no clock or lock of its own: the scheduler calls it under its
lock with its service clock's time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: the lane's threads, and so how many rollouts go ahead at once; a burst of people's changes
#: beyond them (a script approving many plans) waits with the other ticks
AHEAD_THREADS = 4
#: a person's change goes ahead when it makes its rollout due within this long (one that
#: starts a bake is not waited on)
AHEAD_WITHIN = timedelta(seconds=1)


class AheadLane:
    """The changes heard lately (each kept for `remember_for`: long enough for the sweep
    that follows an announcement to schedule it) and the rollouts whose job is in the lane."""

    def __init__(self, remember_for: timedelta, *, threads: int = AHEAD_THREADS,
                 within: timedelta = AHEAD_WITHIN) -> None:
        self.remember_for = remember_for
        self.threads = threads
        self.within = within
        self._heard: dict[str, datetime] = {}
        self._in_lane: set[str] = set()

    def hear(self, rollout_id: str, now: datetime) -> None:
        """A person changed the rollout just now. Those heard of earlier and never scheduled
        since (their change made nothing due) are forgotten here."""
        for stale in [rid for rid in self._heard if not self.heard_lately(rid, now)]:
            del self._heard[stale]
        self._heard[rollout_id] = now

    def heard_lately(self, rollout_id: str, now: datetime) -> bool:
        at = self._heard.get(rollout_id)
        return at is not None and now < at + self.remember_for

    def admit(self, rollout_id: str, due: datetime, now: datetime) -> bool:
        """Whether the rollout's job at `due` goes in the lane (and it then holds a place
        there until `served` or `release`): a person's change was heard of it lately, it
        falls due at once, and the lane has a place for it (its own, if it holds one)."""
        ahead = (self.heard_lately(rollout_id, now) and due <= now + self.within
                 and (rollout_id in self._in_lane or len(self._in_lane) < self.threads))
        if ahead:
            self._in_lane.add(rollout_id)
        else:
            self._in_lane.discard(rollout_id)
        return ahead

    def served(self, rollout_id: str) -> None:
        """The job in the lane began: the person's change is served, the next job queues."""
        self._in_lane.discard(rollout_id)
        self._heard.pop(rollout_id, None)

    def release(self, rollout_id: str) -> None:
        """The rollout's job is gone (the rollout ended): its place frees."""
        self._in_lane.discard(rollout_id)

    def clear(self) -> None:
        """The lead is lost: whatever was heard is the next leader's to hear."""
        self._in_lane.clear()
        self._heard.clear()

    @property
    def in_lane(self) -> int:
        return len(self._in_lane)
