"""Many automatic rollouts (`--auto`, 1 s bakes) on one `rollout-bot scheduler` process: how
late each step lands after it fell due (the audit's step times against the plan's bake), the
CPU and memory of the whole process (/proc), and the Kubernetes requests and Redis commands
per step. The floors: the same scheduler command with no rollout, running beside it over the
same windows (its own Redis), for CPU, memory and Redis; for the lag the due time itself; for
throughput a step's GET and PATCH alone on the same routes (`bench/step_floor.py`), just
before the scheduler's window and again after it. Over the window, a person's write to
another route is timed (`bench/person_probe.py`): what a rollback waits on the cluster; and
a plan is approved every second on rollouts started for it (`bench/plan_probe.py`): how long
the person waits for its first step.

Each rollout has a route and a canary pool of its own, `per_namespace` of them to a
namespace (with the demo's gateway and stable pool), created through the API in parallel;
the rollouts are started and their plans approved through the service in this process."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.apf import levels, window_line
from bench.harness import percentile
from bench.person_probe import PersonProbe
from bench.plan_probe import PlanProbe, first_step_after_approval
from bench.redis_count import commands
from bench.step_floor import Throughput, bare_steps
from bench.wiring import service_for
from bench.worlds import World, open_world, route_name, seed_targets
from rollout.adapters.change_feed import ChangeFeed
from rollout.adapters.store import RedisStore
from rollout.domain.models import Actor, AuditAction, AuditEvent
from rollout.domain.plan import build_plan
from rollout.redis_connect import connect
from rollout.scheduler import STEP_THREADS
from rollout.service import Ref, RolloutService
from sandbox.redis_server import RedisServer

STEPS = tuple(range(5, 101, 5))  # 20 steps, the most a plan may have
BAKE_SECONDS = 1
ALICE, BOB = Actor(id="cli:alice"), Actor(id="cli:bob")
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: a plan approved during the window this often (`PlanProbe`)
PLAN_PERIOD = 1.0


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    seconds: float  # measured per size, while every rollout is active
    per_namespace: int = 10
    profile: Path | None = None  # cProfile output of the loaded scheduler (largest size)


def run_scale(worlds: list[str], options: Options) -> Iterator[str]:
    """The lines of each size as soon as it is measured."""
    for kind in worlds:
        with tempfile.TemporaryDirectory() as tmp, \
                open_world(kind, Path(tmp), gateway_controller=False) as world:
            for size in options.sizes:
                profile = options.profile if size == max(options.sizes) else None
                yield from _one_size(world, Path(tmp), size, options, profile)


class Scheduler:
    """`rollout-bot scheduler` in a process of its own; CPU seconds and RSS from /proc."""

    def __init__(self, kubeconfig: Path, redis_url: str, prefix: str, log: Path,
                 profile: Path | None = None) -> None:
        env = {**os.environ, "REDIS_URL": redis_url, "KUBECONFIG": str(kubeconfig),
               "ROLLOUT_KEY_PREFIX": prefix, "ROLLOUT_REMINDER": "", "LOG_LEVEL": "WARNING"}
        command = (["-m", "bench.profiled_scheduler", str(profile)] if profile
                   else ["-m", "bot", "scheduler"])
        with log.open("ab") as out:
            self._proc = subprocess.Popen([sys.executable, *command], env=env, stdout=out,
                                          stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self._proc.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS for the scheduler process")

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)  # a clean exit: cProfile writes its file
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Window:
    """What both processes did over the measured seconds."""

    started: datetime
    ended: datetime
    cpu: tuple[float, float]  # seconds of CPU, loaded and idle
    rss: tuple[int, int]
    redis: tuple[int, int]  # commands, loaded and idle
    kube: int  # the bot's requests (the idle scheduler has no rollout to read)
    flow_control: str  # the API server's priority and fairness over the window

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


def _one_size(world: World, workdir: Path, size: int, options: Options,
              profile: Path | None) -> list[str]:
    prefix = f"scale{size}"
    # beyond the rollouts: the targets of the plans approved during the window
    # (`PlanProbe`), taken from among the rollouts' (a namespace new to the scheduler would
    # add its cache's lists and watches to the window's requests), and the route a person's
    # write moves (`PersonProbe`)
    plans = min(size, math.ceil(options.seconds / PLAN_PERIOD))
    seeded = seed_targets(world, size + plans + 1, per_namespace=options.per_namespace,
                          prefix=prefix)
    rolled = [*range(size - plans), *range(size, size + plans)]
    targets = [seeded[i] for i in rolled]
    planned = seeded[size - plans:size]
    kubeconfig = world.bot_kubeconfig(workdir / "bot.kubeconfig")
    routes = [(seeded[i][0], route_name(prefix, i)) for i in rolled]
    person_route = (seeded[size + plans][0], route_name(prefix, size + plans))
    floors = [bare_steps(kubeconfig, routes, seconds=options.seconds)]
    with RedisServer() as loaded_redis, RedisServer() as idle_redis:
        loaded = Scheduler(kubeconfig, loaded_redis.url, prefix, workdir / "loaded.log",
                           profile)
        idle = Scheduler(kubeconfig, idle_redis.url, prefix, workdir / "idle.log")
        client = connect(loaded_redis.url)  # another replica, as a Slack one: it announces
        feed = ChangeFeed.of_install(client, prefix)
        store = RedisStore(client, prefix=prefix, feed=feed)
        service = service_for(world.api(), store, prefix)
        try:
            ids = _start(service, targets)
            _approve(service, ids)
            waiting = _start(service, planned)
            behind = _wait_stepping(service, ids, timeout=30 + size / 20)
            with PersonProbe(kubeconfig, person_route,
                             announce=(client, feed.people_channel)) as person, \
                    PlanProbe(world.api(), store, prefix, waiting, actor=BOB,
                              period=PLAN_PERIOD) as approvals:
                window = _measure(world, (loaded, idle), (loaded_redis, idle_redis),
                                  options.seconds)
            window.kube -= (person.requests_between(window.started, window.ended)
                            + approvals.requests_between(window.started, window.ended))
            # the plans the window ended before approving are not waited for
            _wait_done(service, [*ids, *approvals.approved], timeout=60 + len(STEPS) * 3)
            overdue = _overdue(service, ids)
            events = {rid: store.audit(rid) for rid in ids}
            probed = {rid: store.audit(rid) for rid in approvals.approved}
        finally:
            loaded.stop()
            idle.stop()
            store.client.close()
    floors.append(bare_steps(kubeconfig, routes, seconds=options.seconds))
    # the probe's rollouts are stepped by the scheduler too: counted in its rate
    landed = _landed(events | probed, window)
    lines = _report(world.name, size, options.per_namespace, window, events, overdue, landed)
    lines.append(_against_floor(size, window, landed, floors))
    lines.append(_person(person))
    lines.append(_plans(approvals, probed))
    lines.append(window.flow_control)
    if behind:
        lines.append(f"  {behind} of {size} rollouts had not taken their first step when "
                     "the window began")
    return lines


def _start(service: RolloutService, targets: list[tuple[str, str]]) -> list[str]:
    """Start a rollout on each target; its plan awaits approval."""
    plan = build_plan(STEPS, interval_seconds=BAKE_SECONDS, auto=True)

    def start(target: tuple[str, str]) -> str:
        outcome = service.start(namespace=target[0], canary=target[1], actor=ALICE, plan=plan)
        assert outcome.rollout is not None
        return outcome.rollout.id

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(start, targets))


def _approve(service: RolloutService, ids: list[str]) -> None:
    """Approve every plan at once (each one's first step is then due)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda rid: service.approve_plan(Ref(rollout_id=rid), actor=BOB), ids))


def _wait_stepping(service: RolloutService, ids: list[str], timeout: float) -> int:
    """Until the scheduler has taken every rollout's first step (it learns of approvals
    made elsewhere at its sweep), so that all of them step every bake, or the deadline; the
    number of rollouts still without a step then (a scheduler far behind)."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = sum(1 for r in service.load(ids).values() if r is None or r.step < 0)
        if waiting == 0 or time.monotonic() > deadline:
            return waiting
        time.sleep(0.5)


def _measure(world: World, procs: tuple[Scheduler, Scheduler],
             servers: tuple[RedisServer, RedisServer], seconds: float) -> Window:
    clients = [redis.Redis.from_url(s.url, decode_responses=True) for s in servers]
    world.requests()  # what came before is not counted
    flow0 = levels(world.server_metrics())
    cpu0 = [p.cpu_seconds() for p in procs]
    cmd0 = [commands(c) for c in clients]
    started = datetime.now(UTC)
    time.sleep(seconds)
    ended = datetime.now(UTC)
    cpu1 = [p.cpu_seconds() for p in procs]
    cmd1 = [commands(c) for c in clients]
    kube = sum(world.requests().values())
    flow = window_line(flow0, levels(world.server_metrics()))
    rss = [p.rss_bytes() for p in procs]
    for c in clients:
        c.close()
    return Window(started=started, ended=ended,
                  cpu=(cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]), rss=(rss[0], rss[1]),
                  redis=(cmd1[0] - cmd0[0], cmd1[1] - cmd0[1]), kube=kube,
                  flow_control=flow)


def _wait_done(service: RolloutService, ids: list[str], timeout: float) -> None:
    """Wait for each of these rollouts to complete, or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
            r is not None and r.active for r in service.load(ids).values()):
        time.sleep(1.0)


