"""A freeze: for incidents and change freezes, no new starts and no step-ups anywhere.

Rollback and pause always go through (they take traffic off the canary, or hold it where it
is); so do resume (it moves no weight by itself: the next step-up is held) and reads. Only
approvers freeze and unfreeze. The rule is pure: the store keeps the record, the service
asks `blocks` before it acts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError

from rollout.domain.errors import Conflict, InvalidInput, Refused, Unauthorized

MAX_REASON = 500


class Freeze(BaseModel):
    model_config = ConfigDict(frozen=True)

    by: str  # the actor's id (a Slack user id, or cli:<user>)
    reason: str = ""
    since: datetime | None = None  # None only for a record the bot could not read

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        when = f" since {_in_utc(self.since):%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"frozen by {self.by}{when}{why}"


def _in_utc(at: datetime) -> datetime:
    """A time as the bot says every time, in UTC: a record set by hand may carry another
    offset, or none (taken as UTC, as the bot writes; never as the host's local time)."""
    return at.astimezone(UTC) if at.tzinfo is not None else at


def freeze_of(record: str | bytes, *, where: str) -> Freeze:
    """The freeze a stored record holds. One this version cannot read (set by hand in an
    incident, or by another version) still freezes: it holds starts and step-ups, as a
    freeze does, never every command, and `unfreeze` removes it."""
    try:
        return Freeze.model_validate_json(record)
    except ValidationError:
        return Freeze(by="a record the bot cannot read",
                      reason=f"{where} holds no freeze this version understands; unfreeze "
                             "removes it")


class Action(StrEnum):
    START = "start"
    STEP_UP = "step-up"  # an approval, a promote or an automatic step that raises the canary
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"


BLOCKED = frozenset({Action.START, Action.STEP_UP})


def blocks(freeze: Freeze | None, action: Action) -> str:
    """'' when `action` may go ahead, else the refusal to give (and to show on the card)."""
    if freeze is None or action not in BLOCKED:
        return ""
    what = "new rollouts" if action is Action.START else "step-ups"
    return (f"Rollouts are {freeze.describe()}. {what.capitalize()} wait until an approver "
            f"runs unfreeze; rollback and pause still work.")


def also_holds(freeze: Freeze | None) -> str:
    """The freeze, said after a refusal that tells a person to wait (NotYet): once the bake
    or the analysis is over, the step-up still waits for it. '' when none holds step-ups."""
    if not blocks(freeze, Action.STEP_UP):
        return ""
    assert freeze is not None
    return (f"; rollouts are also {freeze.describe()}, and step-ups wait until an approver "
            "runs unfreeze")


def check_blocked(freeze: Freeze | None, action: Action) -> None:
    """Raise Refused (nothing changes) when the freeze holds `action`."""
    answer = blocks(freeze, action)
    if answer:
        raise Refused(answer)


def freeze(current: Freeze | None, *, actor: str, is_approver: bool, reason: str,
           now: datetime) -> Freeze:
    """The freeze to record, or a clear refusal that changes nothing."""
    if not is_approver:
        raise Unauthorized("only approvers may freeze rollouts")
    reason = reason.strip()
    # counted as typed: the reason arrives as Slack escapes it (`&lt;` for `<`)
    typed = len(reason.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    if typed > MAX_REASON:
        raise InvalidInput(f"the reason is {typed} characters; keep it under {MAX_REASON}")
    if current is not None:
        raise Conflict(f"rollouts are already {current.describe()}")
    return Freeze(by=actor, reason=reason, since=now)


def unfreeze(current: Freeze | None, *, is_approver: bool) -> Freeze:
    """The freeze being lifted (for the audit), or a clear refusal that changes nothing."""
    if not is_approver:
        raise Unauthorized("only approvers may unfreeze rollouts")
    if current is None:
        raise Conflict("rollouts are not frozen")
    return current
