"""Approve to new weights on the route: from a signed Slack button click (the bot in a
process of its own, as in production) and from a service approve (in this process), against
one weight-changing JSON patch of a route of the same shape with the official client, the
bot's identity and path; rounds interleaved. Also the Kubernetes requests per approve (the
world's own log) and the Redis round trips (a counting connection) and commands (INFO
commandstats, a script's own commands included) per approve."""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
from kubernetes import client, watch

from bench.ack import CHANNEL, Process, free_port
from bench.harness import spread_line
from bench.redis_count import CountingConnection, commands
from bench.wiring import service_for
from bench.worlds import World
from bot.web import EVENTS_PATH
from rollout.adapters.store import RedisStore
from rollout.domain.errors import NotFound
from rollout.domain.models import Actor
from rollout.domain.plan import build_plan
from rollout.service import Ref, RolloutService
from sandbox.kube.seed import route_object
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

POOL = "llm-pool-version-2"
ROUTE = "routes-to-llm"
FLOOR_ROUTE = "bench-floor-route"
ROUTES = ("gateway.networking.k8s.io", "v1", "default", "httproutes")
ALICE, BOB = Actor(id="cli:alice"), Actor(id="cli:bob")
PREFIX = "bench-approve"  # one store for both paths: they take turns on one route
BAKE = 3600  # no tick falls due inside a measured approve
T = TypeVar("T")


def bench_approve(world: World, redis_server: RedisServer, workdir: Path,
                  rounds: int) -> list[str]:
    world.put(route_object(FLOOR_ROUTE, [("llm", 100), ("llm-new", 0)]))  # same shape
    floor = FloorPatch(world.api())
    service_lines = _service_path(world, redis_server, floor, rounds)
    button_lines = _button_path(world, redis_server, floor, workdir, rounds)
    return [*service_lines, *button_lines]


