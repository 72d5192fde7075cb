"""The `/rollout` grammar: every verb, every option, and clear refusals for bad input."""

from __future__ import annotations

import pytest

from handlers.commands import POOL_VERBS, CommandRequest, Verb
from handlers.grammar import (
    GENERAL_USAGE,
    USAGE,
    USAGE_LINES,
    VERB_SUMMARY,
    GrammarError,
    help_text,
    normalise,
    parse,
)
from handlers.replies import error_reply
from rollout.domain.errors import InvalidInput

POOL = "llm-pool-version-2"


@pytest.mark.parametrize("verb", ["start", "status", "approve", "pause", "resume", "rollback",
                                  "promote", "history"])
def test_every_pool_verb(verb: str) -> None:
    assert parse(f"{POOL} {verb}") == CommandRequest(verb=Verb(verb), pool=POOL)


@pytest.mark.parametrize("verb", ["start", "approve", "rollback"])
def test_the_cli_order_verb_then_pool_is_accepted(verb: str) -> None:
    assert parse(f"{verb} {POOL}") == CommandRequest(verb=Verb(verb), pool=POOL)


@pytest.mark.parametrize("text", ["list", "LIST", " list "])
def test_list(text: str) -> None:
    assert parse(text) == CommandRequest(verb=Verb.LIST)


@pytest.mark.parametrize("text", ["", "help", "  "])
def test_help_and_empty(text: str) -> None:
    assert parse(text).verb is Verb.HELP


@pytest.mark.parametrize("text", ["help start", "HELP Start", "start help"])
def test_help_about_one_verb(text: str) -> None:
    assert parse(text) == CommandRequest(verb=Verb.HELP, topic=Verb.START)


@pytest.mark.parametrize(("text", "topic"), [
    ("freeze help", Verb.FREEZE), ("freeze ?", Verb.FREEZE), ("freeze -h", Verb.FREEZE),
    ("freeze --help", Verb.FREEZE), ("FREEZE Help", Verb.FREEZE),
    ("unfreeze help", Verb.UNFREEZE), ("list help", Verb.LIST), ("list ?", Verb.LIST),
    ("help -h", Verb.HELP), ("help help", Verb.HELP),
    (f"{POOL} rollback help", Verb.ROLLBACK), (f"{POOL} rollback ?", Verb.ROLLBACK),
    (f"{POOL} pause help", Verb.PAUSE), (f"{POOL} pause --help", Verb.PAUSE),
    (f"rollback {POOL} help", Verb.ROLLBACK), (f"{POOL} start -h", Verb.START),
    ("start ?", Verb.START), ("pause -h", Verb.PAUSE), ("approve-plan --help", Verb.APPROVE_PLAN),
    # the options that came with it are not acted on: the help is the whole answer
    (f"{POOL} rollback -n prod help", Verb.ROLLBACK), ("start help --steps 10,100", Verb.START),
    ('freeze --reason "incident 42" ?', Verb.FREEZE),
])
def test_a_help_word_alone_after_any_verb_asks_for_its_help(text: str, topic: Verb) -> None:
    """`freeze help` froze the install with the reason "help", and `rollback help` rolled
    back; `unfreeze help` and `list help` were refused."""
    assert parse(text) == CommandRequest(verb=Verb.HELP, topic=topic)


@pytest.mark.parametrize("text", ["?", "-h", "--help"])
def test_a_help_word_alone_asks_for_the_whole_help(text: str) -> None:
    assert parse(text) == CommandRequest(verb=Verb.HELP)


@pytest.mark.parametrize(("text", "verb", "reason"), [
    (f"{POOL} rollback help me", Verb.ROLLBACK, "help me"),
    (f"{POOL} pause needs help", Verb.PAUSE, "needs help"),
    ("freeze help wanted", Verb.FREEZE, "help wanted"),
    (f"{POOL} rollback --reason help", Verb.ROLLBACK, "help"),
    ('freeze --reason "?"', Verb.FREEZE, "?"),
])
def test_a_reason_with_help_among_other_words_stays_a_reason(
        text: str, verb: Verb, reason: str) -> None:
    req = parse(text)
    assert (req.verb, req.reason) == (verb, reason)


