"""A reason typed in the CLI reaches the card as Slack's own escaping leaves a typed one:
`<!channel>` is shown, not sent to everyone."""

from __future__ import annotations

import pytest

from bot.cli import build_parser, render, request_from_args
from handlers.commands import CommandRequest, CommandResult, Verb
from rollout.service import Outcome


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
