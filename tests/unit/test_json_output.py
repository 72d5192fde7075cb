"""`--output json` gives text as people typed it, as the text output prints it."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.cli import render
from bot.json_output import result_json
from handlers.commands import CommandRequest, CommandResult, Verb
from rollout.domain import machine
from rollout.service import Status
from tests.unit.builders import CAROL, T0, started

ESCAPED = "&lt;!channel&gt; p99 &gt; 2s &amp; rising"
TYPED = "<!channel> p99 > 2s & rising"


def test_a_reason_is_given_as_typed_in_json_as_in_text() -> None:
    """The JSON gave `&lt;!channel&gt;` where the text printed `<!channel>`."""
    paused = machine.pause(started(), actor=CAROL, now=T0 + timedelta(seconds=1),
                           reason=ESCAPED)
    history = CommandResult(CommandRequest(verb=Verb.HISTORY, pool="p"),
                            history=list(paused.events))
    events = json.loads(result_json(history))["events"]
    assert events[-1]["detail"] == TYPED
    assert any(TYPED in line for line in render(history))
    status = CommandResult(CommandRequest(verb=Verb.STATUS, pool="p"),
                           status=Status(paused.rollout, None, "paused"))
    body = json.loads(result_json(status))
    assert body["rollout"]["pause"]["reason"] == TYPED
    assert body["rollout"]["id"] == paused.rollout.id and body["message"] == "paused"
