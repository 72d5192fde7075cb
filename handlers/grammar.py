"""The `/rollout` grammar: slash-command text into a CommandRequest, or a clear refusal.

Pure and synchronous so a listener can parse before it acks: a malformed command is answered
in the ack itself, with usage, and never reaches the service.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from handlers.commands import INSTALL_VERBS, POOL_VERBS, CommandRequest, Verb
from handlers.mentions import plain, unmarked
from rollout.domain import names
from rollout.domain.errors import InvalidInput
from rollout.domain.freeze import MAX_REASON
from rollout.domain.plan import build_plan, parse_interval, parse_steps

_HEAD = """\
*Usage:* `/rollout <pool|adapter> <verb> [options]`, `/rollout list`, `/rollout help`, \
`/rollout help <verb>`, `/rollout freeze [--reason "text"]`, `/rollout unfreeze`
*Verbs:* `start`, `status`, `approve`, `approve-plan`, `pause`, `resume`, `rollback`, `promote`, \
`retire` (approvers: drop the old pool from the route after completion), `history`; \
`freeze` and `unfreeze` (approvers: hold every start and step-up)"""

_EXAMPLES = """\
*Examples:* `/rollout llm-pool-version-2 start --steps 10,50,100 --interval 30m`, \
`/rollout llm-pool-version-2 rollback --reason "p99 latency"`"""

#: what each verb does, in one line, for `/rollout help <verb>`
VERB_SUMMARY: dict[Verb, str] = {
    Verb.START: "finds the route rule that references the pool, runs the preflight gates and "
                "posts the plan; each step then waits for its approvals (with `--auto`, for "
                "the plan's approval and then each bake)",
    Verb.STATUS: "the rollout as recorded and as the cluster shows it",
    Verb.APPROVE: "approves the pending step (approvers); the last approval it needs applies it",
    Verb.APPROVE_PLAN: "approves a plan with automatic steps (approvers; not its author)",
    Verb.PAUSE: "stops the clock and the steps (anyone in an allowed channel)",
    Verb.RESUME: "continues a paused rollout; the remaining bake time carries over (approvers)",
    Verb.ROLLBACK: "restores the route's weights as they were before start, from any phase "
                   "(anyone in an allowed channel)",
    Verb.PROMOTE: "skips the remaining steps: all of the pair's traffic to the canary now "
                  "(approvers)",
    Verb.RETIRE: "drops the old pool from the route after completion; no rollback after it "
                 "(approvers)",
    Verb.HISTORY: "the rollout's recorded decisions: who did what, when",
    Verb.LIST: "active rollouts in every namespace, then recent finished ones",
    Verb.HELP: "every verb and option; `/rollout help <verb>` for one verb",
    Verb.FREEZE: "holds every start and step-up of the install until `unfreeze`; rollback, "
                 "pause and resume still work (approvers)",
    Verb.UNFREEZE: "lifts the freeze (approvers)",
}

#: a word that, alone after a verb, asks for the verb's help (Slack and the CLI alike)
HELP_WORDS = frozenset({"help", "?", "-h", "--help"})
_START = frozenset({Verb.START})
_REASON_VERBS = frozenset({Verb.PAUSE, Verb.ROLLBACK, Verb.FREEZE})

#: the options as the help lists them: how it is written, what it means, the verbs it fits
_OPTION_HELP: tuple[tuple[str, str, frozenset[Verb]], ...] = (
    ("--namespace NS", "namespace of the pool and route (default: the bot's)", POOL_VERBS),
    ("--route NAME", "the HTTPRoute to shift, when the pool is referenced by several", _START),
    ("--stable POOL", "the pool (with `--rewrite`, the adapter) that keeps the rest of the "
                      "traffic", _START),
    ("--steps 10,25,50,100", "canary percentages, increasing to 100", _START),
    ("--interval 15m", "bake time between steps: s, m or h", _START),
    ("--auto", "step up automatically after each bake; the plan itself needs `approve-plan`",
     _START),
    ("--approvals N", "distinct approvers needed per step", _START),
    ("--rewrite NAME", "an InferenceModelRewrite, for adapter rollouts", _START),
    ("--allow-gitops", "start although Argo CD, Flux or another applier owns the weights; "
                       "their revert then pauses the rollout", _START),
    ("--analysis NAME", "the canary analysis that must pass after each step; default: the "
                        "analysis file's default", _START),
    ("--keep 24h", "how long the old pool stays in the route (weight 0, rollback possible) "
                   "after completion, before `retire` is due; default: the bot's "
                   "ROLLOUT_KEEP", _START),
    ('--reason "text"', f"why, in at most {MAX_REASON} characters", _REASON_VERBS),
    ("--step N", "the step an approval is for, counting from 1; default: the pending one",
     frozenset({Verb.APPROVE})),
    ("--skip-analysis", "promote although the canary analysis does not pass (audited)",
     frozenset({Verb.PROMOTE})),
)


def _verbs_named(verbs: frozenset[Verb]) -> str:
    if verbs == POOL_VERBS:
        return ""
    ordered = [v.value for v in Verb if v in verbs]
    return f" ({', '.join(ordered)})"


def _usage() -> str:
    return "\n".join([
        _HEAD,
        "*Options:*",
        *(f"  `{flag}` {text}{_verbs_named(verbs)}" for flag, text, verbs in _OPTION_HELP),
        _EXAMPLES,
    ])


USAGE = _usage()


def help_text(topic: Verb | None) -> str:
    """The whole usage, or one verb's: its usage line, what it does and its options. Built
    when asked (a few microseconds), so that what it is built from is what a test checks."""
    if topic is None:
        return _usage()
    options = [f"  `{flag}` {text}" for flag, text, verbs in _OPTION_HELP if topic in verbs]
    lines = [f"*Usage:* {USAGE_LINES[topic]}", f"`{topic.value}`: {VERB_SUMMARY[topic]}."]
    if options:
        lines += ["*Options:*", *options]
    return "\n".join(lines)


# Slack clients (and phones) turn quotes into typographic ones and `--` into dashes.
_TYPOGRAPHY = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"',  # double: left, right, low
    "\u2018": "'", "\u2019": "'", "\u201a": "'",  # single: left, right, low
})
_APOSTROPHE = re.compile(r"(?<=\w)['\u2019](?=\w)")
_KEPT_APOSTROPHE = "\ue000"  # a private-use character, restored after splitting
_DASH_OPTION = re.compile("(^|\\s)[\u2012-\u2015]+(?=[A-Za-z])")  # figure/en/em dash
MAX_APPROVALS = 10
MAX_STEPS = 100

#: why a verb about the whole install takes no namespace (the CLI refuses one for the same)
INSTALL_WIDE = {
    Verb.FREEZE: "the freeze is install-wide, holding the rollouts of every namespace",
    Verb.UNFREEZE: "the freeze is install-wide, so unfreeze lifts it in every namespace",
    Verb.LIST: "`list` shows the rollouts of every namespace",
    Verb.HELP: "`help` is the same for every namespace",
}
_START_ONLY = frozenset({"route", "stable", "steps", "interval_seconds", "auto", "approvals",
                         "rewrite", "allow_gitops", "analysis", "keep_seconds"})


_COMMON = "[-n NS]"
#: the one usage line that applies, per verb: an error shows this, not the whole help
USAGE_LINES: dict[Verb, str] = {
    Verb.START: "`/rollout <pool> start [--steps 10,25,50,100] [--interval 15m] [--auto] "
                "[--approvals N] [--route NAME] [--stable POOL] [--rewrite NAME] "
                "[--analysis NAME] [--allow-gitops] [--keep 24h] [-n NS]`",
    Verb.STATUS: f"`/rollout <pool> status {_COMMON}`",
    Verb.APPROVE: f"`/rollout <pool> approve [--step N] {_COMMON}`",
    Verb.APPROVE_PLAN: f"`/rollout <pool> approve-plan {_COMMON}`",
    Verb.PAUSE: f'`/rollout <pool> pause [--reason "text"] {_COMMON}`',
    Verb.RESUME: f"`/rollout <pool> resume {_COMMON}`",
    Verb.ROLLBACK: f'`/rollout <pool> rollback [--reason "text"] {_COMMON}`',
    Verb.PROMOTE: f"`/rollout <pool> promote [--skip-analysis] {_COMMON}`",
    Verb.RETIRE: f"`/rollout <pool> retire {_COMMON}`",
    Verb.HISTORY: f"`/rollout <pool> history {_COMMON}`",
    Verb.LIST: "`/rollout list`",
    Verb.HELP: "`/rollout help`",
    Verb.FREEZE: '`/rollout freeze [--reason "text"]`',
    Verb.UNFREEZE: "`/rollout unfreeze`",
}
GENERAL_USAGE = "`/rollout <pool|adapter> <verb> [options]`; `/rollout help` lists them all"


class GrammarError(InvalidInput):
    """The text is not a `/rollout` command; `usage` is the one line that applies."""

    def __init__(self, message: str, *, verb: Verb | None = None) -> None:
        super().__init__(message)
        self.usage = USAGE_LINES[verb] if verb is not None else GENERAL_USAGE


def did_you_mean(word: str, choices: list[str]) -> str:
    """`; did you mean `start`?` for a close miss, else nothing."""
    found = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f"; did you mean `{found[0]}`?" if found else ""


_VERB_WORDS = [v.value for v in Verb]


def _close_verb(word: str) -> Verb | None:
    found = difflib.get_close_matches(word.lower(), _VERB_WORDS, n=1, cutoff=0.6)
    return Verb(found[0]) if found else None


@dataclass(frozen=True)
class _Option:
    field: str
    takes_value: bool
    convert: Callable[[str, str], object] | None = None


def _name(flag: str, value: str) -> str:
    return names.object_name(f"`{flag}`", value)


def _namespace(_flag: str, value: str) -> str:
    return names.namespace_name(value)


#: a value longer than this is no number anyone meant (and `int()` refuses 4,300 digits)
_MAX_NUMBER_TEXT = 400
_ASCII = ", in the digits 0-9"


def _quoted(value: str) -> str:
    return value if len(value) <= 60 else value[:57] + "..."


def _numbers(flag: str, value: str, wants: str) -> str:
    """Numbers are in ASCII digits: `"²".isdigit()` is true but `int("²")` raises, and
    `\u0661\u0665m` (15m in Arabic-Indic digits) would be taken as 15m, which nobody
    reading the channel sees."""
    if not value.isascii() or len(value) > _MAX_NUMBER_TEXT:
        ascii_ = "" if value.isascii() else _ASCII
        raise GrammarError(f"`{flag}` wants {wants}{ascii_}, not `{_quoted(value)}`")
    return value


def _whole_number(flag: str, value: str, high: int, wants: str) -> int:
    """1 to `high` in ASCII digits."""
    if value.isascii() and value.isdigit() and len(value) <= len(str(high)) \
            and 1 <= int(value) <= high:
        return int(value)
    ascii_ = "" if value.isascii() else _ASCII
    raise GrammarError(f"`{flag}` wants {wants}{ascii_}, not `{_quoted(value)}`")


# The option readers below are the CLI's too, so that a value Slack refuses is refused there
# with the same words, before either edge asks anything of Redis or the cluster.


def steps_value(flag: str, value: str) -> tuple[int, ...]:
    steps = tuple(parse_steps(_numbers(flag, value, "percentages like 10,25,50,100")))
    build_plan(steps)  # the same checks start makes, answered before the ack
    return steps


def duration_value(flag: str, value: str, *, what: str = "interval") -> int:
    return parse_interval(_numbers(flag, value, "a duration like 90s, 15m or 2h"), what=what)


def keep_value(flag: str, value: str) -> int:
    """`--keep`, refused in its own name: it is no interval."""
    return duration_value(flag, value, what=f"`{flag}`")


def approvals_value(flag: str, value: str) -> int:
    return _whole_number(flag, value, MAX_APPROVALS,
                         f"a number of approvers from 1 to {MAX_APPROVALS}")


def step_value(flag: str, value: str) -> int:
    return _whole_number(flag, value, MAX_STEPS,
                         "the number of the step to approve (1 is the first)")


def analysis_value(flag: str, value: str) -> str:
    """The shape of a name in the analysis file; whether it exists is the service's answer."""
    if not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,62}", value):
        raise GrammarError(f"`{flag}` wants the name of an analysis in the analysis file, "
                           f"not `{value}`")
    return value


