"""`rollout-bot`: the servers, the sandbox, and break-glass operations without Slack.

Operations go through the same RolloutService as Slack, with the actor recorded as
`cli:<user>` (or `--as NAME`, with the operating-system login beside it), so the CLI is
audited and fenced like any click. It is break-glass: whoever holds the cluster and Redis
credentials may run it, so Slack's approver and channel rules do not apply here; the domain's
own rules (two-person approval of steps and of automatic plans) do.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

from bot import logs
from bot.json_output import result_json
from bot.settings import Settings, SettingsError, load_settings
from bot.text import history_lines, rollout_detail, rollout_line, status_lines
from bot.watch import watch, watch_every
from handlers.commands import INSTALL_VERBS, CommandRequest, CommandResult, Verb, run_command
from handlers.grammar import (
    INSTALL_WIDE,
    analysis_value,
    approvals_value,
    asks_help,
    duration_value,
    keep_value,
    reason_value,
    step_value,
    steps_value,
)
from handlers.mentions import literal, plain
from rollout.domain import names
from rollout.domain.errors import (
    InvalidInput,
    NeedsOperator,
    Refused,
    RolloutError,
    Superseded,
    TemporaryFailure,
    Unauthorized,
    Unrecorded,
)
from rollout.domain.models import Actor, Phase, Via

if TYPE_CHECKING:
    from bot.card_updates import CommandCards

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_RETRY, EXIT_OPERATOR, EXIT_SUPERSEDED = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130  # as shells report Ctrl-C
#: said below a refusal the audit could not take (Redis out of reach, say): it still stands
UNAUDITED_NOTE = ("note: the refusal above could not be recorded in the audit (`-v` says "
                  "why); it stands all the same, and nothing was changed")
_T = TypeVar("_T")

OPERATIONS = [v for v in Verb if v is not Verb.HELP]


class _OneLineParser(argparse.ArgumentParser):
    """argparse answers bad input with its whole usage block; the CLI answers in one line,
    as it does every other refusal, with where to read more. An option given twice is
    refused, as the Slack grammar refuses it: argparse kept the last (`pause --reason a
    --reason b` recorded `b` alone), and said nothing."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"error: {message} (see `{self.prog} --help`)\n")

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = kwargs.get("action")
        if args and str(args[0]).startswith("-"):
            if action in (None, "store"):
                kwargs["action"] = _Once
            elif action == "store_true":
                kwargs.update(action=_Once, nargs=0, const=True, default=False)
        return super().add_argument(*args, **kwargs)


