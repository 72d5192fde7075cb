"""What the person who asked is told: command results and errors as short Slack text.

Errors become words only here (DESIGN §9 point 3): each kind says what to do next, refusals
that come from bad input carry the one usage line that applies.
"""

from __future__ import annotations

from datetime import datetime

from handlers.cards import (
    ELLIPSIS,
    analysis_markdown,
    clip,
    event_line,
    next_line,
    progress_bar,
    short_id,
)
from handlers.commands import CommandResult, Verb
from handlers.grammar import GENERAL_USAGE, GrammarError, help_text
from handlers.mentions import unmarked
from handlers.sentences import throttle_hold_sentence
from rollout.domain.errors import (
    InvalidInput,
    NeedsOperator,
    Refused,
    RolloutError,
    StoreUnknown,
    Superseded,
    TemporaryFailure,
    Unrecorded,
)
from rollout.domain.machine import pause_summary
from rollout.domain.plan import format_seconds
from rollout.service import Outcome

MAX_LIST = 15
#: what one answer holds: Slack asks apps to keep a message under 4,000 characters (longer
#: ones are split or cut, up to its hard 40,000)
MAX_REPLY = 4000
MAX_HISTORY_LINE = 500


def error_reply(exc: RolloutError) -> str:
    """The error in words; its text (which may quote the cluster) is shown as text."""
    said = unmarked(str(exc))
    if isinstance(exc, InvalidInput):
        usage = exc.usage if isinstance(exc, GrammarError) else GENERAL_USAGE
        return f":warning: {said}\n*Usage:* {usage}"
    if isinstance(exc, Refused):
        return f":no_entry: {said}"
    if isinstance(exc, (Unrecorded, StoreUnknown)):  # something may have changed
        return f":hourglass: {said}."
    if isinstance(exc, TemporaryFailure):
        wait = format_seconds(max(1.0, exc.retry_after))
        return f":hourglass: {said}. Nothing changed; try again in {wait}."
    if isinstance(exc, Superseded) and exc.landed:
        return f":rewind: {said}."
    if isinstance(exc, Superseded):
        return f":rewind: A rollback took over while this ran; it did not land. ({said})"
    if isinstance(exc, NeedsOperator):
        return f":rotating_light: An operator must look at this: {said}"
    return f":warning: {said}"


def result_reply(result: CommandResult) -> str:
    req = result.request
    if req.verb is Verb.HELP:
        return help_text(req.topic)
    if req.verb is Verb.LIST:
        return _list(result)
    if req.verb is Verb.HISTORY:
        return _history(result)
    if req.verb is Verb.STATUS:
        return _status(result)
    if result.outcome is None:
        return "Done."
    return outcome_reply(result.outcome)


def outcome_reply(outcome: Outcome) -> str:
    """What a change did, as a command's answer says it."""
    icon = ":white_check_mark:" if outcome.ok and outcome.changed else ":information_source:"
    if not outcome.ok:
        icon = ":warning:"
    message = unmarked(outcome.message)
    if outcome.rollout is not None:  # chat shows the short id, as the card does
        message = message.replace(outcome.rollout.id, f"`{short_id(outcome.rollout)}`")
    return f"{icon} {message}"


def _status(result: CommandResult) -> str:
    status = result.status
    frozen = [f":snowflake: Rollouts are {unmarked(status.freeze.describe())}"] \
        if status is not None and status.freeze is not None else []
    if status is None or status.rollout is None:
        said = unmarked(status.message) if status else "nothing recorded"
        return "\n".join([f":information_source: {said}", *frozen])
    r = status.rollout
    read_at = status.read_at or r.updated_at
    lines = [f"*{unmarked(status.message)}*",
             f"`{progress_bar(r.canary_percent)}` on {r.target.describe()}", *frozen]
    upcoming = next_line(r, read_at)
    if upcoming:
        lines.append(upcoming)
    if status.observed is not None:
        lines.append(f"Cluster: {status.observed.pair.describe()}")
    if status.cluster_note:
        lines.append(f":warning: {unmarked(status.cluster_note)}")
    if r.standing_pause is not None:
        lines.append(unmarked(f"P{pause_summary(r.standing_pause)[1:]}"))
    if r.held and r.active:
        lines.append(f":hourglass: Held: {unmarked(r.held)}")
    if status.ticks_held_until is not None and r.active:
        held = throttle_hold_sentence(status.ticks_held_until)
        lines.append(f":hourglass_flowing_sand: {held[0].upper()}{held[1:]}")
    lines.append(analysis_markdown(r, read_at))
    lines.append(f"id `{r.id}`")
    return "\n".join(lines)


def _list(result: CommandResult) -> str:
    """Up to MAX_LIST rollouts within one message; past them, how many more and where they
    are (the answer stopped at 15 without a word, and a 16th active rollout was not seen)."""
    if not result.rollouts:
        return ":information_source: No rollouts recorded yet. Start one with " \
               "`/rollout <pool> start`."
    lines = []
    for r in result.rollouts:
        phase = r.phase.value.replace("_", " ")
        lines.append(clip(f"• `{r.canary}` {phase} at {r.canary_percent}% on "
                          f"{r.target.describe()} (`{short_id(r)}`)", MAX_HISTORY_LINE))
    shown = lines[:MAX_LIST]  # the active ones come first: they are the ones left in view
    while True:
        left = len(lines) - len(shown)
        more = [f"{ELLIPSIS} {left} more (`rollout-bot list` shows them all)"] if left else []
        text = "\n".join(["*Rollouts*", *shown, *more])
        if len(text) <= MAX_REPLY or not shown:
            return text
        shown.pop()


def _when(at: datetime) -> str:
    """An event's time, saying its zone: a bare `12:00:01` reads as local time, hours off.
    UTC rather than a Slack date (`<!date^…>`), whose markup would take 40 more characters
    of every line and leave a quarter of the events out of the message."""
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _history(result: CommandResult) -> str:
    """Every event the service read (up to 200), oldest first, as far as one Slack message
    holds them; past that the latest, saying how many earlier ones are left out and that
    the CLI's `history` shows them all."""
    if not result.history:
        return ":information_source: No history recorded."
    req = result.request
    title = f"*History of {req.pool}*"
    lines = [clip(f"{_when(e.at)} {event_line(e)}", MAX_HISTORY_LINE)
             for e in result.history]
    if len("\n".join([title, *lines])) <= MAX_REPLY:
        return "\n".join([title, *lines])

    def head(shown: int) -> str:
        return (f"{title}: the latest {shown} of {len(lines)} events ({len(lines) - shown} "
                f"earlier left out; `rollout-bot history {req.pool} -n {req.namespace}` "
                "shows up to the last 200)")

    shown: list[str] = []
    for line in reversed(lines):  # the latest first, while they and the heading fit
        if len("\n".join([head(len(shown) + 1), line, *shown])) > MAX_REPLY:
            break
        shown.insert(0, line)
    return "\n".join([head(len(shown)), *shown])
