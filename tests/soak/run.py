"""The soak itself: build the world, drive many rollouts at once through the CLI and Slack
while faults are injected, clear the faults, converge, and judge what landed."""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rollout.adapters.store import RedisStore
from rollout.domain.errors import StoreUnavailable
from rollout.domain.models import ACTIVE_PHASES, Phase, Rollout
from rollout.redis_connect import connect
from sandbox.kube.faults import Fault
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from sandbox.slack.faults import SlackFault
from tests.soak import checks
from tests.soak.world import (
    CHANNEL,
    NAMESPACE,
    SECRET,
    TOKEN,
    Answer,
    Process,
    Replica,
    SlackAsk,
    SlackDelivery,
    Target,
    bot_env,
    run_cli,
    seed_targets,
)
from tests.support.real_cluster import KubeWorld, RealCluster, real_cluster

ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"


@dataclass
class Options:
    duration: float = 120.0
    seed: int = 1
    targets: int = 6
    replicas: int = 3
    slack_every: int = 3  # every third target is driven through Slack
    fault_every: float = 4.0  # mean seconds between faults
    logs: Path | None = None  # keep every process's log (and Redis's files) here


@dataclass
class Soak:
    """The running world and what the soak recorded of it."""

    options: Options
    world: KubeWorld
    cluster: RealCluster
    redis: RedisServer
    slack: SlackEmulator
    env: dict[str, str]
    store: RedisStore
    targets: list[Target]
    replicas: list[Replica]
    scheduler: Process
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[Answer] = field(default_factory=list)
    slack_asks: list[SlackAsk] = field(default_factory=list)
    slack_deliveries: dict[str, SlackDelivery] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    activity: Counter[str] = field(default_factory=Counter)
    slack_lock: threading.Lock = field(default_factory=threading.Lock)
    redis_lock: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- what the world shows ----------------------------------------------------------------

    def route(self, target: Target) -> dict[str, Any]:
        found: dict[str, Any] | None = self.world.get(*ROUTES, NAMESPACE, target.route)
        assert found is not None, f"{target.route} is gone"
        return found

    def current(self, target: Target) -> tuple[str | None, Rollout | None]:
        """The rollout the route's marker names, and the store's record of it (None while
        Redis restarts)."""
        rid = checks.route_marker(self.route(target)).get("rollout")
        if rid is None:
            return None, None
        try:
            return str(rid), self.store.get(str(rid))
        except StoreUnavailable:  # Redis restarting: ask again later
            return str(rid), None

    def driven(self, target: Target) -> tuple[str | None, Rollout | None]:
        """What a person would act on next: the rollout the marker names while it is active,
        else one the store holds active on the route without a marker yet (a start whose
        first write was cut short: its card still asks for the next step), else the marker's."""
        rid, rollout = self.current(target)
        if (rid is not None and rollout is None) or (rollout is not None and rollout.active):
            return rid, rollout
        try:
            unmarked = self.active(target)
        except StoreUnavailable:
            return rid, None
        return (unmarked[0].id, unmarked[0]) if unmarked else (rid, rollout)

    def active(self, target: Target) -> list[Rollout]:
        """Every rollout the store holds active on the route: the one its marker names, and a
        start recorded whose first write never landed (the first step would add its marker)."""
        ids = {self.store.latest_for(NAMESPACE, pool) for pool in target.pools}
        ids.add(self.current(target)[0])
        found = [self.store.get(i) for i in ids if i]
        return [r for r in found if r is not None and r.phase in ACTIVE_PHASES
                and r.target.name == target.route]

    # ---- asking ----------------------------------------------------------------------------

    def cli(self, verb: str, canary: str, *extra: str, rollout_id: str | None = None,
            step: int | None = None, actor: str = "bob") -> Answer:
        args = [verb, canary, *extra, "--as", actor]
        if step is not None:
            args += ["--step", str(step + 1)]
        started = time.time()
        code, output = run_cli(self.env, args)
        answer = Answer(verb, canary, rollout_id, step, started, time.time(), code, output)
        with self.lock:
            self.answers.append(answer)
            self.activity[f"cli {verb} exit {code}"] += 1
        return answer

    def slash(self, user: str, text: str, target: Target, *, rollout_id: str | None = None,
              step: int | None = None) -> None:
        """Send `/rollout text` as `user` and wait, as a person does, for its answer."""
        words = text.split()
        with self.slack_lock:
            replica = self._aim_slack()
            url_id = self._ask(target, words[1], words[0], rollout_id, step)
            delivery = SlackDelivery(status=None, replica=replica, at=time.time())
            with contextlib.suppress(Exception):  # a replica killed under the delivery
                status, _, ack = self.slack.send_slash_command(user, CHANNEL, text,
                                                               response_url_id=url_id)
                delivery = replace(delivery, status=status, ack=ack)
                self.activity[f"slack command {words[1]} http {status}"] += 1
        self._await_answer(url_id, delivery)

    def click_approve(self, rollout: Rollout, target: Target) -> bool:
        """Press Approve on the rollout's card, as drawn now, and wait for its answer; False
        when there is none."""
        if rollout.card is None:
            return False
        with self.slack_lock:
            msg = self.slack.message(rollout.card.channel, rollout.card.ts)
            value = _button(msg.blocks if msg else [], "rollout_approve")
            if msg is None or value is None:
                return False
            replica = self._aim_slack()
            step = int(json.loads(value)["s"])  # the step the button names (handlers.cards)
            url_id = self._ask(target, "approve", rollout.canary, rollout.id, step)
            delivery = SlackDelivery(status=None, replica=replica, at=time.time())
            with contextlib.suppress(Exception):
                status, _, ack = self.slack.click_button(BOB, rollout.card.channel, msg.ts,
                                                         "rollout_approve", value,
                                                         response_url_id=url_id)
                delivery = replace(delivery, status=status, ack=ack)
                self.activity[f"slack click approve http {status}"] += 1
        self._await_answer(url_id, delivery, card=(rollout.card.channel, msg.ts, msg.blocks))
        return True

    def _ask(self, target: Target, verb: str, canary: str, rollout_id: str | None,
             step: int | None) -> str:
        """Record a Slack request before it is sent; its response URL is named after it."""
        with self.lock:
            url_id = f"soak-{len(self.slack_asks)}"
            self.slack_asks.append(SlackAsk(target.route, verb, canary, rollout_id, step,
                                            time.time(), url_id))
        return url_id

    def _await_answer(self, url_id: str, delivery: SlackDelivery, timeout: float = 30.0, *,
                      card: tuple[str, str, list[dict[str, Any]]] | None = None) -> None:
        """Until the request's answer (not "Working on it") arrives, or `timeout` passes; not
        at all when its delivery said no answer is to come. A click that changed the rollout
        is answered on its card (channel, ts, blocks as clicked), not through the response
        URL: a change of the card ends the wait too, and is recorded. The end of the soak's
        window does not cut the wait short: a request sent just before it was counted as
        acked and never answered when its answer came a moment after."""
        with self.lock:
            self.slack_deliveries[url_id] = delivery
        if not delivery.awaits_answer:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.url_id == url_id and p.text and
                   not p.text.startswith(checks.SLACK_WORKING) for p in self.slack.responses):
                return
            if card is not None and self._card_changed(*card):
                with self.lock:
                    self.slack_deliveries[url_id] = replace(delivery, card_changed=True)
                return
            time.sleep(0.2)

    def _card_changed(self, channel: str, ts: str, clicked: list[dict[str, Any]]) -> bool:
        now = self.slack.message(channel, ts)
        return now is not None and now.blocks != clicked

    def _aim_slack(self) -> int:
        """At a replica that listens, as a load balancer in front of ready pods would; one
        killed after this choice still meets the request, as a pod killed mid-request does.
        Returns which one."""
        alive = [r for r in self.replicas if r.alive]
        ready = [r for r in alive if r.listening]
        chosen = random.choice(ready or alive or self.replicas)
        self.slack.events_url = chosen.events_url
        return self.replicas.index(chosen)


