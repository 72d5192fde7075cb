"""Parsing of the plan options people type: `--steps 10,25,50,100`, `--interval 15m`, `--auto`.

Kept apart from the models so the Slack grammar and the CLI share one parser and one set of
error messages.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from rollout.domain.errors import InvalidInput
from rollout.domain.models import MAX_INTERVAL_SECONDS, Gate, Plan, Step

DEFAULT_STEPS = (10, 25, 50, 100)
DEFAULT_INTERVAL_SECONDS = 15 * 60

#: ASCII digits only: `\d` also matches other scripts' digits (Arabic-Indic 15m), which
#: int() reads
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_interval(text: str, *, require_unit: bool = True, what: str = "interval") -> int:
    """`90s`, `15m`, `2h`, or `0`. A bare number is refused where people type it (`30` could
    mean seconds or minutes); settings may allow it as seconds. `what` is the duration's name
    in a refusal (`--keep`'s was called an interval, an option nobody had given)."""
    match = _DURATION.match(text)
    if not match and text.strip().startswith("-"):
        raise InvalidInput(f"invalid {what} `{text}`: a duration cannot be negative")
    if not match:
        raise InvalidInput(f"invalid {what} `{text}`: use a number with s, m or h, like 15m")
    number, unit = match.group(1), match.group(2)
    if len(number) > 9:  # past any unit's 7 days (and int() refuses 4,300 digits)
        raise InvalidInput(f"invalid {what} `{text[:20]}`…: at most 7 days")
    if require_unit and not unit and int(number):
        raise InvalidInput(f"{what} {number} has no unit: write {number}s, {number}m "
                           f"or {number}h")
    seconds = int(number) * _UNIT_SECONDS[unit]
    if seconds > MAX_INTERVAL_SECONDS:
        raise InvalidInput(f"invalid {what} `{text}`: at most 7 days")
    return seconds


def parse_steps(text: str) -> list[int]:
    """`10,25,50,100` into percentages; the plan model checks the order."""
    parts = [p.strip().rstrip("%") for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InvalidInput(f"invalid step list `{text}`: give percentages like 10,25,50,100")
    if not all(re.fullmatch(r"[0-9]{1,9}", p) for p in parts):  # ASCII, as people type them
        raise InvalidInput(
            f"invalid step list `{text[:80]}`: steps are whole percentages like 10,25,50,100")
    return [int(p) for p in parts]


def build_plan(
    percents: list[int] | tuple[int, ...] = DEFAULT_STEPS,
    *,
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    auto: bool = False,
    approvals: int = 1,
) -> Plan:
    """A validated plan, or InvalidInput that says what is wrong with it."""
    gate = Gate.AUTO if auto else Gate.APPROVAL
    try:
        steps = tuple(Step(percent=p, gate=gate, approvals=approvals) for p in percents)
        return Plan(steps=steps, interval_seconds=interval_seconds)
    except ValidationError as exc:
        raise InvalidInput(f"invalid plan: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "less_than_equal":
        return f"a step is over 100 ({err.get('input')})"
    if err.get("type") == "greater_than_equal":
        return f"a step must be at least 1 ({err.get('input')})"
    return msg


def describe_plan(plan: Plan) -> str:
    steps = " → ".join(f"{p}%" for p in plan.percents)
    mode = "automatic" if plan.steps[0].gate is Gate.AUTO else "approval at each step"
    return f"{steps}, bake {format_seconds(plan.interval_seconds)}, {mode}"


def format_seconds(seconds: float) -> str:
    total = int(seconds)
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = ((hours, "h"), (minutes, "m"), (secs, "s"))
    return "".join(f"{value}{unit}" for value, unit in parts if value)
