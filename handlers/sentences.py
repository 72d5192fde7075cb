"""Audit events as sentences a person reads: the card's thread and the CLI's history.

One phrasing for both edges, so the thread in Slack and `rollout-bot history` tell the same
story; each edge only says how to name a person (a Slack mention, or a login).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import assert_never

from rollout.domain.models import Actor, AuditAction, AuditEvent, Via

Namer = Callable[[Actor], str]


def plain_name(actor: Actor) -> str:
    """A person as the terminal shows them; the scheduler as what it is."""
    return "the scheduler" if actor.via is Via.SCHEDULER else actor.label


def _as_is(text: str) -> str:
    return text


def event_sentence(e: AuditEvent, name: Namer = plain_name,  # noqa: C901 - a table
                   shown: Callable[[str], str] = _as_is) -> str:
    """`bob approved step 1 (10%)`, `the scheduler applied step 2 (25%): stable 75 / ...`.
    `shown` makes the detail fit the edge (Slack escapes it); the sentence is chosen on the
    detail as it was recorded, which names its actor as recorded."""
    who = name(e.actor)
    at = _step(e)
    detail = shown(e.detail)
    match e.action:
        case AuditAction.STARTED:
            return f"{who} started the rollout: {detail}"
        case AuditAction.APPROVED:
            have, _, need = detail.partition("/")
            count = f", {have} of {need} approvals" if need not in ("", "1") else ""
            return f"{who} approved {at}{count}"
        case AuditAction.STEP_APPLIED:
            return f"{who} applied {at}: {detail}" if detail else f"{who} applied {at}"
        case AuditAction.COMPLETED:
            return f"the rollout completed at {at}"
        case AuditAction.PAUSED:
            why = "" if e.detail == f"paused by {e.actor.label}" else f": {detail}"
            return f"{who} paused at {at}{why}"
        case AuditAction.RESUMED:
            if e.detail.startswith("paused by"):
                return f"{who} resumed at {at}; it was {detail}"
            return f"{who} resumed at {at}" + (f" ({detail})" if detail else "")
        case AuditAction.ROLLED_BACK:
            why = "" if e.detail == f"requested by {e.actor.label}" else f": {detail}"
            return f"{who} rolled back from {at}{why}"
        case AuditAction.PROMOTED:
            return f"{who} promoted the rollout to 100% ({detail})" if detail \
                else f"{who} promoted the rollout to 100%"
        case AuditAction.KEEP_ENDED:
            return f"the keep period is over ({detail}): an approver may now retire it"
        case AuditAction.RETIRED:
            return f"{who} retired the old pool: {detail}; no rollback since"
        case AuditAction.PLAN_APPROVED:
            return f"{who} approved the plan ({detail})" if detail else f"{who} approved the plan"
        case AuditAction.APPROVAL_REQUESTED:
            return f"{at} is open for approval"
        case AuditAction.REMINDER:
            return f"{at} still waits for approval ({detail})" if detail \
                else f"{at} still waits for approval"
        case AuditAction.FAILED:
            return f"the rollout failed: {detail}"
        case AuditAction.RECOVERED:
            return f"{who} recovered {at}: {detail}" if detail else f"{who} recovered {at}"
        case AuditAction.RELEASED:
            return f"{who} released the route: {detail}"
        case AuditAction.STEP_HELD:
            return f"{at} is held: {detail}".replace("  ", " ")
        case AuditAction.FROZEN:
            return f"{who} froze rollouts" + (f": {detail}" if detail else "")
        case AuditAction.UNFROZEN:
            return f"{who} {detail}"
        case AuditAction.ANALYSIS_PASSED:
            return f"the canary analysis of {at} passed: {detail}"
        case AuditAction.ANALYSIS_AWAITED:
            return f"the bake of {at} is over; {detail}"
        # the detail is the verdict's reason, which names the outcome itself
        case AuditAction.ANALYSIS_FAILED:
            return f"the canary analysis of {at} failed: {detail}"
        case AuditAction.ANALYSIS_INCONCLUSIVE:
            return f"the canary analysis of {at} gave up: {detail}"
        case AuditAction.ANALYSIS_SPLIT_MISMATCH:
            return f"the canary analysis of {at} stopped: {detail}"
        case AuditAction.DENIED:
            return f"{who} was refused `{e.refused}`: {detail}"
    assert_never(e.action)


def _step(e: AuditEvent) -> str:
    if e.step is None or e.step < 0:
        return "0%"  # before the first step
    percent = f" ({e.percent}%)" if e.percent is not None else ""
    return f"step {e.step + 1}{percent}"


def throttle_hold_sentence(until: datetime) -> str:
    """Why an automatic step is overdue: the Kubernetes API's throttle (429) holds every
    scheduler tick until the Retry-After it named."""
    return (f"automatic steps held back until {until:%H:%M:%S} UTC: the Kubernetes API is "
            "throttling the scheduler")