def _button(blocks: list[dict[str, Any]], action_id: str) -> str | None:
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    return None


# ---- drivers -------------------------------------------------------------------------------

def _start_args(soak: Soak, target: Target, rng: random.Random) -> tuple[str, list[str]] | None:
    """Start on the pool at weight 0 (pools swap roles after each completed rollout)."""
    weights = checks.route_weights(soak.route(target))
    a, b = target.pools
    if sorted(weights.values()) != [0, 100]:
        return None
    canary, stable = (b, a) if weights.get(b) == 0 else (a, b)
    steps = rng.choice(["25,50,100", "10,50,100", "50,100"])
    extra = ["--route", target.route, "--stable", stable, "--steps", steps]
    if rng.random() < 0.4:
        extra += ["--auto", "--interval", rng.choice(["1s", "2s"])]
    else:
        extra += ["--interval", "0s"]
    return canary, extra


def _next(soak: Soak, target: Target, rng: random.Random
          ) -> Rollout | tuple[str, list[str]] | None:
    """What a driver acts on next: the route's active rollout, or the start to make (canary
    and arguments); None after a short wait when there is neither (Redis restarting, or a
    route left mid-way by a rollout the store lost)."""
    rid, rollout = soak.driven(target)
    if rid is not None and rollout is None:
        time.sleep(0.5)
        return None
    if rollout is not None and rollout.phase in ACTIVE_PHASES:
        return rollout
    start = _start_args(soak, target, rng)
    if start is None:
        time.sleep(1)
    return start


