"""The scheduler against a real API server that throttles it. API Priority and Fairness is
configured, as a cluster administrator would, to give the bot's route PATCHes in one
namespace a priority level with no seats of its own, none borrowed, that rejects what it
cannot seat: the server then serves one such PATCH at a time and answers any other that
comes meanwhile with 429 and its own Retry-After, as an overloaded API server does. Many
automatic steps fall due at once; the scheduler holds its ticks back for the Retry-After and
lets fewer in at once, and every step lands long before the next sweep, once, and no
rollout is paused. Each hold is recorded in Redis for `status` on any replica, and the
record is gone once the hold is over."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client

from bench.worlds import route_name, seed_targets
from rollout.adapters.leadership import LeaderLease
from rollout.adapters.tick_holds import RedisTickHolds
from rollout.domain.clock import SystemClock
from rollout.domain.models import AuditAction
from rollout.domain.plan import build_plan
from rollout.scheduler import RolloutScheduler
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World
from tests.support.control_plane import BOT_USER
from tests.support.polling import eventually
from tests.support.real_cluster import KubeWorld, RealCluster

ROLLOUTS = 16
BAKE = 2
#: no sweep comes while the test runs: only the end of a hold can retry a refused tick. The
#: steps must land within a quarter of it. Each hold lasts the server's Retry-After, and how
#: many holds the window's probing meets grows with the machine's load: 16 to 25 s on two
#: busy cores, past 30 s once under the whole suite's load, so a quarter is 60 s
SWEEP = 240.0
FLOW = "flowcontrol.apiserver.k8s.io"
GATEWAY = "gateway.networking.k8s.io"


def _bot_direct(world: KubeWorld) -> client.ApiClient:
    """The bot's identity straight to the server (not through the test's proxy, whose record
    is the scheduler's requests alone)."""
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = world.upstream, world.ca_file
    cfg.api_key = {"authorization": f"Bearer {world.bot_token}"}
    return client.ApiClient(cfg)


def _flow_schema_of(bot: client.ApiClient, namespace: str, route: str) -> str:
    """The UID of the FlowSchema the server classifies the bot's route PATCHes there under
    (a dry run; the server names it in a response header)."""
    answer = client.CustomObjectsApi(bot).patch_namespaced_custom_object_with_http_info(
        GATEWAY, "v1", namespace, "httproutes", route, {"metadata": {}}, dry_run="All")
    return str(answer[2].get("X-Kubernetes-PF-FlowSchema-UID", ""))


