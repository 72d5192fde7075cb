"""The rollout service against a real Redis and the emulated cluster: the happy paths."""

from __future__ import annotations

import copy

from rollout.domain.models import Actor, Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


def test_approvals_walk_the_plan_and_rollback_restores_the_spec_exactly(world: World) -> None:
    spec_before = copy.deepcopy(world.route()["spec"])
    generation = world.route()["metadata"]["generation"]
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 25, 50, 100], interval_seconds=0))
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    seen = []
    for _ in range(3):
        out = world.service.approve(REF, actor=BOB)
        assert out.ok, out.message
        seen.append(world.weights())
    assert seen == [{"llm-pool": 90, POOL: 10}, {"llm-pool": 75, POOL: 25},
                    {"llm-pool": 50, POOL: 50}]
    assert world.route()["metadata"]["generation"] == generation + 3
    out = world.service.rollback(REF, actor=BOB, reason="p99 latency")
    assert out.rollout is not None and out.rollout.phase is Phase.ROLLED_BACK
    route = world.route()
    assert route["spec"] == spec_before
    assert all(k.startswith("inference-rollout.dev/") for k in route["metadata"]["annotations"])


def test_four_approvals_complete_at_0_100(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 25, 50, 100], interval_seconds=0))
    for _ in range(4):
        world.service.approve(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 0, POOL: 100}
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.COMPLETED
    assert world.store.active_on(rollout.target.key) is None


def test_history_lists_every_step_with_actor_and_time(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([50, 100], interval_seconds=0))
    world.service.approve(REF, actor=BOB)
    world.clock.advance(60)
    world.service.rollback(REF, actor=ALICE)
    events = world.service.history(REF)
    assert [(e.action, e.actor.id) for e in events] == [
        ("started", "cli:alice"), ("approved", "cli:bob"), ("step_applied", "cli:bob"),
        ("rolled_back", "cli:alice"),
    ]
    assert events[-1].at > events[0].at


def test_node_update_adds_the_new_pool_and_rollback_removes_it(world: World) -> None:
    spec_before = copy.deepcopy(world.route("llm-route")["spec"])
    out = world.service.start(namespace="default", canary="llm-new", route="llm-route",
                              actor=ALICE, plan=build_plan([10, 100], interval_seconds=0))
    assert out.ok, out.message
    assert world.weights("llm-route") == {"llm": 100, "llm-new": 0}
    world.service.approve(Ref(canary="llm-new"), actor=BOB)
    assert world.weights("llm-route") == {"llm": 90, "llm-new": 10}
    world.service.rollback(Ref(canary="llm-new"), actor=BOB)
    assert world.route("llm-route")["spec"] == spec_before


def test_promote_goes_straight_to_100(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    out = world.service.promote(REF, actor=BOB)
    assert out.rollout is not None and out.rollout.phase is Phase.COMPLETED
    assert world.weights() == {"llm-pool": 0, POOL: 100}


def test_pause_and_resume_keep_the_weights(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan(interval_seconds=600))
    world.service.approve(REF, actor=BOB)
    patches = world.route_patches()
    paused = world.service.pause(REF, actor=ALICE, reason="checking dashboards")
    assert paused.rollout is not None and paused.rollout.phase is Phase.PAUSED
    resumed = world.service.resume(REF, actor=BOB)
    assert resumed.rollout is not None and resumed.rollout.phase is Phase.BAKING
    assert world.route_patches() == patches
    assert world.weights() == {"llm-pool": 90, POOL: 10}


def test_status_shows_state_and_cluster(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    world.service.approve(REF, actor=BOB)
    status = world.service.status(REF)
    assert status.observed is not None and status.observed.pair.canary == 10
    assert status.cluster_note == ""


def test_attaching_the_card_keeps_the_version_and_survives_later_saves(world: World) -> None:
    from rollout.domain.models import Card

    out = world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    assert out.rollout is not None
    version = world.service.get(REF).version
    card = Card(channel="C1", ts="1.000100")
    assert world.service.attach_card(out.rollout.id, card) == card
    attached = world.service.get(REF)
    assert attached.version == version and attached.card == card
    world.service.approve(REF, actor=BOB)
    after = world.service.get(REF)
    assert after.version > version and after.card == card


def test_a_first_card_attached_second_gives_way_and_a_repost_replaces_only_its_own(
        world: World) -> None:
    """Two processes that each found no card and posted one: the first attached stays, and
    the second is told which (it deletes its own post). A repost after a deletion takes the
    place of the card it names only: one that another process reposted meanwhile stays."""
    from rollout.domain.models import Card

    out = world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    assert out.rollout is not None
    rid = out.rollout.id
    first, second = Card(channel="C1", ts="1.000100"), Card(channel="C1", ts="1.000200")
    assert world.service.attach_card(rid, first) == first
    assert world.service.attach_card(rid, second) == first
    reposted, late = Card(channel="C1", ts="2.000100"), Card(channel="C1", ts="2.000200")
    assert world.service.attach_card(rid, reposted, replacing=first) == reposted
    assert world.service.attach_card(rid, late, replacing=first) == reposted
    assert world.service.get(REF).card == reposted
    for unreadable in ("not json", '{"channel": "C1"}', "[1]"):
        world.store.client.hset(world.store.key("rollout", rid), "card", unreadable)
        assert world.service.attach_card(rid, late) == late  # one that cannot be used


def test_the_sweeps_drift_check_leaves_a_paused_rollout_alone(world: World) -> None:
    """A rollout paused by hand, then edited by hand, is not rewritten on every sweep."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    world.service.approve(REF, actor=BOB)
    world.service.pause(REF, actor=Actor(id="U0DAVE", via="slack"))
    route = world.route()
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = 30 if ref["name"] == POOL else 70
    world.emulator.put_object(route)
    version = world.service.get(REF).version
    for _ in range(3):
        assert world.service.watch(world.service.get(REF)) is None
    assert world.service.get(REF).version == version