def drive_cli(soak: Soak, target: Target, rng: random.Random) -> None:
    """One CLI-driven route: at most one approval and one rollback in flight at a time."""
    while not soak.stop.is_set():
        rollout = _next(soak, target, rng)
        if rollout is None:
            continue
        if isinstance(rollout, tuple):
            soak.cli("start", rollout[0], *rollout[1], actor="alice")
            continue
        canary = rollout.canary
        if rollout.phase is Phase.PAUSED:
            verb = "resume" if rng.random() < 0.6 else "rollback"
            soak.cli(verb, canary, rollout_id=rollout.id, actor="carol")
        elif rollout.needs_plan_approval:
            soak.cli("approve-plan", canary, rollout_id=rollout.id, actor="bob")
        elif rollout.phase is Phase.AWAITING_APPROVAL and rollout.pending_step is not None:
            step = rollout.pending_step
            if rng.random() < 0.15:  # an approval racing a rollback
                _race(soak, canary, rollout.id, step)
            else:
                soak.cli("approve", canary, rollout_id=rollout.id, step=step,
                         actor=rng.choice(["bob", "carol"]))
        elif rng.random() < 0.05:
            soak.cli("rollback", canary, rollout_id=rollout.id, actor="carol")
        else:
            time.sleep(0.3)


def _race(soak: Soak, canary: str, rollout_id: str, step: int) -> None:
    rollback = threading.Thread(target=soak.cli, args=("rollback", canary),
                                kwargs={"rollout_id": rollout_id, "actor": "carol"})
    rollback.start()
    soak.cli("approve", canary, rollout_id=rollout_id, step=step, actor="bob")
    rollback.join()
    soak.activity["approve/rollback races"] += 1


def drive_slack(soak: Soak, target: Target, rng: random.Random) -> None:
    """One Slack-driven route: slash commands and Approve clicks, each waiting for its answer
    (which arrives after the ack, through the response URL) as a person does."""
    while not soak.stop.is_set():
        rollout = _next(soak, target, rng)
        if rollout is None:
            continue
        if isinstance(rollout, tuple):
            soak.slash(ALICE, " ".join([rollout[0], "start", *rollout[1]]), target)
        elif rollout.phase is Phase.PAUSED:
            soak.slash(CAROL, f"{rollout.canary} resume", target, rollout_id=rollout.id)
        elif rollout.needs_plan_approval:
            soak.slash(BOB, f"{rollout.canary} approve-plan", target, rollout_id=rollout.id)
        elif rollout.phase is Phase.AWAITING_APPROVAL and rollout.pending_step is not None:
            step = rollout.pending_step
            if rng.random() < 0.5 or not soak.click_approve(rollout, target):
                soak.slash(rng.choice([BOB, CAROL]), f"{rollout.canary} approve --step {step + 1}",
                           target, rollout_id=rollout.id, step=step)
        elif rng.random() < 0.05:
            soak.slash(CAROL, f"{rollout.canary} rollback --reason soak", target,
                       rollout_id=rollout.id)
        time.sleep(rng.uniform(0.3, 1.0))


# ---- faults --------------------------------------------------------------------------------

def _restart(process: Process, rng: random.Random, soak: Soak) -> None:
    process.kill()
    soak.stop.wait(rng.uniform(0.2, 2.0))
    process.start()


