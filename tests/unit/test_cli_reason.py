"""A reason typed in the CLI reaches the card as Slack's own escaping leaves a typed one:
`<!channel>` is shown, not sent to everyone."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from bot.cli import _errors, build_parser, render, request_from_args
from bot.watch import watch
from handlers.commands import CommandRequest, CommandResult, Verb
from rollout.domain import machine
from rollout.domain.errors import Conflict
from rollout.service import Outcome, Status
from tests.unit.builders import BOB, T0, started

TYPED = "<!channel> p99 > 2s & rising"
ESCAPED = "&lt;!channel&gt; p99 &gt; 2s &amp; rising"


@pytest.mark.parametrize("verb", ["pause", "rollback", "freeze"])
def test_a_cli_reason_is_kept_as_slack_escapes_a_typed_one(verb: str) -> None:
    argv = [verb] + ([] if verb == "freeze" else ["llm-pool-version-2"])
    args = build_parser().parse_args([*argv, "--reason", "<!channel> p99 > 2s & rising"])
    request = request_from_args(args, "default")
    assert request.reason == "&lt;!channel&gt; p99 &gt; 2s &amp; rising"


def test_the_cli_prints_a_reason_as_it_was_typed() -> None:
    result = CommandResult(CommandRequest(verb=Verb.PAUSE, pool="llm-pool-version-2"),
                           outcome=Outcome(None, "Paused: &lt;!channel&gt; p99 &gt; 2s &amp; "
                                                 "rising"))
    assert render(result) == ["Paused: <!channel> p99 > 2s & rising"]


def test_status_watch_prints_a_reason_as_it_was_typed() -> None:
    """`status` printed the words as typed and `status --watch` as Slack escapes them."""
    running = started()
    paused = machine.pause(running, actor=BOB, now=T0, reason=ESCAPED).rollout
    looks = iter([Status(running, None, ""), Status(paused, None, "")])
    out = io.StringIO()
    watch(lambda: next(looks), out, sleep=lambda _s: None, now=lambda: T0 + timedelta(1))
    printed = out.getvalue()
    assert TYPED in printed and "&lt;" not in printed and "&amp;" not in printed, printed


def test_a_refusal_on_the_terminal_says_the_reason_as_it_was_typed() -> None:
    """A freeze's reason, kept escaped, reached stderr as `&amp; &lt;42&gt;`."""
    err = io.StringIO()

    def refused() -> int:
        error = Conflict(f"Rollouts are frozen: {ESCAPED}.")
        error.add_note(f"the freeze says: {ESCAPED}")
        raise error

    _errors(refused, err)
    assert err.getvalue() == f"refused: Rollouts are frozen: {TYPED}.\nthe freeze says: {TYPED}\n"