def _as_given(_flag: str, value: str) -> str:
    return value


def reason_text(value: str) -> str:
    """A reason as literal text. Slack escapes `&`, `<` and `>` in what people type, so a
    raw `<` here is Slack's own markup (an app that asks for escaped mentions gets `@here`
    as `<!here>`, a user as `<@U…|bob>`, a link as `<https://…|…>`): kept as is, it would
    mention the channel from the card's thread. Escaped, it shows as it was written.
    A reason goes on the card and into every audit line naming it: a few sentences, not a
    file (the CLI took megabytes). Its length is the typed text's, not that of Slack's
    escaping (a typed `&` arrives as `&amp;`), as the CLI counts it."""
    return unmarked(_reason(value, typed=plain))


def reason_value(_flag: str, value: str) -> str:
    """`--reason` as the CLI reads it (the readers' signature): see `_reason`."""
    return _reason(value)


def _reason(value: str, *, typed: Callable[[str], str] = str) -> str:
    """A reason trimmed, and no longer than the card and the audit take (the CLI took
    megabytes), counted in the characters people typed: `typed` turns the text as it
    arrived into them. Slack and the CLI escape it each as their input needs."""
    value = value.strip()
    length = len(typed(value))
    if length > MAX_REASON:
        raise GrammarError(f"the reason is {length} characters; keep it under {MAX_REASON}")
    return value