def _overdue(service: RolloutService, ids: list[str]) -> list[float]:
    """How late the steps due and not taken at the deadline are so far: lags at least this
    long, which leaving out would flatter the figures."""
    now = datetime.now(UTC)
    return [(now - r.next_due_at).total_seconds() for r in service.load(ids).values()
            if r is not None and r.active and r.next_due_at is not None and r.next_due_at < now]


def lags(events: list[AuditEvent]) -> tuple[list[float], list[float]]:
    """Seconds each scheduled step landed after it fell due: a step after a step, the bake
    after the step before it (steady state); the first step, at the plan's approval, which
    was made in another process and which the scheduler learns of at its next sweep."""
    steps = sorted(e.at for e in events if e.action is AuditAction.STEP_APPLIED)
    first_step = first_step_after_approval(events)
    first = [] if first_step is None else [first_step]
    steady = [(after - before - timedelta(seconds=BAKE_SECONDS)).total_seconds()
              for before, after in itertools.pairwise(steps)]
    return steady, first


def _report(world: str, size: int, per_namespace: int, window: Window,
            events: dict[str, list[AuditEvent]], overdue: list[float],
            landed: int) -> list[str]:
    steady: list[float] = list(overdue)
    first: list[float] = []
    for history in events.values():
        s, f = lags(history)
        steady += s
        first += f
    per_step = max(landed, 1)
    cpu = [100 * c / window.seconds for c in window.cpu]
    head = f"scale, {size} rollouts ({per_namespace} a namespace), {world}"
    return [
        f"{head}: step lag p50 {_s(steady, 0.5)}  p99 {_s(steady, 0.99)}  max "
        f"{_s(steady, 1.0)} ({len(steady)} steps)   floor: the due time   first step after "
        f"the plan's approval p99 {_s(first, 0.99)}"
        + (f"   ({len(overdue)} steps still overdue at the end, counted at their lag so far)"
           if overdue else ""),
        f"  {head}: {landed / window.seconds:.0f} steps/s over {window.seconds:.0f} s; CPU "
        f"{cpu[0]:.0f}% of a core, idle scheduler {cpu[1]:.1f}%; RSS {_mib(window.rss[0])}, "
        f"idle {_mib(window.rss[1])}, {(window.rss[0] - window.rss[1]) / size / 1024:.1f} KiB "
        f"a rollout; per step {window.kube / per_step:.1f} Kubernetes requests, "
        f"{window.redis[0] / per_step:.1f} Redis commands (idle scheduler "
        f"{window.redis[1] / window.seconds:.1f} Redis commands/s)",
    ]


