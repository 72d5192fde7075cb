"""Bad input gets one clear line and changes nothing: names by the Kubernetes rules, the
CLI's own syntax errors, `--as`, negative intervals and malformed settings."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli import EXIT_REFUSED, build_parser, join_option_values, main, request_from_args
from bot.settings import SettingsError, load_settings
from handlers.grammar import GrammarError, parse
from rollout.domain import names
from rollout.domain.errors import Conflict, InvalidInput
from rollout.domain.plan import parse_interval
from rollout.domain.split import require_single_entries

UNREACHABLE = ["--kubeconfig", "/nonexistent/kubeconfig", "--redis-url", "redis://127.0.0.1:1"]


@pytest.mark.parametrize("name", ["llm-pool/status", "LLM", "llm\npool", "-llm", "llm-",
                                  "a" * 254, "", "llm pool", "llm_pool"])
def test_object_names_follow_the_kubernetes_rules(name: str) -> None:
    with pytest.raises(InvalidInput, match="is not a Kubernetes name"):
        names.object_name("pool", name)


@pytest.mark.parametrize("name", ["llm-pool", "llm-pool-version-2", "a" * 253, "a.b-c", "0"])
def test_good_object_names_pass(name: str) -> None:
    assert names.object_name("pool", name) == name


def test_namespaces_are_labels() -> None:
    assert names.namespace_name("a" * 63) == "a" * 63
    for bad in ("a" * 64, "a.b", "Default"):
        with pytest.raises(InvalidInput, match="namespace name"):
            names.namespace_name(bad)


def test_adapter_names_are_model_names() -> None:
    """A rewrite target names a model, which may carry `/` and capitals, never a space."""
    names.rollout_names(namespace="default", canary="meta-llama/Llama-3-8B-v2",
                        rewrite="food-review", stable="meta-llama/Llama-3-8B")
    for bad in ("with space", "new\nline", "", "x" * 254, "a&amp;b", "<!channel>", "lora>v2"):
        with pytest.raises(InvalidInput, match="not a model name"):
            names.rollout_names(namespace="default", canary=bad, rewrite="food-review")
    with pytest.raises(InvalidInput, match="rewrite `Bad/Name` is not a Kubernetes name"):
        names.rollout_names(namespace="default", canary="a", rewrite="Bad/Name")


def test_a_message_quotes_a_control_character_visibly_on_one_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        names.object_name("pool", "llm\npool")
    assert "\n" not in str(caught.value) and "llm\\npool" in str(caught.value)


def test_the_slack_grammar_refuses_the_same_names() -> None:
    with pytest.raises(GrammarError, match="pool `llm-pool/status` is not a Kubernetes name"):
        parse("llm-pool/status start")
    with pytest.raises(GrammarError, match="stable pool `Old` is not a Kubernetes name"):
        parse("llm-pool-version-2 start --stable Old")
    assert parse("food-v2 start --rewrite food-review").pool == "food-v2"


@pytest.mark.parametrize("canary, options", [
    ("small-segment-lora-v2", "--rewrite small-segment-lora --stable meta-llama/Llama-3.1-8B:v1"),
    ("meta-llama/Llama-3.1-8B:v2", "--rewrite food-review --stable Meta-Llama_Base"),
    ("llm-pool-version-2", "--stable llm-pool"),
    ("llm-pool-version-2", "--stable meta-llama/Llama-3.1-8B:v1"),
    ("llm-pool-version-2", "--stable Old"),
    ("food-v2", "--rewrite food-review --stable has\x01control"),
    ("food-v2", "--rewrite Bad/Rewrite --stable food-v1"),
])
def test_slack_accepts_and_refuses_the_start_names_the_cli_does(canary: str,
                                                                options: str) -> None:
    """With `--rewrite` the stable is an adapter (model) name, which the CLI took and Slack
    refused as not a Kubernetes object name."""
    def outcome(make: object) -> str:
        """The stable taken, or the rule refused by (each edge names the option its way)."""
        try:
            return f"stable {make().stable}"  # type: ignore[operator]
        except InvalidInput as exc:
            return "refused: " + str(exc).split(" is ", 1)[1]

    argv = ["start", canary, *options.split()]
    cli = outcome(lambda: request_from_args(build_parser().parse_args(argv), "default"))
    slack = outcome(lambda: parse(f"{canary} start {options}"))
    assert slack == cli


def test_a_negative_interval_is_refused_for_what_it_is() -> None:
    with pytest.raises(InvalidInput, match="cannot be negative"):
        parse_interval("-5m")
    assert join_option_values(["start", "x", "--interval", "-5m", "-v"]) == \
        ["start", "x", "--interval=-5m", "-v"]
    assert join_option_values(["status", "x", "--every", "-w"]) == ["status", "x", "--every", "-w"]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(argv, out=out, err=err)
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, err.getvalue() + captured.err + out.getvalue() + captured.out


NO_YAML = Path(__file__).resolve().parents[2] / "bot"  # a directory of Python files


@pytest.mark.parametrize(("argv", "expected"), [
    (["start", "llm-pool/status"], "refused: pool `llm-pool/status` is not a Kubernetes name"),
    (["start", "llm\npool"], "refused: pool `llm\\npool` is not a Kubernetes name"),
    (["start", "llm-pool-version-2", "--interval", "-5m"], "cannot be negative"),
    (["frobnicate", "x"], "error: argument COMMAND: invalid choice: 'frobnicate'"),
    (["start"], "error: the following arguments are required: POOL"),
    (["approve", "llm-pool-version-2", "--as", "b" * 300], "refused: --as `bbb"),
    (["start", "llm-pool-version-2", "--namespace", "Bad_NS"], "namespace name"),
    (["recover", "llm\npool"], "refused: pool `llm\\npool` is not a model name"),
    (["scheduler", "--port", "70000"], "a port is a number from 1 to 65535, not '70000'"),
    (["scheduler", "--port", "http"], "a port is a number from 1 to 65535, not 'http'"),
    (["serve", "--port", "0"], "a port is a number from 1 to 65535, not '0'"),
    (["emulator", "--port", "18080", "--kubeconfig", "kc.yaml", "--crds", "/nonexistent/crds"],
     "argument --crds: '/nonexistent/crds' is not a directory (`make crds` writes"),
    (["sandbox", "--crds", "/nonexistent/crds"], "'/nonexistent/crds' is not a directory"),
    (["sandbox", "--crds", str(NO_YAML)], f"{str(NO_YAML)!r} holds no *.yaml file"),
])
def test_the_cli_answers_bad_input_in_one_line_before_any_request(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing is reachable here: an answer about the kubeconfig or Redis would mean the
    input was not checked first."""
    code, text = _cli([*argv, *UNREACHABLE], capsys)
    assert code == EXIT_REFUSED
    assert expected in text
    assert text.count("\n") == 1, text