def _text(_flag: str, value: str) -> str:
    return reason_text(value)


_OPTIONS: dict[str, _Option] = {
    "--namespace": _Option("namespace", True, _namespace),
    "-n": _Option("namespace", True, _namespace),
    "--route": _Option("route", True, _name),
    # a pool, or with `--rewrite` an adapter (model) name: CommandRequest.check_names checks
    # it as the CLI does, once the whole start is known
    "--stable": _Option("stable", True, _as_given),
    "--steps": _Option("steps", True, steps_value),
    "--interval": _Option("interval_seconds", True, duration_value),
    "--auto": _Option("auto", False),
    "--approvals": _Option("approvals", True, approvals_value),
    "--rewrite": _Option("rewrite", True, _name),
    "--allow-gitops": _Option("allow_gitops", False),
    "--analysis": _Option("analysis", True, analysis_value),
    "--keep": _Option("keep_seconds", True, keep_value),
    "--reason": _Option("reason", True, _text),
    "--step": _Option("step", True, step_value),
    "--skip-analysis": _Option("skip_analysis", False),
}


def normalise(text: str) -> str:
    """Undo what chat clients do to typed commands: smart quotes, dashes, odd spaces.
    An apostrophe inside a word (`it's`) is set aside so that it does not open a quote."""
    text = _APOSTROPHE.sub(_KEPT_APOSTROPHE, text)
    text = text.translate(_TYPOGRAPHY).replace("\u00a0", " ")
    return _DASH_OPTION.sub(r"\1--", text).strip()