def test_help_alone_has_no_topic() -> None:
    assert parse("help").topic is None and help_text(None) == USAGE  # built when asked


@pytest.mark.parametrize(("text", "fragment"), [
    ("help strat", "no verb `strat`; did you mean `start`?"),
    ("help llm-pool-version-2", "no verb `llm-pool-version-2`; the verbs are `start`, "
                                "`approve`, `approve-plan`, `pause`, `resume`, `rollback`, "
                                "`promote`, `retire`, `status`, `list`, `history`, `help`, "
                                "`freeze`, `unfreeze`"),
    ("help start approve status", "unexpected `approve status` after `help start`: ask about "
                                  "one verb at a time"),
    ("help start approve", "unexpected `approve` after `help start`"),
    ("help start --steps 10,100", "`--steps` applies only to `start`, not `help`"),
])
def test_help_about_no_verb_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(GrammarError) as refused:
        parse(text)
    assert fragment in str(refused.value)
    assert refused.value.usage == USAGE_LINES[Verb.HELP]


def test_the_usage_says_which_verbs_take_each_option() -> None:
    lines = help_text(None).splitlines()
    assert "  `--namespace NS` namespace of the pool and route (default: the bot's)" in lines
    assert ("  `--route NAME` the HTTPRoute to shift, when the pool is referenced by several "
            "(start)") in lines
    assert '  `--reason "text"` why, in at most 500 characters (pause, rollback, freeze)' in lines


def test_one_verbs_help_has_its_usage_what_it_does_and_only_its_options() -> None:
    start = help_text(Verb.START)
    assert "\n*Options:*\n  `--namespace NS` " in start
    assert start.startswith(f"*Usage:* {USAGE_LINES[Verb.START]}\n`start`: ")
    assert VERB_SUMMARY[Verb.START] in start
    for flag in ["--steps", "--interval", "--auto", "--keep", "--namespace", "--analysis"]:
        assert f"`{flag}" in start
    for flag in ["--reason", "--step ", "--skip-analysis"]:
        assert f"`{flag}" not in start
    approve = help_text(Verb.APPROVE)
    assert "`--step N`" in approve and "`--steps" not in approve
    assert "`--reason" in help_text(Verb.FREEZE) and "`--namespace" not in help_text(Verb.FREEZE)
    assert "*Options:*" not in help_text(Verb.LIST)


@pytest.mark.parametrize("verb", list(Verb))
def test_every_verb_has_help_of_its_own(verb: Verb) -> None:
    assert help_text(verb) != USAGE and verb.value in help_text(verb)


@pytest.mark.parametrize("text", [f"{POOL} rollback " + "word " * 101,
                                  f'{POOL} pause --reason "{"x" * 501}"',
                                  f'freeze --reason "{"x" * 501}"'])
def test_a_reason_longer_than_500_characters_is_refused(text: str) -> None:
    with pytest.raises(GrammarError, match=r"the reason is \d+ characters; keep it under 500"):
        parse(text)


def test_a_reason_of_500_characters_is_taken() -> None:
    assert parse(f'{POOL} pause --reason "{"x" * 500}"').reason == "x" * 500