def inject_faults(soak: Soak, rng: random.Random) -> None:
    """One fault at a time, at random intervals, until the soak stops."""
    kinds: dict[str, Callable[[], None]] = {
        "replica SIGKILL": lambda: _restart(rng.choice(soak.replicas), rng, soak),
        "scheduler SIGKILL": lambda: _restart(soak.scheduler, rng, soak),
        "redis restart (AOF)": lambda: _restart_redis(soak, rng),
        "redis stall past the timeout": lambda: _stall_redis(soak, rng),
        "kube 500": lambda: soak.cluster.inject(Fault(
            rng.choice(["patch", "get"]), "httproutes", status=500, count=rng.randint(1, 2))),
        "kube stall past timeout": lambda: soak.cluster.inject(Fault(
            "patch", "httproutes", status=None, stall_seconds=3.0)),
        "kube stall then 500": lambda: soak.cluster.inject(Fault(
            rng.choice(["patch", "get"]), "httproutes", status=500, stall_seconds=3.0)),
        "kube answer dropped after apply": lambda: soak.cluster.inject(Fault(
            "patch", "httproutes", status=None, drop_after=True)),
        "kube 5xx after apply": lambda: soak.cluster.inject(Fault(
            "patch", "httproutes", status=None, answer_after=rng.choice([500, 502, 504]))),
        "kube 429": lambda: soak.cluster.inject(Fault(
            rng.choice(["patch", "get"]), "httproutes", status=429, count=rng.randint(1, 3))),
        "slack 429": lambda: soak.slack.inject(SlackFault(
            "*", "ratelimited", count=rng.randint(1, 3), retry_after=1)),
        "slack 500": lambda: soak.slack.inject(SlackFault(
            "*", "internal_error", count=rng.randint(1, 3), status=500)),
    }
    names = sorted(kinds)
    while not soak.stop.wait(rng.expovariate(1 / soak.options.fault_every)):
        kind = rng.choice(names)
        kinds[kind]()
        with soak.lock:
            soak.faults[kind] += 1


def _restart_redis(soak: Soak, rng: random.Random) -> None:
    with soak.redis_lock:
        soak.redis.stop()  # SIGTERM: the AOF is flushed, as a rolling restart does
        soak.stop.wait(rng.uniform(0.2, 1.5))
        soak.redis.start()


def _stall_redis(soak: Soak, rng: random.Random) -> None:
    """Redis frozen past the bot's socket timeout (5 s), then served again: saves in flight
    get no answer and are settled by reading back."""
    with soak.redis_lock:
        soak.redis.freeze()
        try:
            soak.stop.wait(rng.uniform(5.5, 7.0))
        finally:
            soak.redis.thaw()


# ---- converging and judging ----------------------------------------------------------------

def converge(soak: Soak, *, timeout: float = 300.0) -> list[str]:
    """Faults cleared and everything running: roll back every rollout still active, through
    the CLI (its answers are judged like the others), until none is; what did not converge."""
    soak.cluster.clear_faults()
    soak.slack.clear_faults()
    if not soak.redis.running:
        soak.redis.start()
    soak.redis.thaw()
    for process in [*soak.replicas, soak.scheduler]:
        if not process.alive:
            process.start()
    deadline = time.monotonic() + timeout
    stuck: list[str] = []
    for target in soak.targets:
        while True:
            try:
                active = soak.active(target)
            except StoreUnavailable:
                time.sleep(0.5)
                continue
            if not active:
                break
            if time.monotonic() > deadline:
                stuck.append(f"{target.route}: rollout {active[0].id} did not converge")
                break
            soak.cli("rollback", active[0].canary, "--reason", "soak ends",
                     rollout_id=active[0].id, actor="carol")
    time.sleep(5)  # a few ticks: the scheduler reconciles whatever a last write left behind
    return stuck