def tokenize(text: str) -> list[str]:
    try:
        words = shlex.split(normalise(text))
    except ValueError as exc:
        raise GrammarError(f"could not read the command: {exc} (close your quotes)") from None
    return [w.replace(_KEPT_APOSTROPHE, "'") for w in words]


def _verb(word: str) -> Verb | None:
    try:
        return Verb(word.lower())
    except ValueError:
        return None


def parse(text: str, *, namespace: str = "default") -> CommandRequest:
    """`/rollout` text into a request. `namespace` is the default when none is given."""
    words = tokenize(text)
    try:
        positional, raw = _split(words)
    except GrammarError as exc:
        guess = next((v for w in words if not w.startswith("-") and (v := _verb(w))), None)
        raise GrammarError(str(exc), verb=guess) from None
    topic = _help_asked(positional)
    if topic is not None:  # the verb's help, whatever options came with it: nothing is done
        return CommandRequest(verb=Verb.HELP, namespace=namespace, topic=topic)
    verb, pool, extra = _shape(positional)
    try:
        return _request(verb, pool, extra, raw, namespace)
    except GrammarError as exc:
        raise GrammarError(str(exc), verb=verb) from None
    except InvalidInput as exc:  # a bad step list or interval, from the shared plan parser
        raise GrammarError(str(exc), verb=verb) from None