class FloorPatch:
    """One JSON patch that moves the floor route's weights (90/10, then back to 100/0)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._canary = 0

    def __call__(self) -> float:
        self._canary = 10 if self._canary == 0 else 0
        ops = [{"op": "replace", "path": f"/spec/rules/0/backendRefs/{i}/weight", "value": w}
               for i, w in enumerate((100 - self._canary, self._canary))]
        started = time.perf_counter()
        self._objects.patch_namespaced_custom_object(
            *ROUTES, FLOOR_ROUTE, ops, _content_type="application/json-patch+json")
        return time.perf_counter() - started


def _roll_back_active(service: RolloutService) -> None:
    """The route back where the next round starts: POOL at 0, no rollout active."""
    ref = Ref(canary=POOL)
    try:
        if service.get(ref).active:
            service.rollback(ref, actor=BOB)
    except NotFound:
        pass


def _fresh(service: RolloutService) -> str:
    """A new rollout of POOL awaiting its first approval (the last one rolled back)."""
    _roll_back_active(service)
    outcome = service.start(namespace="default", canary=POOL, actor=ALICE,
                            plan=build_plan([10, 25, 50, 100], interval_seconds=BAKE))
    assert outcome.rollout is not None
    return outcome.rollout.id


def _service_path(world: World, redis_server: RedisServer, floor: FloorPatch,
                  rounds: int) -> list[str]:
    pool = redis.ConnectionPool.from_url(redis_server.url, decode_responses=True,
                                         connection_class=CountingConnection)
    counted = redis.Redis(connection_pool=pool)
    store = RedisStore(counted, prefix=PREFIX)
    service = service_for(world.api(), store, PREFIX)
    info = redis.Redis.from_url(redis_server.url, decode_responses=True)
    bot: list[float] = []
    bare: list[float] = []
    kube: Counter[str] = Counter()
    trips: list[int] = []
    cmds: list[int] = []
    _fresh(service)
    service.approve(Ref(canary=POOL), actor=BOB)  # warm: connections, imports
    for _ in range(rounds):  # interleaved: floor, bot, floor, bot...
        _fresh(service)
        bare.append(floor())
        _settle(world)
        before_trips, before_cmds = CountingConnection.sent, commands(info)
        started = time.perf_counter()
        service.approve(Ref(canary=POOL), actor=BOB)
        bot.append(time.perf_counter() - started)
        trips.append(CountingConnection.sent - before_trips)
        cmds.append(commands(info) - before_cmds)
        kube += _settle(world)
    counted.close()
    info.close()
    return [
        spread_line(f"approve to weights, service approve, {world.name} ({rounds} rounds)",
                    bot, "one weight-changing JSON patch", bare),
        f"  per service approve, {world.name}: {_per(kube, rounds)}; Redis "
        f"{statistics.median(trips):.0f} round trips, {statistics.median(cmds):.0f} commands "
        "(median)",
    ]


def _button_path(world: World, redis_server: RedisServer, floor: FloorPatch, workdir: Path,
                 rounds: int) -> list[str]:
    secret = secrets.token_hex(16)
    slack = SlackEmulator(secret, delivery_timeout=15.0)
    slack.start()
    env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": secret,
           "SLACK_API_URL": slack.api_url, "REDIS_URL": redis_server.url,
           "KUBECONFIG": str(world.bot_kubeconfig(workdir / "bot.kubeconfig")),
           "ROLLOUT_APPROVERS": "U0BOB", "ROLLOUT_REMINDER": "", "ROLLOUT_KEY_PREFIX": PREFIX,
           # no sweep and no lease renewal inside a measured approve
           "ROLLOUT_TICK": "1h", "ROLLOUT_LEADER_TTL": "3h", "LOG_LEVEL": "WARNING"}
    port = free_port()
    bot_proc = Process(["-m", "bot", "serve", "--port", str(port)], port=port, env=env,
                       ready_path="/healthz")
    slack.events_url = bot_proc.url + EVENTS_PATH
    store = RedisStore.from_url(redis_server.url, prefix=PREFIX)
    service = service_for(world.api(), store, PREFIX)
    info = redis.Redis.from_url(redis_server.url, decode_responses=True)
    bot: list[float] = []
    bare: list[float] = []
    kube: Counter[str] = Counter()
    cmds: list[int] = []
    try:
        _click_once(slack, service, world)  # warm
        for _ in range(rounds):
            bare.append(floor())
            seconds, counted, commands_used = _click_once(slack, service, world, info)
            bot.append(seconds)
            kube += counted
            cmds.append(commands_used)
    finally:
        bot_proc.stop()
        slack.stop()
        store.client.close()
        info.close()
    return [
        spread_line(f"approve to weights, Slack button, {world.name} ({rounds} rounds)",
                    bot, "one weight-changing JSON patch", bare),
        f"  per button approve, {world.name}: {_per(kube, rounds)}; Redis "
        f"{statistics.median(cmds):.0f} commands (median)",
    ]


def _click_once(slack: SlackEmulator, service: RolloutService, world: World,
                info: redis.Redis | None = None) -> tuple[float, Counter[str], int]:
    """Start a rollout through Slack, wait for its card, click Approve; the seconds from the
    click until a watch sees the new weights, the bot's Kubernetes requests and Redis
    commands from the click until it has redrawn the card."""
    _roll_back_active(service)
    slack.send_slash_command("U0ALICE", CHANNEL, f"{POOL} start --interval 1h")
    ts, value = _wait(lambda: _approve_button(slack, service))
    objects = client.CustomObjectsApi(world.watcher())
    route = cast(dict[str, Any], objects.get_namespaced_custom_object(*ROUTES, ROUTE))
    seen = _WeightsWatch(objects, route["metadata"]["resourceVersion"], (90, 10))
    time.sleep(0.2)  # the watch is open before the click
    _settle(world)
    before = commands(info) if info is not None else 0
    calls = len(slack.calls)
    started = time.perf_counter()
    slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
    landed = seen.wait()
    if landed is None:
        answers = [(r.text or "")[:200] for r in slack.responses[-3:]]
        raise RuntimeError(f"the route did not reach 90/10 within 30 s; the bot said {answers}")
    _wait(lambda: True if any(c.method == "chat.update" for c in slack.calls[calls:]) else None)
    used = commands(info) - before if info is not None else 0
    counted = _settle(world)
    counted.pop(f"watch {ROUTES[3]}", None)  # the benchmark's own watch
    return landed - started, counted, used


class _WeightsWatch:
    """A watch on the route from `resource_version`; `wait()` returns the perf_counter time
    at which the route first showed `weights`."""

    def __init__(self, objects: client.CustomObjectsApi, resource_version: str,
                 weights: tuple[int, int]) -> None:
        self._objects, self._rv, self._weights = objects, resource_version, weights
        self._at: float | None = None
        self._done = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        w = watch.Watch()  # type: ignore[no-untyped-call]
        events = w.stream(  # type: ignore[no-untyped-call]
            self._objects.list_namespaced_custom_object, *ROUTES,
            field_selector=f"metadata.name={ROUTE}", resource_version=self._rv,
            timeout_seconds=30)
        for event in events:
            obj: dict[str, Any] = event["object"]
            refs = obj["spec"]["rules"][0]["backendRefs"]
            if tuple(r["weight"] for r in refs) == self._weights:
                self._at = time.perf_counter()
                w.stop()  # type: ignore[no-untyped-call]
        self._done.set()

    def wait(self) -> float | None:
        self._done.wait(30)
        return self._at


def _approve_button(slack: SlackEmulator, service: RolloutService) -> tuple[str, str] | None:
    """The card's Approve button for the pending step of the active rollout."""
    try:
        current = service.get(Ref(canary=POOL))
    except NotFound:
        return None
    for message in slack.messages(CHANNEL, top_level_only=True):
        for block in message.blocks:
            for element in block.get("elements", []):
                if element.get("action_id") != "rollout_approve":
                    continue
                value = json.loads(element["value"])
                if value["r"] == current.id and value["s"] == current.pending_step:
                    return message.ts, str(element["value"])
    return None


def _wait(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.01)
    raise RuntimeError("the bot did not answer within 30 s")


def _settle(world: World) -> Counter[str]:
    """The requests counted so far, once the ones in flight have been logged."""
    time.sleep(0.05)
    return world.requests()


def _per(kube: Counter[str], rounds: int) -> str:
    parts = [f"{n / rounds:.1f} {what}" for what, n in sorted(kube.items())]
    return f"{sum(kube.values()) / rounds:.1f} Kubernetes requests ({', '.join(parts)})"
