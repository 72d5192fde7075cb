"""`python -m bench [--quick] [--only step|ack|sweep|redis|approve|scale|startup] [--world
...]`: how long Slack waits for an ack under concurrent requests (against a bare Bolt app),
what an idle scheduler leader costs Redis (against the full-reload sweep), what a step costs
Redis (round trips and time against one EVALSHA), what a step costs compared with the floor
of its own I/O, approve to new weights (against one weight-changing PATCH), many automatic
rollouts on one scheduler process (against the same process idle), what a pure transition
costs compared with copying the state, the memory the scheduler holds per rollout compared
with the due times alone, and how long a CLI command takes to start (against importing its
libraries)."""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes import client

from bench.ack import bench_ack
from bench.approve import FLOOR_ROUTE, FloorPatch, bench_approve
from bench.approve import ROUTES as DEFAULT_ROUTES
from bench.harness import Result, interleaved
from bench.redis_step import bench_redis_step
from bench.scale import Options as ScaleOptions
from bench.scale import run_scale
from bench.startup import bench_startup
from bench.sweep import bench_sweep
from bench.worlds import open_world
from rollout.adapters.cluster_facts import ClusterReader
from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.adapters.kube.rewrite import RewriteSplit
from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.namespace_cache import NamespaceCache, WatchedFacts
from rollout.adapters.store import RedisStore
from rollout.domain import machine
from rollout.domain.clock import ManualClock
from rollout.domain.models import Actor, Baseline, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.service import Gates, Ref, RolloutService
from sandbox.kube import KubeEmulator
from sandbox.kube.seed import route_object
from sandbox.redis_server import RedisServer

ALICE = Actor(id="cli:alice")
BOB = Actor(id="cli:bob")
POOL = "llm-pool-version-2"


def bench_step(repeat: int) -> list[Result]:
    """A full approve (lock, reconcile read, the freeze and the preflight gates, read from the
    namespace cache as in serve, fenced patch, CAS save) and a full rollback (no gates),
    each sample in turn with a floor sample: one Redis round trip, a GET of a route of the
    same shape and a JSON patch that moves its weights."""
    with KubeEmulator(seed="demo") as emu, RedisServer() as redis_server:
        cfg = client.Configuration()
        cfg.host = emu.url
        api_client = client.ApiClient(cfg)
        api = client.CustomObjectsApi(api_client)
        store = RedisStore.from_url(redis_server.url, prefix="bench")
        cache = NamespaceCache(api, CoreLists(api_client))
        cache.watch("default")

        def warm() -> None:
            """As a running serve is between a start and a click: the cache has caught up."""
            deadline = time.monotonic() + 10
            while not cache.live("default") and time.monotonic() < deadline:
                time.sleep(0.001)
        traffic = TrafficRouter(routes=HTTPRouteSplit(api, cache=cache),
                                rewrites=RewriteSplit(api, cache=cache))
        gates = Gates(facts=WatchedFacts(cache, ClusterReader(api, CoreLists(api_client))),
                      freezes=FreezeStore(store.client, prefix="bench"))
        service = RolloutService(store=store, traffic=traffic, clock=ManualClock(), gates=gates)
        ref = Ref(canary=POOL)

        def fresh() -> None:
            """A new rollout awaiting its first approval (the last one rolled back)."""
            if _active(service):
                service.rollback(ref, actor=BOB)
            service.start(namespace="default", canary=POOL, actor=ALICE,
                          plan=build_plan([10, 25, 50, 100], interval_seconds=0))
            warm()

        def at_10() -> None:
            fresh()
            service.approve(ref, actor=BOB)
            warm()

        api.create_namespaced_custom_object(
            *DEFAULT_ROUTES, route_object(FLOOR_ROUTE, [("llm", 100), ("llm-new", 0)]))
        move_weights = FloorPatch(api_client)

        def floor() -> None:
            store.client.ping()
            api.get_namespaced_custom_object(*DEFAULT_ROUTES, FLOOR_ROUTE)
            move_weights()

        approve, approve_floor = interleaved(lambda: service.approve(ref, actor=BOB), floor,
                                             repeat=repeat, setup=fresh)
        back, back_floor = interleaved(lambda: service.rollback(ref, actor=BOB), floor,
                                       repeat=repeat, setup=at_10)
        cache.stop()
        store.client.close()
    name = "1 Redis RTT + route GET + weight PATCH"
    return [Result("approve a step (end to end)", approve, name, approve_floor),
            Result("roll back (end to end)", back, name, back_floor)]


def _active(service: RolloutService) -> bool:
    try:
        return service.get(Ref(canary=POOL)).active
    except Exception:  # no rollout yet
        return False


