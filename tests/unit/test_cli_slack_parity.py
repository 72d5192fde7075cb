"""The CLI and the Slack grammar read the same options alike: a value one refuses, the other
refuses in the same words, before anything is asked of Redis or the cluster."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli import EXIT_OK, EXIT_REFUSED, build_parser, main, request_from_args
from handlers.grammar import GrammarError, parse
from rollout.domain.errors import InvalidInput

UNREACHABLE = ["--kubeconfig", "/nonexistent/kubeconfig", "--redis-url", "redis://127.0.0.1:1"]
POOL = "llm-pool-version-2"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main([*argv, *UNREACHABLE], out=out, err=err)
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, err.getvalue() + captured.err + out.getvalue() + captured.out


def _slack(text: str) -> str:
    with pytest.raises(InvalidInput) as refused:
        parse(text)
    return str(refused.value)


@pytest.mark.parametrize(("verb", "option", "value", "said"), [
    # int() reads other scripts' digits, `1_0` and spaces; argparse's type=int took them
    ("start", "--approvals", "\uff15", "in the digits 0-9"),
    ("start", "--approvals", "1_0", "not `1_0`"),
    ("start", "--approvals", "11", "from 1 to 10"),
    ("approve", "--step", "\uff15", "in the digits 0-9"),
    ("approve", "--step", "101", "not `101`"),
    ("approve", "--step", "0", "not `0`"),
    ("start", "--steps", "\uff150,100", "in the digits 0-9"),
    ("start", "--steps", "10,10,100", "strictly increase"),
    ("start", "--steps", "0,100", "at least 1"),
    ("start", "--interval", "\u0661\u0665m", "in the digits 0-9"),
    ("start", "--keep", "200h", "invalid `--keep` `200h`: at most 7 days"),
    ("start", "--keep", "24", "`--keep` 24 has no unit: write 24s, 24m or 24h"),
    ("start", "--keep", "2d", "invalid `--keep` `2d`"),
    ("start", "--keep", "-2h", "invalid `--keep` `-2h`: a duration cannot be negative"),
    ("start", "--analysis", "bad name!", "the name of an analysis"),
    ("start --auto", "--approvals", "2", "`--approvals 2` does not go with `--auto`"),
    ("rollback", "--reason", "x" * 501, "the reason is 501 characters; keep it under 500"),
    ("pause", "--reason", " y" * 300, "the reason is 599 characters"),
])
def test_a_value_slack_refuses_the_cli_refuses_in_the_same_words(
        verb: str, option: str, value: str, said: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    slack = _slack(f"{POOL} {verb} {option} {value!r}".replace("'", '"'))
    code, text = _cli([*verb.split(), POOL, option, value], capsys)
    assert said in slack
    assert code == EXIT_REFUSED
    assert text == f"refused: {slack}\n"


def _as_slack_sends(typed: str) -> str:
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.parametrize("verb", ["pause", "rollback"])
def test_a_reason_is_measured_as_typed_on_both_edges(verb: str) -> None:
    """Slack counted its own escaping (`&amp;`, `&lt;`, `&gt;`): it refused as 503
    characters a 414-character reason the CLI took."""
    typed = "p99 up & errors up " * 20 + "see <runbook>, p99 > 2s for 9m now"
    cli = request_from_args(build_parser().parse_args([verb, POOL, "--reason", typed]),
                            "default")
    sent = _as_slack_sends(typed)
    assert parse(f'{POOL} {verb} --reason "{sent}"').reason == cli.reason == sent
    too_long = typed + "&" * 87
    slack = _slack(f'{POOL} {verb} --reason "{_as_slack_sends(too_long)}"')
    with pytest.raises(InvalidInput) as refused:
        request_from_args(build_parser().parse_args([verb, POOL, "--reason", too_long]),
                          "default")
    assert slack == str(refused.value) == "the reason is 501 characters; keep it under 500"


def test_a_step_number_in_other_digits_leaks_no_function_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _cli(["approve", POOL, "--step", "²"], capsys)
    assert code == EXIT_REFUSED
    assert "in the digits 0-9" in text and "_step_number" not in text


@pytest.mark.parametrize("argv", [
    ["pause", POOL, "--reason", "p99 latency", "--reason", "errors"],
    ["start", POOL, "--interval", "15m", "--interval=1h"],
    ["start", POOL, "--auto", "--auto"],
    ["status", POOL, "-n", "prod", "--namespace", "staging"],
])
def test_an_option_given_twice_is_refused_not_the_last_one_kept(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`pause --reason a --reason b` recorded `b` alone, as if `a` had never been typed."""
    code, text = _cli(argv, capsys)
    assert code == EXIT_REFUSED
    assert "is given twice" in text and text.count("\n") == 1