class _Once(argparse.Action):
    """Stores an option's value (or, with `nargs=0`, its `const`), once."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given: set[str] = namespace.__dict__.setdefault("_given_options", set())
        if self.dest in given:
            parser.error(f"{'/'.join(self.option_strings)} is given twice")
        given.add(self.dest)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def _port(value: str) -> int:
    """A TCP port to listen on, 1 to 65535."""
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {value!r}")
    return port


def _crd_dir(value: str) -> str:
    """A directory given for the official CRDs must hold some: one that does not exist (a
    typo) was taken, and every custom resource then went unchecked with a warning."""
    directory = Path(value)
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a directory (`make crds` writes "
                                         "the official CRDs to .sandbox/crds)")
    if not any(directory.glob("*.yaml")):
        raise argparse.ArgumentTypeError(f"{value!r} holds no *.yaml file (`make crds` "
                                         "writes the official CRDs to .sandbox/crds)")
    return value


#: options whose value may begin with `-` (a negative interval is refused by its own rule,
#: with a clear reason, rather than read as an unknown option)
_VALUE_OPTIONS = frozenset({"--interval", "--every", "--keep", "--steps", "--approvals",
                            "--reason", "--as", "--step"})
_SHORT_OPTIONS = frozenset({"-h", "-n", "-o", "-v", "-w"})


def join_option_values(argv: Sequence[str]) -> list[str]:
    """`--interval -5m` as `--interval=-5m`, so its value reaches the interval parser."""
    joined: list[str] = []
    args = iter(argv)
    for word in args:
        if word in _VALUE_OPTIONS:
            value = next(args, None)
            if value is not None and value.startswith("-") and not value.startswith("--") \
                    and value not in _SHORT_OPTIONS:
                joined.append(f"{word}={value}")
                continue
            joined.append(word)
            if value is not None:
                joined.append(value)
            continue
        joined.append(word)
    return joined


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="rollout-bot",
        description="Step-by-step InferencePool rollouts through HTTPRoute weights, "
                    "driven from Slack or from this CLI.",
    )
    parser.add_argument("--version", action="version", version=f"rollout-bot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the Slack app (HTTP or Socket Mode)")
    serve.add_argument("--port", type=_port, default=3000)
    serve.add_argument("--socket-mode", action="store_true",
                       help="connect out to Slack with SLACK_APP_TOKEN instead of webhooks")

    sandbox = sub.add_parser("sandbox", help="run the whole system on this machine (the demo)")
    sandbox.add_argument("--port", type=_port, default=3000, help="port of the chat page")
    sandbox.add_argument("--no-browser", action="store_true", help="do not open a browser")
    sandbox.add_argument("--crds", type=_crd_dir, default=None, metavar="DIR",
                         help="directory of the official CRDs (default: "
                              "$ROLLOUT_SANDBOX_CRDS, else .sandbox/crds)")
    sandbox.add_argument("--socket-mode", action="store_true",
                         help="the bot takes Slack's events over a Socket Mode WebSocket")

    emulator = sub.add_parser("emulator", help="run the Kubernetes API emulator alone")
    emulator.add_argument("--port", type=_port, required=True)
    emulator.add_argument("--kubeconfig", required=True, help="where to write its kubeconfig")
    emulator.add_argument("--seed", choices=["demo", "empty"], default="demo")
    emulator.add_argument("--crds", type=_crd_dir, default=None, metavar="DIR",
                          help="directory of the official CRDs (default: "
                               "$ROLLOUT_SANDBOX_CRDS, else .sandbox/crds)")

    sched = sub.add_parser("scheduler",
                           help="run only the step scheduler (leader-elected), without Slack")
    sched.add_argument("--kubeconfig", default=None, help="kubeconfig (default: KUBECONFIG)")
    sched.add_argument("--redis-url", default=None, help="Redis URL (default: REDIS_URL)")
    sched.add_argument("--port", type=_port, default=None,
                       help="serve /healthz, /readyz and /metrics on this port (default: none)")

    common = _OneLineParser(add_help=False)
    common.add_argument("--namespace", "-n", default=None,
                        help="namespace (default: ROLLOUT_NAMESPACE or default)")
    common.add_argument("--as", dest="actor", default=None,
                        help="actor name recorded in the audit (default: your login)")
    common.add_argument("--kubeconfig", default=None, help="kubeconfig (default: KUBECONFIG)")
    common.add_argument("--redis-url", default=None, help="Redis URL (default: REDIS_URL)")
    common.add_argument("--verbose", "-v", action="store_true",
                        help="log what the bot does underneath, on stderr (or set LOG_LEVEL)")
    for name, text in RECOVERY.items():
        op = sub.add_parser(name, parents=[common], help=text)
        op.set_defaults(verb_help=op.format_help)
        op.add_argument("pool", metavar="POOL", help="the canary InferencePool")
        if name == "recover":
            op.add_argument("--without-analysis", action="store_true",
                            help="bring it back without the canary analysis its record "
                                 "names, when this bot cannot run that analysis any more")
    for verb in OPERATIONS:
        op = sub.add_parser(verb.value, parents=[common], help=_HELP[verb])
        op.set_defaults(verb_help=op.format_help)
        _verb_options(op, verb)
    return parser


def _verb_options(op: argparse.ArgumentParser, verb: Verb) -> None:
    """The options one verb of the CLI takes, as the Slack grammar does."""
    if verb not in INSTALL_VERBS:
        op.add_argument("pool", metavar="POOL", help="the canary InferencePool")
    if verb is Verb.START:
        op.add_argument("--route", help="HTTPRoute to use (needed to add a new pool)")
        op.add_argument("--stable", help="the pool to shift from, where a rule has several")
        op.add_argument("--steps", default=None, help="canary percentages, e.g. 10,25,50,100")
        op.add_argument("--interval", default=None, help="bake time per step: 90s, 15m, 2h")
        op.add_argument("--auto", action="store_true",
                        help="step up automatically after each bake, without approvals")
        op.add_argument("--approvals", default=None, metavar="N",
                        help="distinct approvers needed per step (default 1)")
        op.add_argument("--rewrite", default=None, metavar="NAME",
                        help="adapter rollout: shift this InferenceModelRewrite's rule from "
                             "the old adapter (--stable, where the rule has several) to "
                             "POOL, here the new adapter's name")
        op.add_argument("--allow-gitops", action="store_true",
                        help="start although Argo CD, Flux or another applier owns the "
                             "weights; a revert by it then pauses the rollout as drift")
        op.add_argument("--analysis", default=None, metavar="NAME",
                        help="the canary analysis gating each step (default: the "
                             "analysis file's default; needs PROMETHEUS_URL)")
        op.add_argument("--keep", default=None, metavar="DURATION",
                        help="how long the old pool stays in the route after completion "
                             "(default: ROLLOUT_KEEP)")
    if verb is Verb.APPROVE:
        op.add_argument("--step", default=None, metavar="N",
                        help="the step this approval is for (1 is the first; default: "
                             "the pending one when the command reads the rollout)")
    if verb is Verb.PROMOTE:
        op.add_argument("--skip-analysis", action="store_true",
                        help="promote although the canary analysis does not pass "
                             "(audited)")
    if verb in (Verb.PAUSE, Verb.ROLLBACK, Verb.FREEZE):
        op.add_argument("--reason", default="", help="why, for the audit and the card")
    if verb in READ_VERBS:
        op.add_argument("--output", "-o", choices=["text", "json"], default="text",
                        help="json: the records as JSON, for scripts")
    if verb is Verb.STATUS:
        op.add_argument("--watch", "-w", action="store_true",
                        help="follow the rollout until it finishes or pauses (exit 0 "
                             "once completed, 1 otherwise)")
        op.add_argument("--every", default=None, metavar="DURATION",
                        help="how often --watch looks (default 2s; only with --watch)")


READ_VERBS = (Verb.STATUS, Verb.LIST, Verb.HISTORY)


def _version() -> str:
    try:
        return metadata.version("inference-rollout-bot")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


RECOVERY = {
    "recover": "after Redis was lost: rebuild the rollout from the route's annotations "
               "(it comes back paused)",
    "release": "after Redis was lost: drop the bot's marker from the route, leaving the "
               "weights as they are",
}

_HELP = {
    Verb.START: "start a rollout of POOL next to its stable pool",
    Verb.APPROVE: "approve the pending step",
    Verb.APPROVE_PLAN: "approve a plan with automatic steps (not by its author)",
    Verb.PAUSE: "pause the rollout (a safety action)",
    Verb.RESUME: "resume a paused rollout",
    Verb.ROLLBACK: "restore the weights from before start (a safety action)",
    Verb.PROMOTE: "skip the remaining steps: all traffic to POOL",
    Verb.RETIRE: "after completion: remove the old pool from the route (no rollback after it; "
                 "not by who started or completed the rollout)",
    Verb.STATUS: "show the rollout and what the cluster shows",
    Verb.LIST: "list active and recent rollouts",
    Verb.HISTORY: "list every recorded decision of the rollout",
    Verb.FREEZE: "hold every new start and step-up of the install (rollback and pause work)",
    Verb.UNFREEZE: "lift the freeze: held steps go ahead at the next tick or approval",
}


def request_from_args(args: argparse.Namespace, namespace: str) -> CommandRequest:
    """The request the CLI's arguments make, each value read by the Slack grammar's own
    readers (digits 0-9, the same ranges, the same words). A reason is kept as Slack would
    have escaped it, as every reason is: the card shows it, and `<!channel>` typed here must
    not mention everyone from there."""
    verb = Verb(args.command)
    if verb in INSTALL_VERBS and args.namespace is not None:
        # `freeze -n prod` froze every namespace, and `list -n prod` listed them all
        raise InvalidInput(f"`--namespace` does not apply to `{verb.value}`: "
                           f"{INSTALL_WIDE[verb]}")
    if getattr(args, "watch", False) and getattr(args, "output", "text") == "json":
        raise InvalidInput("`--watch` prints a line for people at each change; "
                           "`--output json` is for one look: drop one of them")

    request = CommandRequest(
        verb=verb, pool=getattr(args, "pool", None), namespace=args.namespace or namespace,
        route=getattr(args, "route", None), stable=getattr(args, "stable", None),
        steps=_read("--steps", getattr(args, "steps", None), steps_value),
        interval_seconds=_read("--interval", getattr(args, "interval", None), duration_value),
        auto=getattr(args, "auto", False),
        approvals=_read("--approvals", getattr(args, "approvals", None), approvals_value),
        rewrite=getattr(args, "rewrite", None),
        allow_gitops=getattr(args, "allow_gitops", False),
        analysis=_read("--analysis", getattr(args, "analysis", None), analysis_value),
        reason=literal(reason_value("--reason", getattr(args, "reason", ""))),
        step=_read("--step", getattr(args, "step", None), step_value),
        keep_seconds=_read("--keep", getattr(args, "keep", None), keep_value),
        skip_analysis=getattr(args, "skip_analysis", False),
    )
    request.check()
    return request


def _read(flag: str, value: str | None, reader: Callable[[str, str], _T]) -> _T | None:
    """An option's value as the Slack grammar reads it; None when it is not given."""
    return None if value is None else reader(flag, value)