def judge(soak: Soak, stuck: list[str]) -> checks.Report:
    writes = checks.landed_writes(soak.cluster.requests)
    finals = {t.route: soak.route(t) for t in soak.targets}
    rollouts: dict[str, Rollout | None] = {}
    latest: dict[str, str | None] = {}
    audited: dict[str, set[int]] = {}
    trails: dict[str, str] = {}
    for t in soak.targets:
        newest: Rollout | None = None
        marked = checks.route_marker(finals[t.route]).get("rollout")
        ids = [soak.store.latest_for(NAMESPACE, pool) for pool in t.pools] + [marked]
        for rid in {str(i) for i in ids if i}:
            found = soak.store.get(rid)
            if found is None or (found.phase is Phase.FAILED and found.id != marked):
                continue  # a start that failed before its write took nothing of the route
            rollouts[found.id] = found
            if newest is None or found.created_at > newest.created_at:
                newest = found
        latest[t.route] = newest.id if newest else None
    for written in {w.rollout for w in writes} | {m.get("rollout") for m in
                                                 map(checks.route_marker, finals.values())}:
        if written is None:
            continue
        rid = str(written)
        rollouts[rid] = soak.store.get(rid)
        events = soak.store.audit(rid, limit=1000)
        audited[rid] = {e.step for e in events
                        if e.action in ("step_applied", "recovered") and e.step is not None}
        trails[rid] = ", ".join(e.action + ("" if e.step is None else f" {e.step + 1}")
                                + (f" ({e.detail})" if e.action == "rolled_back" else "")
                                for e in events)
    refused = set(soak.slack.refused_responses)
    kills = {i: list(r.kills) for i, r in enumerate(soak.replicas)}
    slack_judged, slack_left = checks.slack_answers(
        soak.slack_asks, soak.slack.responses, soak.slack_deliveries, refused=refused,
        kills=kills)
    report = checks.Report(faults=soak.faults, activity=soak.activity + slack_left)
    report.activity["slack answers judged"] = len(slack_judged)
    report.activity["rollouts started"] = len(checks.baselines(writes))
    report.activity["weight writes landed"] = len(writes)
    report.checks = {
        "steps applied twice": checks.steps_applied_twice(writes),
        "rollbacks lost": checks.rollbacks_lost(
            soak.answers, writes, finals,
            {rid: checks.stored_baseline(r) for rid, r in rollouts.items() if r is not None}),
        "answers that contradict what landed": checks.contradicting_answers(
            soak.answers + slack_judged, writes),
        "store and cluster disagreements": checks.store_cluster_disagreements(
            finals, rollouts, latest) + stuck,
        "audit missing a landed step": checks.audit_disagreements(writes, audited, trails),
        "slack requests acked and never answered": checks.never_answered(
            soak.slack_asks, soak.slack.responses, soak.slack_deliveries, refused=refused,
            kills=kills, logs={i: _log_lines(r.log) for i, r in enumerate(soak.replicas)}),
    }
    report.must_be_zero = MUST_BE_ZERO
    return report


def _log_lines(log: Path) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()
    except OSError:
        return []


MUST_BE_ZERO = ("steps applied twice", "rollbacks lost", "answers that contradict what landed",
                "store and cluster disagreements", "audit missing a landed step")


@contextlib.contextmanager
def running(options: Options, world: KubeWorld, workdir: Path) -> Iterator[Soak]:
    """The world of a soak, up; everything it started is stopped on the way out."""
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(real_cluster(world))
        targets = seed_targets(world, cluster, options.targets, slack_every=options.slack_every)
        redis = RedisServer(appendonly=True, data_dir=workdir / "redis")
        (workdir / "redis").mkdir(exist_ok=True)
        redis.start()
        stack.callback(redis.close)
        slack = SlackEmulator(SECRET, bot_token=TOKEN, delivery_timeout=15.0).start()
        stack.callback(slack.stop)
        kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
        prefix = f"soak-{options.seed}-{time.monotonic_ns()}"
        env = bot_env(kubeconfig, redis.url, prefix, slack.api_url)
        replicas = [Replica(env, workdir / f"replica-{i}.log") for i in range(options.replicas)]
        scheduler = Process(["scheduler"], env, workdir / "scheduler.log")
        for process in [*replicas, scheduler]:
            process.start()
            stack.callback(process.stop)
        for replica in replicas:
            if not replica.wait_healthy():
                raise RuntimeError(f"a replica did not come up; see {replica.log}")
        client = connect(redis.url)
        stack.callback(client.close)
        store = RedisStore(client, prefix=prefix)
        yield Soak(options=options, world=world, cluster=cluster, redis=redis, slack=slack,
                   env=env, store=store, targets=targets, replicas=replicas,
                   scheduler=scheduler)


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    """Where the processes' logs and Redis's files go: `keep` (created, left in place for
    the person who follows up a finding in a replica's log), else a directory removed after."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        yield Path(tmp)


def soak(options: Options, world: KubeWorld, *, log: Callable[[str], None] = print
         ) -> checks.Report:
    """Run the soak for `options.duration` seconds on `world` and judge it."""
    with _workdir(options.logs) as workdir, running(options, world, workdir) as s:
        rng = random.Random(options.seed)
        threads = [threading.Thread(
            target=drive_slack if t.slack else drive_cli,
            args=(s, t, random.Random(rng.random())), name=t.route, daemon=True)
            for t in s.targets]
        threads.append(threading.Thread(target=inject_faults, args=(s, random.Random(
            rng.random())), name="faults", daemon=True))
        log(f"soak: {len(s.targets)} routes, {len(s.replicas)} serve replicas and a scheduler, "
            f"{options.duration:.0f}s, seed {options.seed}")
        for thread in threads:
            thread.start()
        s.stop.wait(options.duration)
        s.stop.set()
        for thread in threads:
            thread.join(timeout=180)
        log("soak: faults cleared, converging")
        stuck = converge(s)
        return judge(s, stuck)