def bench_transition(repeat: int) -> list[Result]:
    """The pure state machine against the least it must do: copy the frozen state once."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    baseline = Baseline(stable={"name": "a", "weight": 100}, canary={"name": "b", "weight": 0},
                        stable_weight=100, canary_weight=0)
    rollout = machine.start(
        rollout_id="r", target=Target(kind=TargetKind.ROUTE, namespace="d", name="n", rule=0),
        stable="a", canary="b", plan=build_plan(), baseline=baseline, actor=ALICE, now=now,
    ).rollout
    loops = 200

    def transitions() -> None:
        for _ in range(loops):
            machine.approve(rollout, actor=BOB, now=now)

    def copies() -> None:
        for _ in range(loops):
            rollout.model_copy(update={"updated_at": now})

    pure, floor = interleaved(transitions, copies, repeat=repeat)
    return [Result(f"approve transition x{loops} (pure)", pure, f"model_copy x{loops}", floor)]


def bench_scheduler_memory(count: int) -> list[Result]:
    """Bytes the scheduler's jobs hold for `count` due rollouts, against a dict of due times."""
    from apscheduler.schedulers.background import BackgroundScheduler

    due = datetime.now(UTC) + timedelta(hours=1)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    floor = {f"rollout-{i}": due for i in range(count)}
    floor_bytes = _grown(before)
    sched = BackgroundScheduler(timezone="UTC")
    before = tracemalloc.take_snapshot()
    for rid in floor:
        sched.add_job(print, "date", run_date=due, args=[rid], id=f"due:{rid}")
    jobs_bytes = _grown(before)
    tracemalloc.stop()
    return [Result(f"scheduler jobs for {count} rollouts (bytes)", jobs_bytes,
                   "dict of due times", floor_bytes)]


def _grown(before: tracemalloc.Snapshot) -> float:
    after = tracemalloc.take_snapshot()
    return float(sum(s.size_diff for s in after.compare_to(before, "filename")))


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want counts like 100,300,1000, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("each size is at least 1 rollout")
    return sizes


def run_approve(worlds: list[str], rounds: int) -> list[str]:
    lines = []
    for kind in worlds:
        with tempfile.TemporaryDirectory() as tmp, open_world(kind, Path(tmp)) as world, \
                RedisServer() as redis_server:
            lines += bench_approve(world, redis_server, Path(tmp), rounds)
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--only", choices=["step", "ack", "sweep", "redis", "approve", "scale",
                                           "startup"],
                        help="run one benchmark (default: all)")
    parser.add_argument("--world", choices=["emulator", "real", "both"], default=None,
                        help="the Kubernetes API for approve and scale (default: both; "
                             "--quick: emulator)")
    parser.add_argument("--rounds", type=_positive, default=None,
                        help="approve: interleaved rounds (default 30; --quick 3)")
    parser.add_argument("--sizes", type=_sizes, default=None,
                        help="scale: active rollouts, comma-separated (default 100,300,1000; "
                             "--quick 10)")
    parser.add_argument("--seconds", type=_positive, default=None,
                        help="scale: seconds measured per size (default 10; --quick 3)")
    parser.add_argument("--per-namespace", type=_positive, default=10,
                        help="scale: routes to a namespace (default 10)")
    parser.add_argument("--profile", type=_profile_file, default=None,
                        help="scale: write a cProfile of the loaded scheduler, in thread CPU time "
                             "(largest size)")
    return parser


def _profile_file(text: str) -> Path:
    """A file the profile can be written to, known before anything runs."""
    path = Path(text)
    if path.is_dir() or not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"want a file in an existing directory, not {text!r}")
    return path


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"want a whole number of at least 1, not {text!r}")
    return int(text)


def _run_world_benchmarks(args: argparse.Namespace) -> None:
    worlds = {"emulator": ["emulator"], "real": ["real"], "both": ["emulator", "real"]}[
        args.world or ("emulator" if args.quick else "both")]
    if args.only in (None, "approve"):
        for line in run_approve(worlds, args.rounds or (3 if args.quick else 30)):
            print(line, flush=True)
    if args.only in (None, "scale"):
        options = ScaleOptions(sizes=args.sizes or ((10,) if args.quick else (100, 300, 1000)),
                               seconds=args.seconds or (3 if args.quick else 10),
                               per_namespace=args.per_namespace, profile=args.profile)
        for line in run_scale(worlds, options):
            print(line, flush=True)


def _run_process_benchmarks(args: argparse.Namespace) -> None:
    """The benchmarks that need no Kubernetes world of their own choosing."""
    if args.only in (None, "ack"):
        for line in bench_ack(3 if args.quick else 10):
            print(line)
    if args.only in (None, "sweep"):
        for line in bench_sweep():
            print(line)
    if args.only in (None, "redis"):
        for line in bench_redis_step(50 if args.quick else 2000):
            print(line)
    if args.only in (None, "startup"):
        for line in bench_startup(3 if args.quick else 20):
            print(line)


def main() -> None:
    args = _parser().parse_args()
    repeat = 3 if args.quick else 30
    _run_world_benchmarks(args)
    _run_process_benchmarks(args)
    if args.only is not None and args.only != "step":
        return
    results = [*bench_step(repeat), *bench_transition(repeat),
               *bench_scheduler_memory(50 if args.quick else 1000)]
    for result in results:
        line = result.line()
        if "(bytes)" in result.name:
            line = (f"{result.name:<44} {result.median_s / 1024:>8.1f} KiB   floor "
                    f"{result.floor_name}: {result.floor_s / 1024:>8.1f} KiB   "
                    f"ratio {result.ratio:6.1f}x")
        print(line)


if __name__ == "__main__":
    main()