def _as_slack_sends(typed: str) -> str:
    """A slash command's text as Slack delivers it: `&`, `<` and `>` escaped."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: 414 characters as typed, 503 as Slack sends them
TYPED_414 = "p99 up & errors up " * 20 + "see <runbook>, p99 > 2s for 9m now"


@pytest.mark.parametrize("verb", ["pause", "rollback", "freeze"])
def test_a_reason_is_measured_as_typed_not_as_slack_escapes_it(verb: str) -> None:
    """A 414-character reason was refused as "503 characters; keep it under 500": Slack's
    `&amp;` and `&lt;` were counted, where the CLI took the same reason."""
    assert len(TYPED_414) == 414 and len(_as_slack_sends(TYPED_414)) == 503
    where = "" if verb == "freeze" else f"{POOL} "
    sent = _as_slack_sends(TYPED_414)
    assert parse(f'{where}{verb} --reason "{sent}"').reason == sent  # kept as Slack sent it
    assert parse(f"{where}{verb} {sent}").reason == sent


def test_a_reason_too_long_says_how_long_it_was_typed() -> None:
    typed = "a & b " * 83 + "<>>"
    assert len(typed) == 501
    with pytest.raises(GrammarError) as refused:
        parse(f'{POOL} rollback --reason "{_as_slack_sends(typed)}"')
    assert str(refused.value) == "the reason is 501 characters; keep it under 500"


def test_every_start_option() -> None:
    req = parse(f"{POOL} start --namespace prod --route routes-to-llm --stable llm-pool "
                "--steps 5,20,100 --interval 90s --auto --approvals 1 --rewrite my-rewrite")
    assert req == CommandRequest(
        verb=Verb.START, pool=POOL, namespace="prod", route="routes-to-llm", stable="llm-pool",
        steps=(5, 20, 100), interval_seconds=90, auto=True, approvals=1, rewrite="my-rewrite",
    )
    assert parse(f"{POOL} start --approvals 2").approvals == 2


@pytest.mark.parametrize("text", [f"{POOL} start --auto --approvals 2",
                                  f"{POOL} start --approvals=3 --steps 10,100 --auto",
                                  f"start {POOL} --approvals 10 --auto"])
def test_more_than_one_approver_per_step_is_refused_with_auto(text: str) -> None:
    """The N was dropped without a word: an automatic plan needs one `approve-plan` and its
    steps apply on the scheduler's tick, and then `promote` asked for N approvers step by
    step while `approve` called each step automatic."""
    with pytest.raises(GrammarError) as refused:
        parse(text)
    n = text.split("--approvals")[1].lstrip(" =").split()[0]
    assert str(refused.value) == (
        f"`--approvals {n}` does not go with `--auto`: an automatic plan is approved once, "
        "with `approve-plan`, and its steps then apply on their own after each bake; for "
        f"{n} approvers at every step, leave out `--auto`")
    assert refused.value.usage == USAGE_LINES[Verb.START]


def test_options_with_equals_and_short_namespace() -> None:
    req = parse(f"{POOL} start --steps=10,100 --interval=2h -n team-a")
    assert (req.steps, req.interval_seconds, req.namespace) == ((10, 100), 7200, "team-a")


def test_the_default_namespace_comes_from_the_caller() -> None:
    assert parse(f"{POOL} status", namespace="serving").namespace == "serving"
    assert parse(f"{POOL} status -n other", namespace="serving").namespace == "other"


@pytest.mark.parametrize("interval, seconds", [("0s", 0), ("15m", 900), ("1h", 3600),
                                               ("0", 0)])
def test_intervals(interval: str, seconds: int) -> None:
    assert parse(f"{POOL} start --interval {interval}").interval_seconds == seconds


@pytest.mark.parametrize("verb", ["pause", "rollback"])
def test_reason_as_option_or_trailing_words(verb: str) -> None:
    assert parse(f'{POOL} {verb} --reason "p99 up 40%"').reason == "p99 up 40%"
    assert parse(f"{POOL} {verb} p99 up").reason == "p99 up"


def test_smart_quotes_and_dashes_from_chat_clients() -> None:
    req = parse(f"{POOL} rollback \u2014reason \u201cbad answers\u201d")
    assert req.reason == "bad answers"
    assert parse(f"{POOL} start \u2013auto").auto is True
    assert parse(f"{POOL} pause \u2018it\u2019s slow\u2019").reason == "it's slow"
    assert parse(f"{POOL} pause it's slow").reason == "it's slow"
    assert normalise("a\u00a0b") == "a b"


@pytest.mark.parametrize("text, fragment", [
    (POOL, "add a verb"),
    ("start", "needs a pool"),
    (f"{POOL} frobnicate", "unknown verb"),
    (f"{POOL} start --bogus", "unknown option `--bogus`"),
    (f"{POOL} start --steps", "`--steps` needs a value"),
    (f"{POOL} start --steps ''", "needs a value"),
    (f"{POOL} start --auto=yes", "takes no value"),
    (f"{POOL} start --route a --route b", "given twice"),
    (f"{POOL} status --steps 10,100", "applies only to `start`"),
    (f"{POOL} approve --interval 5m", "`--interval` applies only to `start`"),
    (f"{POOL} start --reason x", "`--reason` applies to `pause`, `rollback` and `freeze`"),
    (f"{POOL} pause --reason a b", "give the reason once"),
    (f"{POOL} status extra", "unexpected `extra`"),
    (f"{POOL} start --approvals 0", "from 1 to 10"),
    (f"{POOL} start --approvals 11", "from 1 to 10"),
    (f"{POOL} start --approvals two", "from 1 to 10"),
    (f"{POOL} start --namespace Bad_NS", "namespace name"),
    (f"{POOL} start --route UPPER", "Kubernetes name"),
    ("My_Pool start", "Kubernetes name"),
    (f'{POOL} pause --reason "unclosed', "close your quotes"),
    (f"{POOL} start --steps 50,10,100", "strictly increase"),
    (f"{POOL} start --steps 10,50", "last step must be 100"),
    (f"{POOL} start --steps 10,x,100", "whole percentages"),
    (f"{POOL} start --steps 0,100", "at least 1"),
    (f"{POOL} start --interval 5d", "invalid interval"),
    (f"{POOL} start --interval 200h", "at most 7 days"),
    (f"{POOL} start --interval 30", "interval 30 has no unit: write 30s, 30m or 30h"),
])
def test_bad_input_is_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(text)
    assert fragment in str(refused.value)


def _refusal(text: str) -> str:
    with pytest.raises(GrammarError) as refused:
        parse(text)
    return error_reply(refused.value)


def test_a_refusal_reply_carries_one_usage_line_not_the_whole_help() -> None:
    reply = _refusal(f"{POOL} frobnicate")
    assert reply == (":warning: unknown verb `frobnicate`\n"
                     f"*Usage:* {GENERAL_USAGE}")
    assert USAGE not in reply and len(reply.splitlines()) == 2


@pytest.mark.parametrize("verb", list(Verb))
def test_the_usage_line_is_the_verbs_own(verb: Verb) -> None:
    assert f"/rollout {'<pool> ' if verb in POOL_VERBS else ''}{verb.value}" in USAGE_LINES[verb]


@pytest.mark.parametrize("text, verb", [
    (f"{POOL} pause --steps 10,100", Verb.PAUSE),
    (f"{POOL} start --interval 30", Verb.START),
    (f"{POOL} start --bogus", Verb.START),
    ("rollback", Verb.ROLLBACK),
    (f"{POOL} approve extra", Verb.APPROVE),
])
def test_an_error_about_a_verb_shows_that_verbs_usage(text: str, verb: Verb) -> None:
    assert _refusal(text).endswith(f"*Usage:* {USAGE_LINES[verb]}")


@pytest.mark.parametrize("text, suggestion", [
    (f"{POOL} strat", "unknown verb `strat`; did you mean `start`?"),
    (f"strat {POOL}", "unknown verb `strat`; did you mean `start`?"),
    (f"{POOL} aprove", "unknown verb `aprove`; did you mean `approve`?"),
    (f"{POOL} rolback", "did you mean `rollback`?"),
    ("lsit", "unknown verb `lsit`; did you mean `list`?"),
    (f"{POOL} start --intreval 5m", "unknown option `--intreval`; did you mean `--interval`?"),
    (f"{POOL} pause --reasn x", "did you mean `--reason`?"),
])
def test_a_mistyped_verb_or_option_gets_a_suggestion(text: str, suggestion: str) -> None:
    assert suggestion in _refusal(text)


def test_a_word_far_from_any_verb_gets_no_guess() -> None:
    assert "did you mean" not in _refusal(f"{POOL} frobnicate")
    assert "did you mean" not in _refusal(f"{POOL} start --zzz")


def test_the_usage_names_every_verb_and_option() -> None:
    for word in ["start", "status", "approve", "pause", "resume", "rollback", "promote",
                 "history", "list", "help", "--namespace", "--route", "--stable", "--steps",
                 "--interval", "--auto", "--approvals", "--rewrite", "--reason"]:
        assert word in USAGE


def test_approve_plan_is_a_verb_of_its_own() -> None:
    req = parse("llm-pool-version-2 approve-plan")
    assert req.verb is Verb.APPROVE_PLAN and req.pool == "llm-pool-version-2"
    assert parse("approve-plan llm-pool-version-2").verb is Verb.APPROVE_PLAN
    assert "approve-plan" in USAGE


@pytest.mark.parametrize(("text", "reason"), [
    ("freeze", ""), ('freeze --reason "incident 42"', "incident 42"),
    ("freeze change freeze until Monday", "change freeze until Monday"),
])
def test_freeze_is_the_installs_with_an_optional_reason(text: str, reason: str) -> None:
    assert parse(text) == CommandRequest(verb=Verb.FREEZE, reason=reason)


def test_unfreeze_takes_nothing_more() -> None:
    assert parse("unfreeze") == CommandRequest(verb=Verb.UNFREEZE)
    with pytest.raises(GrammarError, match="unexpected `now` after `unfreeze`"):
        parse("unfreeze now")


def test_a_pool_named_with_freeze_is_refused_with_its_usage() -> None:
    with pytest.raises(GrammarError) as refused:
        parse(f"{POOL} freeze")
    assert "`freeze` applies to the whole install, not to" in str(refused.value)
    assert refused.value.usage == USAGE_LINES[Verb.FREEZE]


def test_allow_gitops_is_a_start_option() -> None:
    assert parse(f"{POOL} start --allow-gitops").allow_gitops
    with pytest.raises(GrammarError, match="`--allow-gitops` applies only to `start`"):
        parse(f"{POOL} approve --allow-gitops")


def test_keep_is_a_start_option_and_retire_a_verb() -> None:
    req = parse("llm-pool-version-2 start --keep 48h")
    assert req.keep_seconds == 48 * 3600
    assert parse("llm-pool-version-2 retire").verb is Verb.RETIRE
    with pytest.raises(GrammarError, match="`--keep` applies only to `start`"):
        parse("llm-pool-version-2 retire --keep 1h")
    with pytest.raises(GrammarError, match="invalid `--keep` `soon`"):
        parse("llm-pool-version-2 start --keep soon")


@pytest.mark.parametrize(("value", "said"), [
    ("24", "`--keep` 24 has no unit: write 24s, 24m or 24h"),
    ("2d", "invalid `--keep` `2d`: use a number with s, m or h, like 15m"),
    ("200h", "invalid `--keep` `200h`: at most 7 days"),
    ("-1h", "invalid `--keep` `-1h`: a duration cannot be negative"),
    ("9999999999s", "invalid `--keep` `9999999999s`…: at most 7 days"),
])
def test_a_bad_keep_is_refused_in_its_own_name(value: str, said: str) -> None:
    """`--keep 24` was answered "interval 24 has no unit", about an option not given."""
    with pytest.raises(GrammarError) as refused:
        parse(f"{POOL} start --keep={value}")
    assert str(refused.value) == said and refused.value.usage == USAGE_LINES[Verb.START]


@pytest.mark.parametrize("verb", ["freeze", "unfreeze", "list", "help"])
def test_an_install_wide_verb_takes_no_namespace(verb: str) -> None:
    with pytest.raises(GrammarError) as refused:
        parse(f"{verb} -n prod")
    assert str(refused.value).startswith(f"`-n` does not apply to `{verb}`: ")
    assert refused.value.usage == USAGE_LINES[Verb(verb)]


@pytest.mark.parametrize(("text", "reason"), [
    ("llm-pool-version-2 pause <!channel> is down", "&lt;!channel&gt; is down"),
    ('llm-pool-version-2 rollback --reason "<@U0BOB|bob> saw <!here>"',
     "&lt;@U0BOB|bob&gt; saw &lt;!here&gt;"),
    ("freeze see <https://status.example|status> &amp; wait",
     "see &lt;https://status.example|status&gt; &amp; wait"),
    ('llm-pool-version-2 pause --reason "p99 &gt; 2s"', "p99 &gt; 2s"),
])
def test_slack_markup_in_a_reason_is_kept_as_literal_text(text: str, reason: str) -> None:
    """Slack escapes what people type; a raw `<` is its own markup (escaped mentions, links)
    and reached the card's thread as a live `<!channel>`."""
    assert parse(text).reason == reason