@pytest.mark.parametrize(("argv", "slack"), [
    (["freeze", "-n", "prod", "--reason", "incident"], "freeze -n prod --reason incident"),
    (["unfreeze", "--namespace", "prod"], "unfreeze --namespace prod"),
    (["list", "-n", "prod"], "list -n prod"),
])
def test_a_namespace_on_an_install_wide_verb_is_refused_not_ignored(
        argv: list[str], slack: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`rollout-bot freeze -n prod` froze every namespace, and `list -n prod` listed them all."""
    code, text = _cli(argv, capsys)
    assert code == EXIT_REFUSED
    said = _slack(slack).split(": ", 1)[1]
    assert text.startswith("refused: `--namespace` does not apply") and said in text


@pytest.mark.parametrize(("argv", "verb"), [
    (["freeze", "help"], "freeze"), (["freeze", "?"], "freeze"),
    (["unfreeze", "help"], "unfreeze"), (["list", "help"], "list"),
    (["rollback", POOL, "help"], "rollback"), (["rollback", POOL, "?"], "rollback"),
    (["pause", POOL, "help"], "pause"), (["pause", "help"], "pause"),
    (["start", "help"], "start"), (["start", POOL, "-n", "prod", "help"], "start"),
    (["recover", POOL, "help"], "recover"),
])
def test_help_after_a_verb_answers_the_verbs_help_as_slack_does(
        argv: list[str], verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`rollout-bot freeze help` was refused (`unrecognized arguments: help`), where Slack's
    `/rollout freeze help` answers freeze's help; neither changes anything."""
    if argv[0] != "recover":
        assert parse(" ".join(argv)).verb.value == "help"
    code, text = _cli(argv, capsys)
    assert code == EXIT_OK
    assert text.startswith(f"usage: rollout-bot {verb} ") and "refused" not in text


@pytest.mark.parametrize(("argv", "said"), [
    (["freeze", "now"], "now; a reason goes in --reason: --reason now"),
    (["rollback", POOL, "help", "me"], "help me; a reason goes in --reason: --reason 'help me'"),
    (["unfreeze", "help", "me"], "help me"),
    (["rollback", POOL, "--reason", "slow", "too"], "too"),  # a reason given: a stray word
    (["pause", POOL, "it's", "--verbatim"], "it's --verbatim"),
])
def test_words_after_a_verb_other_than_help_alone_are_still_refused(
        argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused, and where the verb takes a reason Slack reads from the words after the
    pool, told where the CLI takes it (quoted for the shell)."""
    code, text = _cli(argv, capsys)
    assert code == EXIT_REFUSED
    assert text == f"error: unrecognized arguments: {said} (see `rollout-bot --help`)\n"


def test_watch_and_json_are_not_taken_together(capsys: pytest.CaptureFixture[str]) -> None:
    """`status --watch -o json` printed lines for people to a script that wanted JSON."""
    code, text = _cli(["status", POOL, "--watch", "-o", "json"], capsys)
    assert code == EXIT_REFUSED and "--output json" in text


@pytest.mark.parametrize("command", ["sandbox", "emulator"])
def test_a_port_out_of_range_is_refused_for_every_server(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = ["--kubeconfig", str(tmp_path / "kc")] if command == "emulator" else []
    argv = [command, "--port", "70000", *kubeconfig]
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == EXIT_REFUSED
    assert "a port is a number from 1 to 65535" in capsys.readouterr().err


def test_the_grammar_refuses_what_its_readers_refuse() -> None:
    with pytest.raises(GrammarError, match="given twice"):
        parse(f"{POOL} pause --reason a --reason b")