@contextlib.contextmanager
def one_at_a_time(world: KubeWorld, namespace: str, route: str) -> Iterator[None]:
    """While inside, APF seats one route PATCH of the bot in `namespace` at a time and
    rejects the rest (a priority level with no seats of its own: the server still admits a
    request while none of that level runs, so that no level starves)."""
    name = f"rollout-bot-throttled-{uuid.uuid4().hex[:6]}"
    objects = client.CustomObjectsApi(world.admin)
    level = {"apiVersion": f"{FLOW}/v1", "kind": "PriorityLevelConfiguration",
             "metadata": {"name": name},
             "spec": {"type": "Limited", "limited": {
                 "nominalConcurrencyShares": 0, "lendablePercent": 0,
                 "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}}}
    schema = {"apiVersion": f"{FLOW}/v1", "kind": "FlowSchema", "metadata": {"name": name},
              "spec": {"priorityLevelConfiguration": {"name": name}, "matchingPrecedence": 50,
                       "distinguisherMethod": {"type": "ByUser"},
                       "rules": [{"subjects": [{"kind": "User", "user": {"name": BOT_USER}}],
                                  "resourceRules": [{
                                      "verbs": ["patch"], "apiGroups": [GATEWAY],
                                      "resources": ["httproutes"],
                                      "namespaces": [namespace]}]}]}}
    bot = _bot_direct(world)
    objects.create_cluster_custom_object(FLOW, "v1", "prioritylevelconfigurations", level)
    created = cast(dict[str, Any],
                   objects.create_cluster_custom_object(FLOW, "v1", "flowschemas", schema))
    uid = created["metadata"]["uid"]
    try:
        eventually(lambda: _flow_schema_of(bot, namespace, route) == uid, timeout=20,
                   message="the API server classifying the bot's PATCHes under the schema")
        yield
    finally:
        objects.delete_cluster_custom_object(FLOW, "v1", "flowschemas", name)
        objects.delete_cluster_custom_object(FLOW, "v1", "prioritylevelconfigurations", name)
        eventually(lambda: _flow_schema_of(bot, namespace, route) != uid, timeout=20,
                   message="the API server dropping the schema")
        bot.close()  # type: ignore[no-untyped-call]


class _ReadBack(RedisTickHolds):
    """The Redis record of the holds, each read back from Redis as soon as it is set."""

    def __init__(self, world: World) -> None:
        super().__init__(world.store.client, clock=SystemClock(),
                         prefix=world.store.key("").removesuffix(":"))
        self.recorded: list[tuple[datetime, datetime | None]] = []

    def hold(self, until: datetime) -> None:
        super().hold(until)
        self.recorded.append((until, self.held_until()))


def _scheduler(world: World) -> RolloutScheduler:
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="apf",
                        ttl_seconds=SWEEP * 3)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=SWEEP)
    world.service.options.listeners.append(scheduler.on_change)
    return scheduler


def test_a_throttling_api_server_holds_the_ticks_back_and_every_step_lands_at_its_retry_after(
        live_world: World, cluster: RealCluster) -> None:
    world = live_world
    prefix = f"apf{uuid.uuid4().hex[:6]}"
    targets = seed_targets(cluster.world, ROLLOUTS, per_namespace=ROLLOUTS, prefix=prefix)
    namespace = targets[0][0]
    plan = build_plan([10, 50, 100], interval_seconds=BAKE, auto=True)
    ids = []
    for ns, pool in targets:  # each with its first step due now, for the scheduler
        started = world.service.start(namespace=ns, canary=pool, actor=ALICE, plan=plan)
        assert started.rollout is not None
        ids.append(started.rollout.id)
        world.service.approve_plan(Ref(rollout_id=started.rollout.id), actor=BOB)
    holds = _ReadBack(world)
    world.service.options.tick_holds = holds
    scheduler = _scheduler(world)
    with one_at_a_time(cluster.world, namespace, route_name(prefix, 0)):
        # the scheduler's first sweep fires every first step at once
        cluster.clear_requests()
        began = time.monotonic()
        scheduler.start()
        try:
            eventually(lambda: all(r is not None and r.step >= 0
                                   for r in world.service.load(ids).values()),
                       timeout=SWEEP / 4, step=0.05, message="every rollout's first step")
            stepped = time.monotonic() - began
        finally:
            scheduler.stop()
    patches = [r for r in cluster.requests if r.verb == "patch" and r.resource == "httproutes"]
    refused = [r for r in patches if r.status == 429]
    landed = [r for r in patches if r.status < 300]
    # the server refused some, and every 429 the ticks met went through the hold-back
    assert refused and len(refused) == scheduler.pacer.throttles
    assert scheduler.pacer.window < ROLLOUTS
    # each step a rollout took, once (an early one may have taken its next step too); no
    # pause
    after = world.service.load(ids)
    for i, rid in enumerate(ids):
        rollout = after[rid]
        assert rollout is not None
        route = route_name(prefix, i)
        assert sum(1 for r in landed if r.name == route) == rollout.step + 1, route
        actions = [e.action for e in world.store.audit(rid)]
        assert AuditAction.PAUSED not in actions, actions
    # each hold recorded once as it began or grew, and read back from Redis as recorded
    ends = [until for until, _ in holds.recorded]
    assert ends and ends == sorted(set(ends)), ends
    assert all(read == until for until, read in holds.recorded), holds.recorded
    assert len(ends) <= scheduler.pacer.throttles
    # and the record is gone when the last hold is over
    wait = (ends[-1] - datetime.now(UTC)).total_seconds()
    eventually(lambda: holds.held_until() is None, timeout=max(0.0, wait) + 5, step=0.05)
    # the key's TTL was counted before its SET reached Redis: it outlives the hold's end by
    # that round trip (milliseconds), so it is waited for too, not read at once
    key = world.store.key("scheduler", "held-until")
    eventually(lambda: world.store.client.exists(key) == 0, timeout=5, step=0.01)
    print(f"{len(refused)} ticks refused; every rollout stepped {stepped:.1f} s after the "
          f"scheduler started; window {scheduler.pacer.window}")
