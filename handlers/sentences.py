"""Audit events as sentences a person reads: the card's thread and the CLI's history.

One phrasing for both edges, so the thread in Slack and `rollout-bot history` tell the same
story; each edge only says how to name a person (a Slack mention, or a login).
"""

from __future__ import annotations

from collections.abc import Callable

from rollout.domain.models import Actor, AuditEvent, Via

Namer = Callable[[Actor], str]


def plain_name(actor: Actor) -> str:
    """A person as the terminal shows them; the scheduler as what it is."""
    return "the scheduler" if actor.via is Via.SCHEDULER else actor.label


def event_sentence(e: AuditEvent, name: Namer = plain_name) -> str:  # noqa: C901 - a table
    """`bob approved step 1 (10%)`, `the scheduler applied step 2 (25%): stable 75 / ...`."""
    who = name(e.actor)
    at = _step(e)
    detail = e.detail
    match e.action:
        case "started":
            return f"{who} started the rollout: {detail}"
        case "approved":
            have, _, need = detail.partition("/")
            count = f", {have} of {need} approvals" if need not in ("", "1") else ""
            return f"{who} approved {at}{count}"
        case "step_applied":
            return f"{who} applied {at}: {detail}" if detail else f"{who} applied {at}"
        case "completed":
            return f"the rollout completed at {at}"
        case "paused":
            why = "" if detail == f"paused by {e.actor.label}" else f": {detail}"
            return f"{who} paused at {at}{why}"
        case "resumed":
            if detail.startswith("paused by"):
                return f"{who} resumed at {at}; it was {detail}"
            return f"{who} resumed at {at}" + (f" ({detail})" if detail else "")
        case "rolled_back":
            why = "" if detail == f"requested by {e.actor.label}" else f": {detail}"
            return f"{who} rolled back from {at}{why}"
        case "promoted":
            return f"{who} promoted the rollout to 100% ({detail})" if detail \
                else f"{who} promoted the rollout to 100%"
        case "plan_approved":
            return f"{who} approved the plan ({detail})" if detail else f"{who} approved the plan"
        case "approval_requested":
            return f"{at} is open for approval"
        case "reminder":
            return f"{at} still waits for approval ({detail})" if detail \
                else f"{at} still waits for approval"
        case "failed":
            return f"the rollout failed: {detail}"
        case "recovered":
            return f"{who} recovered {at}: {detail}" if detail else f"{who} recovered {at}"
        case "released":
            return f"{who} released the route: {detail}"
        case "step_held":
            return f"{at} is held: {detail}".replace("  ", " ")
        case "frozen":
            return f"{who} froze rollouts" + (f": {detail}" if detail else "")
        case "unfrozen":
            return f"{who} {detail}"
        case "analysis_passed":
            return f"the canary analysis of {at} passed: {detail}"
        case "analysis_awaited":
            return f"the bake of {at} is over; {detail}"
        case "analysis_failed" | "analysis_inconclusive" | "analysis_split_mismatch":
            what = e.action.removeprefix("analysis_").replace("_", " ")
            return f"the canary analysis of {at}: {what}: {detail}"
    if e.action.startswith("denied:"):
        return f"{who} was refused `{e.action.removeprefix('denied:')}`: {detail}"
    tail = f": {detail}" if detail else ""
    return f"{who} {e.action.replace('_', ' ')} {at}{tail}".replace("  ", " ")


def _step(e: AuditEvent) -> str:
    if e.step is None or e.step < 0:
        return "0%"  # before the first step
    percent = f" ({e.percent}%)" if e.percent is not None else ""
    return f"step {e.step + 1}{percent}"