def test_a_malformed_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_LOCK_TTL", "abc")
    monkeypatch.setenv("ROLLOUT_TICK", "-1")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and "Value error" not in message
    assert message.startswith("invalid configuration: ")
    assert "ROLLOUT_LOCK_TTL: invalid interval `abc`" in message
    assert "ROLLOUT_TICK: invalid interval `-1`: a duration cannot be negative" in message


@pytest.mark.parametrize("value", ["-1", "3601", "soon"])
def test_a_watch_period_out_of_range_is_named(monkeypatch: pytest.MonkeyPatch,
                                              value: str) -> None:
    monkeypatch.setenv("ROLLOUT_WATCH_SECONDS", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("invalid configuration: ROLLOUT_WATCH_SECONDS: ")


def test_a_watch_period_of_0_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_WATCH_SECONDS", "0")
    assert load_settings().rollout_watch_seconds == 0


def test_a_rule_may_list_each_managed_entry_once() -> None:
    require_single_entries(["s", "c", "other", "other"], stable="s", canary="c", where="r")
    with pytest.raises(Conflict, match="lists the stable s 2 times"):
        require_single_entries(["s", "s", "c"], stable="s", canary="c", where="r")
    with pytest.raises(Conflict, match="lists the canary c 3 times"):
        require_single_entries(["s", "c", "c", "c"], stable="s", canary="c", where="r")


def test_the_edges_of_each_length_rule() -> None:
    assert names.model_name("adapter", "m" * 253) == "m" * 253
    assert names.actor_name("bob") == "bob"
    assert names.actor_name("b" * 100) == "b" * 100
    for bad in ("", "b" * 101, "bob\n"):
        with pytest.raises(InvalidInput, match="--as"):
            names.actor_name(bad)


def test_a_quoted_value_is_shown_whole_up_to_sixty_characters() -> None:
    with pytest.raises(InvalidInput) as whole:
        names.object_name("pool", "A" * 60)
    assert f"`{'A' * 60}`" in str(whole.value)
    with pytest.raises(InvalidInput) as cut:
        names.object_name("pool", "A" * 61)
    assert f"`{'A' * 57}...`" in str(cut.value)
