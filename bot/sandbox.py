"""`rollout-bot sandbox` / `make demo`: the whole system on one machine, nothing to configure.

An emulated Kubernetes API seeded with the demo objects, an embedded Redis, an emulated
Slack with a chat page, the bot behind real signed HTTP, and the leader-elected scheduler,
all wired exactly as in production except for where the URLs point.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import webbrowser
from pathlib import Path
from urllib.parse import quote

import yaml

from bot.bootstrap import Container, build
from bot.graceful_stop import Deadline, Step, stop_gracefully
from bot.scheduling import build_scheduler
from bot.server import SlackServer
from bot.settings import Settings
from bot.stop_signal import exit_now, stop_on_signals, wait_until
from rollout.adapters.analysis_file import load_default
from rollout.scheduler import RolloutScheduler
from sandbox.kube import KubeEmulator
from sandbox.redis_server import RedisServer
from sandbox.serving import ServingWorld
from sandbox.slack import SlackEmulator

SANDBOX_DIR = Path(".sandbox")
#: the shipped analysis on the demo's clock: a run every 5s, so a canary made worse from the
#: side panel is rolled back within seconds (failure_limit 1: two failed runs)
DEMO_TIMINGS = {"interval": "5s", "warmup": "5s", "window": "1m", "min_samples": 30,
                "inconclusive_timeout": "2m"}
CHANNEL = "C0ROLLOUT"
#: how long a stop may take before the sandbox ends at once, if it stops before the bot's
#: settings are read (then ROLLOUT_STOP_TIMEOUT, as `serve`'s)
STOP_SECONDS = 50.0
#: kubectl's arguments to follow the demo route: one line per change, pools and weights
WATCH_ARGS = ("get httproute routes-to-llm -n default -w -o "
              "'custom-columns=VERSION:.metadata.resourceVersion,"
              "POOLS:.spec.rules[0].backendRefs[*].name,"
              "WEIGHTS:.spec.rules[0].backendRefs[*].weight'")


class Sandbox:
    """Every process of the demo, started and stopped together."""

    def __init__(self, *, chat_port: int = 3000, data_dir: Path = SANDBOX_DIR,
                 tick: str = "2s", crds: str | None = None,
                 socket_mode: bool = False) -> None:
        self.data_dir = data_dir
        self.chat_port = chat_port
        self.tick = tick
        self.kube = KubeEmulator(seed="demo", crds=crds)
        self.redis = RedisServer()  # fresh each run, like the emulated cluster
        self.socket_mode = socket_mode  # the bot connects out over a WebSocket, no webhooks
        self.slack = SlackEmulator(signing_secret=secrets.token_hex(16), port=chat_port,
                                   socket_mode=socket_mode)
        self.kubeconfig = data_dir / "kubeconfig"
        self.container: Container | None = None
        self.server: SlackServer | None = None
        self.scheduler: RolloutScheduler | None = None
        # simulated pools and their metrics (Prometheus only where it is installed)
        self.serving: ServingWorld | None = None

    def settings(self) -> Settings:
        return Settings(
            slack_bot_token=self.slack.bot_token, slack_signing_secret=self.slack.signing_secret,
            slack_api_url=self.slack.api_url, redis_url=self.redis.url,
            kubeconfig=str(self.kubeconfig), rollout_approver_groups=["S0REVIEWERS"],
            rollout_allowed_channels=[CHANNEL], rollout_notify_channel=CHANNEL,
            rollout_tick=self.tick, rollout_leader_ttl="6s", rollout_reminder="5m",
            prometheus_url=self.prometheus_url,
            rollout_analysis_file=str(self.analysis_file) if self.prometheus_url else "",
            slack_app_token=self.slack.app_token if self.socket_mode else "",
        )

    @property
    def chat_url(self) -> str:
        """The chat page as alice; with the canary controls when the serving world runs."""
        serving = f"&serving={quote(self.serving.url, safe='')}" if self.serving else ""
        return f"{self.slack.url}/?user=U0ALICE&channel={CHANNEL}{serving}"

    @property
    def analysis_file(self) -> Path:
        return self.data_dir / "analyses.yaml"

    def write_analysis_file(self) -> Path:
        """The shipped analyses with the demo's timings, as a file the bot loads like any."""
        shipped = load_default().model_dump(mode="json", exclude_defaults=False)
        for spec in shipped["analyses"].values():
            spec.update(DEMO_TIMINGS)
        header = "# The sandbox's analysis: the shipped default on a demo clock.\n"
        self.analysis_file.write_text(header + yaml.safe_dump(shipped, sort_keys=False))
        return self.analysis_file

    @property
    def prometheus_url(self) -> str:
        world = self.serving
        return world.prometheus.url if world and world.prometheus else ""

    def start(self) -> Sandbox:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.kube.start()
        self.kube.write_kubeconfig(self.kubeconfig)
        self.serving = ServingWorld(kube_url=self.kube.url,
                                    prometheus=shutil.which("prometheus") is not None).start()
        self.redis.start()
        self.slack.start()
        self.write_analysis_file()
        settings = self.settings()
        self.container = build(settings, watch=True)
        self.scheduler = build_scheduler(self.container)
        self.server = SlackServer(settings, container=self.container,
                                  socket_mode=self.socket_mode).start()
        self.slack.events_url = self.server.events_url
        self.scheduler.start()
        return self

    @property
    def stop_timeout(self) -> float:
        """ROLLOUT_STOP_TIMEOUT, as `serve` reads it (the default before the bot started)."""
        return self.container.settings.rollout_stop_timeout if self.container else STOP_SECONDS

    def stop(self, timeout: float | Deadline | None = None) -> None:
        """Stop every part in turn, the bot's waits within `timeout` (seconds, or the stop's
        deadline; ROLLOUT_STOP_TIMEOUT by default); a part that fails does not keep the rest
        running."""
        deadline = Deadline.of(self.stop_timeout if timeout is None else timeout)
        for name, step in self.stop_steps():
            try:
                step(deadline)
            except Exception as exc:  # keep stopping the rest
                print(f"while stopping {name}: {exc}")

    def stop_steps(self) -> list[Step]:
        """The parts to stop, in order: the bot's (whose waits take what is left of the
        deadline), then the world's servers and processes."""
        steps: list[Step] = []
        if (scheduler := self.scheduler) is not None:
            steps.append(("scheduler", lambda _: scheduler.stop()))
        if self.server is not None:
            steps.append(("server", self.server.stop))
        if self.container is not None:
            steps.append(("connections", self.container.close))
        if (serving := self.serving) is not None:
            steps.append(("serving", lambda _: serving.stop()))
        steps += [("slack", lambda _: self.slack.stop()), ("kube", lambda _: self.kube.stop()),
                  ("redis", lambda _: self.redis.close())]
        return steps

    def end_processes(self) -> None:
        """Kill the servers that run as processes of their own (Redis, Prometheus): this
        process is about to end without its stop, and they would outlive it."""
        self.redis.kill()
        if self.serving is not None and self.serving.prometheus is not None:
            self.serving.prometheus.kill()

    def banner(self) -> str:
        kc = shlex.quote(str(self.kubeconfig.resolve()))
        env = f"KUBECONFIG={kc} REDIS_URL={self.redis.url}"
        # the CLI updates the chat page's cards as the bot does
        env += (f" SLACK_BOT_TOKEN={self.slack.bot_token} SLACK_API_URL={self.slack.api_url}"
                f" ROLLOUT_NOTIFY_CHANNEL={CHANNEL}")
        if self.prometheus_url:  # rollouts the CLI starts are gated as the chat's are
            env += (f" PROMETHEUS_URL={self.prometheus_url} ROLLOUT_ANALYSIS_FILE="
                    f"{shlex.quote(str(self.analysis_file.resolve()))}")
        return "\n".join([
            "The rollout sandbox is running. Ctrl-C stops it.",
            "",
            f"  chat page     {self.chat_url}",
            f"  bot           {self.server.url if self.server else '?'} "
            + ("(Socket Mode; /healthz, /readyz, /metrics)" if self.socket_mode
               else "(/slack/events, /healthz, /readyz, /metrics)"),
            f"  kubernetes    {self.kube.url}   kubeconfig {kc}",
            f"  redis         {self.redis.url}",
            *self._serving_lines(),
            "",
            "In the chat page, as alice (an on-call engineer) in #llm-rollouts:",
            "  /rollout llm-pool-version-2 start --interval 30s",
            "then switch to bob or carol (reviewers) and click Approve; or try",
            "  /rollout llm-pool-version-2 start --steps 10,50,100 --interval 10s --auto",
            "  (bob or carol clicks Approve plan, then the steps apply on their own)",
            "  /rollout llm-new start --route llm-route      (a node update adds the pool)",
            "",
            "Watch the weights move (one line per change):",
            f"  kubectl --kubeconfig {kc} {WATCH_ARGS}",
            "Drive it without Slack (cards still appear in #llm-rollouts):",
            f"  {env} .venv/bin/rollout-bot status llm-pool-version-2",
        ])

    def _serving_lines(self) -> list[str]:
        """Where the simulated pools' metrics and knobs are, and what gates the steps."""
        if self.serving is None:
            return []
        url = self.serving.url
        gate = (f"canary analysis from {self.analysis_file} gates each step"
                if self.prometheus_url else
                "not installed: metrics only, steps are not gated on them")
        return [
            f"  prometheus    {self.prometheus_url or '-'}   ({gate})",
            f"  serving       {url}/knobs   (simulated pools' metrics and knobs)",
            "    make the canary worse: the chat page's side panel, or curl -X POST "
            f"{url}/knobs/llm-pool-version-2 -d '{{\"error_rate\": 0.2}}'",
        ]


def run_sandbox(*, port: int = 3000, open_browser: bool = True, crds: str | None = None,
                socket_mode: bool = False) -> int:
    """Run the sandbox until SIGINT or SIGTERM, then stop it within ROLLOUT_STOP_TIMEOUT, as
    `serve` stops; a second signal, or a stop that outlasts it, ends the process at once,
    its Redis and Prometheus killed first so that nothing of it is left running."""
    sandbox = Sandbox(chat_port=port, crds=crds, socket_mode=socket_mode)

    def end_now(code: int) -> None:
        try:
            sandbox.end_processes()
        finally:
            exit_now(code)

    stop = stop_on_signals(exit=end_now)
    try:
        sandbox.start()
        print(sandbox.banner(), flush=True)
        if open_browser:
            webbrowser.open(sandbox.chat_url)
        wait_until(stop)
        print(f"Stopping the sandbox (within {sandbox.stop_timeout:g}s; a second Ctrl-C ends "
              "it at once).", flush=True)
    finally:
        stop_gracefully(sandbox.stop_steps(), Deadline(sandbox.stop_timeout), exit=end_now)
    return 0
