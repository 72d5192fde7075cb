"""`--output json` for the read verbs: the same data the text shows, for scripts.

The shapes are the domain models' own JSON (pydantic), so a field added to a model shows up
here without a second schema to keep in step. Text people typed (a reason) is given as they
typed it, as the text output prints it: the records keep it escaped for Slack (`&lt;`).
"""

from __future__ import annotations

import json
from typing import Any

from handlers.commands import CommandResult, Verb
from handlers.mentions import plain


def result_json(result: CommandResult) -> str:
    verb = result.request.verb
    body: Any
    if verb is Verb.LIST:
        body = {"rollouts": [r.model_dump(mode="json") for r in result.rollouts]}
    elif verb is Verb.HISTORY:
        body = {"events": [e.model_dump(mode="json") for e in result.history]}
    elif verb is Verb.STATUS and result.status is not None:
        s = result.status
        body = {
            "rollout": s.rollout.model_dump(mode="json") if s.rollout is not None else None,
            "observed": s.observed.model_dump(mode="json") if s.observed is not None else None,
            "message": s.message,
            "cluster_note": s.cluster_note,
            "freeze": s.freeze.model_dump(mode="json") if s.freeze is not None else None,
            "ticks_held_until": s.ticks_held_until.isoformat()
            if s.ticks_held_until is not None else None,
        }
    else:
        raise ValueError(f"--output json is for status, list and history, not {verb.value}")
    return json.dumps(_as_typed(body), indent=2, sort_keys=True)


def _as_typed(value: Any) -> Any:
    """Every string with Slack's escaping undone; nothing else changed."""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {k: _as_typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_typed(v) for v in value]
    return value