def cli_actor(name: str | None, *, login: str | None = None) -> Actor:
    """`cli:NAME` (or `cli:<login>`), with the operating-system login kept beside it: `--as`
    is what a person claims, the login is who ran the command."""
    login = login or _login()
    user = names.actor_name(name) if name is not None else login
    return Actor(id=f"cli:{user}", name=f"cli:{user}", via=Via.CLI, login=login)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: a bare container
        return "unknown"


def render(result: CommandResult) -> list[str]:
    """What a command printed on the terminal: the text people typed as they typed it."""
    return [plain(line) for line in _rendered(result)]


def _rendered(result: CommandResult) -> list[str]:
    req = result.request
    if result.outcome is not None:
        lines = [result.outcome.message]
        if result.outcome.rollout is not None and req.verb is Verb.START and result.ok:
            lines += ["", *rollout_detail(result.outcome.rollout)]
        return lines
    if result.status is not None:
        return status_lines(result.status)
    if req.verb is Verb.LIST:
        return [rollout_line(r) for r in result.rollouts] or ["no rollouts"]
    if req.verb is Verb.HISTORY:
        return history_lines(result.history)
    return []


def configure_logging(args: argparse.Namespace, err: TextIO) -> None:
    """The answer goes to stdout; what happens underneath (a lock retried, a fence counter
    raised) is logged on stderr only when asked for, with -v or LOG_LEVEL."""
    level = os.environ.get("LOG_LEVEL", "").upper() or \
        ("INFO" if getattr(args, "verbose", False) else "ERROR")
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name(_LOG_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _LOG_HANDLER]:
        root.removeHandler(old)  # the previous run's, when main() runs more than once
    root.addHandler(handler)
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")