def _request(verb: Verb, pool: str | None, extra: list[str], raw: list[tuple[str, str]],
             namespace: str) -> CommandRequest:
    given = {_OPTIONS[flag].field: flag for flag, _ in raw}
    if verb in INSTALL_VERBS and "namespace" in given:
        raise GrammarError(f"`{given['namespace']}` does not apply to `{verb.value}`: "
                           f"{INSTALL_WIDE[verb]}")
    if verb is not Verb.START and (misplaced := sorted(set(given) & _START_ONLY)):
        raise GrammarError(f"`{given[misplaced[0]]}` applies only to `start`, "
                           f"not `{verb.value}`")
    if "reason" in given and verb not in _REASON_VERBS:
        raise GrammarError(f"`--reason` applies to `pause`, `rollback` and `freeze`, not "
                           f"`{verb.value}`")
    if "step" in given and verb is not Verb.APPROVE:
        raise GrammarError(f"`--step` applies to `approve`, not `{verb.value}`")
    if "skip_analysis" in given and verb is not Verb.PROMOTE:
        raise GrammarError(f"`--skip-analysis` applies to `promote`, not `{verb.value}`")
    values: dict[str, object] = {"namespace": namespace}
    for flag, value in raw:
        option = _OPTIONS[flag]
        values[option.field] = option.convert(flag, value) if option.convert else True
    if extra:
        values.update(_trailing(verb, extra, reason_given="reason" in given))
    request = CommandRequest(verb=verb, pool=pool, **values)  # type: ignore[arg-type]
    request.check()
    return request


def _trailing(verb: Verb, extra: list[str], *, reason_given: bool) -> dict[str, object]:
    """Words after the verb: help's topic, or a reason written without `--reason`."""
    if verb is Verb.HELP:
        return {"topic": _topic(extra)}
    if verb not in _REASON_VERBS:
        raise GrammarError(f"unexpected `{' '.join(extra)}` after `{verb.value}`")
    if reason_given:
        raise GrammarError(f"give the reason once: `--reason` or after `{verb.value}`")
    return {"reason": reason_text(" ".join(extra))}


def _topic(words: list[str]) -> Verb:
    """`/rollout help start`: the one verb help is asked about."""
    if len(words) > 1:
        raise GrammarError(f"unexpected `{' '.join(words[1:])}` after `help {words[0]}`: "
                           "ask about one verb at a time")
    topic = _verb(words[0])
    if topic is None:
        raise GrammarError(f"no verb `{words[0]}`{did_you_mean(words[0], _VERB_WORDS)}; "
                           f"the verbs are {', '.join(f'`{v}`' for v in _VERB_WORDS)}")
    return topic