def _landed(events: dict[str, list[AuditEvent]], window: Window) -> int:
    return sum(1 for history in events.values() for e in history
               if e.action is AuditAction.STEP_APPLIED and window.started <= e.at < window.ended)


def _against_floor(size: int, window: Window, landed: int, floors: list[Throughput]) -> str:
    """The scheduler's steps against the floor's bare GET and PATCH pairs, on the same routes
    just before and just after it: the share of what the cluster can take that the scheduler
    reaches, which means something where the rollouts ask for more than it makes."""
    rate = landed / window.seconds
    floor = sum(f.per_second for f in floors) / len(floors)
    return (f"  floor: a step's GET and PATCH alone, {STEP_THREADS} threads, the same routes "
            f"(before / after): {' / '.join(f'{f.per_second:.0f}' for f in floors)} pairs/s, "
            f"{' / '.join(f'{f.cpu_per_pair * 1e3:.2f}' for f in floors)} ms CPU a pair; "
            f"{size} rollouts with 1 s bakes ask for up to {size} steps/s, the scheduler made "
            f"{rate:.0f} ({rate / floor:.2f} of the floor), "
            f"{window.cpu[0] / max(landed, 1) * 1e3:.2f} ms CPU a step")


def _person(probe: PersonProbe) -> str:
    """A person's write over the window: what a rollback would wait on the cluster."""
    failed = f", {probe.failures} refused" if probe.failures else ""
    return (f"  a person's write meanwhile (a GET and a PATCH of another route, the bot's "
            f"identity, every 0.25 s): p50 {_s(probe.seconds, 0.5)}  p99 "
            f"{_s(probe.seconds, 0.99)}  max {_s(probe.seconds, 1.0)} ({len(probe.seconds)} "
            f"pairs{failed})")


def _plans(probe: PlanProbe, events: dict[str, list[AuditEvent]]) -> str:
    """The plans approved during the window: how long each waited for its first step."""
    firsts = [f for f in map(first_step_after_approval, events.values()) if f is not None]
    missing = len(probe.approved) - len(firsts)
    notes = "".join([f", {missing} never stepped" if missing else "",
                     f", {probe.failures} refused" if probe.failures else ""])
    return (f"  a plan approved meanwhile (another replica, one every {PLAN_PERIOD:g} s): its "
            f"first step p50 {_s(firsts, 0.5)}  p99 {_s(firsts, 0.99)}  max "
            f"{_s(firsts, 1.0)} ({len(firsts)} plans{notes})")


def _s(samples: list[float], q: float) -> str:
    return f"{percentile(samples, q) * 1e3:.0f} ms" if samples else "n/a"


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"