_LOG_HANDLER = "rollout-bot-cli"


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("kubeconfig", args.kubeconfig),
                                   ("redis_url", args.redis_url)) if v}
    return load_settings(**overrides)


def _scheduler(args: argparse.Namespace) -> int:
    """Logs JSON lines on stderr, as `serve` does: the scheduler runs as a server."""
    from bot.bootstrap import build
    from bot.scheduling import run_scheduler_forever

    _server_logging()
    container = build(_settings_from(args), watch=True)
    try:
        run_scheduler_forever(container, port=args.port, version=_version())
    finally:
        container.close()
    return EXIT_OK


def run_recovery(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.bootstrap import build
    from bot.card_updates import command_cards

    settings = _settings_from(args)
    namespace = names.namespace_name(args.namespace or settings.rollout_namespace)
    canary = names.model_name("pool", args.pool)
    actor = cli_actor(args.actor)
    container = build(settings)
    cards = command_cards(container)
    try:
        if args.command == "recover":
            outcome = container.service.recover(namespace=namespace, canary=canary,
                                                actor=actor,
                                                without_analysis=args.without_analysis)
        else:
            outcome = container.service.release(namespace=namespace, canary=canary,
                                                actor=actor)
    finally:
        container.close()
        _card_note(cards, err)
    print(outcome.message, file=out)
    return EXIT_OK


def run_operation(args: argparse.Namespace, out: TextIO, err: TextIO,
                  sleep: Callable[[float], None] = time.sleep) -> int:
    settings = _settings_from(args)
    request = request_from_args(args, settings.rollout_namespace)
    actor = cli_actor(args.actor)
    every = watch_every(getattr(args, "every", None), watching=getattr(args, "watch", False))
    from bot.bootstrap import build
    from bot.card_updates import command_cards

    container = build(settings)
    changes = Verb(args.command) not in READ_VERBS
    cards = command_cards(container) if changes else None
    try:
        if getattr(args, "watch", False):
            service = container.service
            try:
                final = watch(lambda: service.status(request.ref), out, sleep=sleep,
                              now=container.clock.now, every=every)
            except KeyboardInterrupt:  # Ctrl-C ends a watch: the person saw enough
                return EXIT_INTERRUPTED
            done = final.rollout is not None and final.rollout.phase is Phase.COMPLETED
            return EXIT_OK if done else EXIT_FAILED
        try:
            result = run_command(container.service, request, actor)
        except Unauthorized as exc:  # the two-person rule and the like: a decision, audited
            if not container.service.record_denial(
                    actor=actor, action=request.verb.value,
                    ref=request.ref if request.pool else None, reason=str(exc)):
                exc.add_note(UNAUDITED_NOTE)  # the refusal stays the answer, and its exit
            raise
    finally:  # a refusal may have saved (and shown) a drift pause: the note counts then too
        container.close()
        _card_note(cards, err)
    if getattr(args, "output", "text") == "json":
        print(result_json(result), file=out)
        return EXIT_OK if result.ok else EXIT_FAILED
    for line in render(result):
        print(line, file=out)
    return EXIT_OK if result.ok else EXIT_FAILED


def _card_note(cards: CommandCards | None, err: TextIO) -> None:
    """Slack's failures never change the exit code; the card being stale is worth a line."""
    note = cards.note() if cards is not None else None
    if note:
        print(note, file=err)


def _errors(call: Callable[[], int], err: TextIO) -> int:
    """Rollout errors become one clear line and an exit code a script can act on, in the
    words as typed (the store keeps a reason as Slack escapes it)."""
    try:
        return call()
    except SettingsError as exc:
        print(f"error: {plain(str(exc))}", file=err)
        return EXIT_REFUSED
    except Refused as exc:
        print(f"refused: {plain(str(exc))}", file=err)
        for note in getattr(exc, "__notes__", ()):  # what befell the refusal after it
            print(plain(note), file=err)
        return EXIT_REFUSED
    except Unrecorded as exc:
        print(f"landed, not recorded yet: {plain(str(exc))}", file=err)
        return EXIT_RETRY
    except TemporaryFailure as exc:
        print(f"unavailable: {plain(str(exc))} (retry in {exc.retry_after:.0f}s)", file=err)
        return EXIT_RETRY
    except NeedsOperator as exc:
        print(f"needs an operator: {plain(str(exc))}", file=err)
        return EXIT_OPERATOR
    except Superseded as exc:
        print(f"superseded: {plain(str(exc))}", file=err)
        return EXIT_SUPERSEDED
    except RolloutError as exc:
        print(f"error: {plain(str(exc))}", file=err)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """`sleep` is what `status --watch` waits with between looks (a test passes its own)."""
    out, err = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    args, unrecognized = parser.parse_known_args(
        join_option_values(sys.argv[1:] if argv is None else argv))
    verb_help = _verb_help(args, unrecognized)
    if verb_help is not None:
        print(verb_help, file=out, end="")
        return EXIT_OK
    if unrecognized:  # as parse_args refuses them
        parser.error(f"unrecognized arguments: {' '.join(unrecognized)}"
                     + _reason_hint(args, unrecognized))
    if args.command == "serve":
        return _errors(lambda: _serve(args), err)
    if args.command in ("sandbox", "emulator") and importlib.util.find_spec("sandbox") is None:
        print(f"error: `{args.command}` needs the sandbox, which this installation leaves out "
              "(the production image does); run it from a source checkout: make demo", file=err)
        return EXIT_FAILED
    if args.command == "sandbox":
        from bot.sandbox import run_sandbox

        return _errors(lambda: run_sandbox(port=args.port, open_browser=not args.no_browser,
                                           crds=args.crds, socket_mode=args.socket_mode), err)
    if args.command == "scheduler":
        return _errors(lambda: _scheduler(args), err)
    if args.command == "emulator":
        from sandbox.kube import serve_forever

        serve_forever(args.port, args.kubeconfig, seed=args.seed, crds=args.crds)
        return EXIT_OK
    configure_logging(args, err)
    if args.command in RECOVERY:
        return _errors(lambda: run_recovery(args, out, err), err)
    return _errors(lambda: run_operation(args, out, err, sleep), err)


def _reason_hint(args: argparse.Namespace, unrecognized: list[str]) -> str:
    """Slack takes a reason as the words after the pool (`/rollout POOL rollback too
    slow`); the CLI takes it in `--reason`, and one who typed it as in Slack is told so.
    Refused all the same: stray words are not taken for a reason the audit keeps."""
    if not hasattr(args, "reason") or args.reason \
            or any(word.startswith("-") for word in unrecognized):
        return ""
    return f"; a reason goes in --reason: --reason {shlex.quote(' '.join(unrecognized))}"


def _verb_help(args: argparse.Namespace, unrecognized: list[str]) -> str | None:
    """`rollout-bot freeze help`, `rollout-bot rollback POOL ?`, `rollout-bot pause help`:
    a help word alone after the verb (or in POOL's place) answers the verb's help, as
    `--help` does and as Slack answers `/rollout freeze help`; nothing else is done. None
    for anything else, which is then run or refused as before."""
    help_of: Callable[[], str] | None = getattr(args, "verb_help", None)
    if help_of is None:
        return None
    pool = getattr(args, "pool", None)
    if asks_help(unrecognized) or (not unrecognized and pool is not None and asks_help([pool])):
        return help_of()
    return None


def _serve(args: argparse.Namespace) -> int:
    """Logs go out as JSON from the first line; a start-up refusal is logged as well as
    printed, so `kubectl logs` shows why a pod did not start."""
    from bot.server import serve
    from bot.settings import require_for_serve

    _server_logging()
    try:
        settings = load_settings()
        require_for_serve(settings, socket_mode=args.socket_mode)
    except SettingsError as exc:
        _startup_failed(str(exc))
        raise
    serve(settings, port=args.port, socket_mode=args.socket_mode, version=_version())
    return EXIT_OK


def _server_logging() -> None:
    """JSON lines from the first line on; a bad LOG_LEVEL is logged as well as refused."""
    try:
        logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    except ValueError as exc:
        logs.configure("INFO")
        _startup_failed(str(exc))
        raise SettingsError(str(exc)) from None


def _startup_failed(reason: str) -> None:
    logging.getLogger("rollout-bot").error("start-up refused", extra={
        "event": "startup_failed", "reason": reason})