def _split(words: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Positional words, and options as (canonical flag, raw value) in the order given."""
    positional: list[str] = []
    raw: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-" or word.lower() in HELP_WORDS:
            positional.append(word)
            continue
        flag, eq, value = word.partition("=")
        flag = flag.lower()
        option = _OPTIONS.get(flag)
        if option is None:
            raise GrammarError(f"unknown option `{flag}`" + did_you_mean(flag, list(_OPTIONS)))
        if option.field in seen:
            raise GrammarError(f"`{flag}` is given twice")
        seen.add(option.field)
        if not option.takes_value:
            if eq:
                raise GrammarError(f"`{flag}` takes no value")
        elif not eq:
            if i >= len(words):
                raise GrammarError(f"`{flag}` needs a value")
            value, i = words[i], i + 1
        if option.takes_value and not value.strip():
            raise GrammarError(f"`{flag}` needs a value")
        raw.append((flag, value))
    return positional, raw


def _refuse_pool_for(verb: Verb | None, pool: str) -> None:
    """`/rollout llm-pool freeze`: the freeze is the install's, not a pool's."""
    if verb is not None and verb in INSTALL_VERBS:
        raise GrammarError(f"`{verb.value}` applies to the whole install, not to `{pool}`: "
                           f"{USAGE_LINES[verb]}", verb=verb)


def asks_help(words: list[str]) -> bool:
    """The words after a verb are one of `help`, `?`, `-h` or `--help`, and nothing else.
    A reason that merely contains `help` among other words stays a reason."""
    return len(words) == 1 and words[0].lower() in HELP_WORDS


def _help_asked(positional: list[str]) -> Verb | None:
    """The verb whose help a help word alone after it asks for: `start help`, `freeze ?`,
    `<pool> rollback help`, `rollback <pool> -h`. Asked before the verb is read as a command,
    so that a verb taking trailing words as its reason (pause, rollback, freeze) does not
    act with the reason "help"; the help answered, nothing else is done."""
    if len(positional) < 2 or not asks_help(positional[-1:]):
        return None
    if len(positional) == 2 and (verb := _verb(positional[0])) is not None:
        return verb
    try:
        verb, _, extra = _shape(positional[:-1])
    except GrammarError:
        return None  # `<pool> help`: refused as it was, by the shape's own words
    return None if extra else verb


def _shape(positional: list[str]) -> tuple[Verb, str | None, list[str]]:
    """`<pool> <verb>`, or `<verb> <pool>` as the CLI writes it, or `list` / `help`."""
    if not positional or asks_help(positional):
        return Verb.HELP, None, []
    first = _verb(positional[0])
    if first in INSTALL_VERBS:
        return first, None, positional[1:]
    if len(positional) == 1:
        if first is not None:
            raise GrammarError(f"`{first.value}` needs a pool (or adapter) name", verb=first)
        hint = did_you_mean(positional[0], _VERB_WORDS)
        if hint:
            raise GrammarError(f"unknown verb `{positional[0]}`{hint}",
                               verb=_close_verb(positional[0]))
        raise GrammarError(f"what should happen to `{positional[0]}`? add a verb, "
                           f"e.g. `/rollout {positional[0]} status`")
    second = _verb(positional[1])
    _refuse_pool_for(second, positional[0])
    # past the install's verbs (returned or refused above), a verb here is a pool's
    if second is not None:
        verb, pool = second, positional[0]
    elif first is not None:
        verb, pool = first, positional[1]
    else:
        # `pool strat` or `strat pool`: name the word that looks like a mistyped verb
        word = positional[1]
        hint = did_you_mean(word, _VERB_WORDS)
        if not hint and did_you_mean(positional[0], _VERB_WORDS):
            word = positional[0]
            hint = did_you_mean(word, _VERB_WORDS)
        raise GrammarError(f"unknown verb `{word}`{hint}", verb=_close_verb(word))
    return verb, pool, positional[2:]
