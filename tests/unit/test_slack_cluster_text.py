"""Text the cluster or the CLI wrote reaches Slack as text, never as Slack's markup.

A field manager's name (any printable text, `kubectl --field-manager '<!channel>'`) is named
by a drift pause on the card, its thread and `status`; a CLI `--as` name is any printable
text too. Their `<` and `>` are escaped as Slack asks, so neither mentions anyone. A reason
people typed is already kept escaped and is shown as it is (never escaped twice).
"""

from __future__ import annotations

import json
from datetime import timedelta

from handlers.cards import event_line, render_card
from handlers.commands import CommandRequest, CommandResult, Verb
from handlers.replies import error_reply, result_reply
from rollout.domain import machine
from rollout.domain.errors import ClusterUnavailable, NeedsOperator
from rollout.domain.models import Actor, Via
from rollout.domain.split import Observed, Pair
from rollout.service import Status
from tests.unit.builders import CAROL, T0, started

NOW = T0 + timedelta(seconds=1)
MANAGER = "<!channel> & <@U0EVE>"


def _card_text(r: object) -> str:
    return json.dumps(render_card(r, now=NOW).blocks)  # type: ignore[arg-type]


def _drifted() -> machine.Decision:
    observed = Observed(pair=Pair(stable=50, canary=50), writer=MANAGER)
    found = machine.reconcile(started(), observed, now=NOW)
    assert found is not None and found.rollout.pause is not None
    return found


def test_a_field_manager_named_by_a_drift_pause_mentions_no_one() -> None:
    found = _drifted()
    card = _card_text(found.rollout)
    assert "<!channel>" not in card and "<@U0EVE>" not in card
    assert "&lt;!channel&gt; & &lt;@U0EVE&gt;" in card
    (event,) = [e for e in found.events if e.action == "paused"]
    line = event_line(event)
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line


def test_a_cli_name_on_the_card_and_its_thread_mentions_no_one() -> None:
    cli = Actor(id="cli:<!here>", name="cli:<!here>&co", via=Via.CLI)
    r = machine.pause(started(), actor=cli, now=NOW).rollout
    card = _card_text(r)
    assert "<!here>" not in card and "cli:&lt;!here&gt;&amp;co" in card
    event = machine.pause(started(), actor=cli, now=NOW, reason="x").events[0]
    assert "cli:&lt;!here&gt;&amp;co paused" in event_line(event)


def test_a_reason_people_typed_is_shown_as_kept() -> None:
    r = machine.pause(started(), actor=CAROL, now=NOW, reason="a &lt;b&gt; &amp; c").rollout
    assert "paused by <@U0CAROL>: a &lt;b&gt; &amp; c" in _card_text(r)


def test_cluster_text_in_answers_mentions_no_one() -> None:
    assert "<!channel>" not in error_reply(ClusterUnavailable(f"webhook said {MANAGER}"))
    assert "<!channel>" not in error_reply(NeedsOperator(f"read-back: {MANAGER}"))
    r = _drifted().rollout
    req = CommandRequest(verb=Verb.STATUS, pool="llm-pool-version-2")
    status = Status(r, None, "llm-pool-version-2: paused", cluster_note=f"API: {MANAGER}")
    text = result_reply(CommandResult(req, status=status))
    assert "<!channel>" not in text and "<@U0EVE>" not in text
    assert "API: &lt;!channel&gt;" in text
