"""A step in at most three Redis round trips, counted on the wire of a real redis-server:
opening (the request's memo, the lock, the state, the freeze), the confirm just before the
cluster write, closing (the save, the memo, the release). Counted once each script is known
to the server (its first use costs a SCRIPT LOAD, once per server)."""

from __future__ import annotations

from rollout.domain.models import Click, Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, Cli, World
from tests.support.redis_trips import round_trips

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)
STEP = [["EVALSHA"], ["EVALSHA"], ["EVALSHA"]]  # open, confirm, close
#: what the client library sends on a new connection, before the bot's first command
HANDSHAKE = {"HELLO", "AUTH", "CLIENT", "PING", "SELECT"}


def _started(world: World, *, auto: bool = False) -> str:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 25, 50, 100], interval_seconds=1 if auto else 0,
                                        auto=auto))
    return world.service.get(REF).id


def test_an_approve_by_pool_name_is_three_round_trips(world: World) -> None:
    _started(world)
    world.service.approve(REF, actor=BOB)  # the scripts are known to the server from here on
    with round_trips() as trips:
        out = world.service.approve(REF, actor=BOB)
    assert out.ok and world.weights() == {"llm-pool": 75, POOL: 25}
    assert trips.work == STEP


def test_a_button_approve_is_three_round_trips_and_its_duplicate_one(world: World) -> None:
    rid = _started(world)
    world.service.approve(Ref(rollout_id=rid), actor=BOB, click=Click(rollout_id=rid, step=0),
                          request_id="warm")
    with round_trips() as trips:
        out = world.service.approve(Ref(rollout_id=rid), actor=BOB,
                                    click=Click(rollout_id=rid, step=1), request_id="click-2")
    assert out.ok and world.weights() == {"llm-pool": 75, POOL: 25}
    assert trips.work == STEP
    with round_trips() as trips:
        again = world.service.approve(Ref(rollout_id=rid), actor=BOB,
                                      click=Click(rollout_id=rid, step=1), request_id="click-2")
    assert again.message == f"Already handled: {out.message}" and not again.changed
    assert trips.work == [["EVALSHA"]]
    assert world.weights() == {"llm-pool": 75, POOL: 25}


def test_a_scheduler_tick_that_steps_is_three_round_trips(world: World) -> None:
    rid = _started(world, auto=True)
    world.service.approve_plan(REF, actor=BOB)
    world.service.tick(rid)
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    world.clock.advance(2)
    with round_trips() as trips:
        out = world.service.tick(rid)
    assert out.changed and world.weights() == {"llm-pool": 75, POOL: 25}
    assert trips.work == STEP


def test_a_tick_with_nothing_due_is_two_round_trips(world: World) -> None:
    """Nothing to write: open and close; no confirm, no save."""
    rid = _started(world, auto=True)
    world.service.approve_plan(REF, actor=BOB)
    world.service.tick(rid)
    with round_trips() as trips:
        out = world.service.tick(rid)
    assert not out.changed and trips.work == [["EVALSHA"], ["EVALSHA"]]
    assert world.weights() == {"llm-pool": 90, POOL: 10}


def test_a_frozen_step_is_held_in_the_same_round_trips(world: World) -> None:
    """The freeze comes with the opening: holding a step costs no extra read."""
    _started(world)
    world.service.freeze(actor=ALICE, reason="incident")
    with round_trips() as trips:
        out = world.service.approve(REF, actor=BOB)
    assert not out.ok and "frozen" in out.message
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert trips.work == [["EVALSHA"], ["EVALSHA"]]  # open, close (the held step noted)
    assert world.service.get(REF).phase is Phase.AWAITING_APPROVAL


def test_a_cli_approve_is_the_connection_s_handshake_one_read_and_a_step(cli: Cli) -> None:
    """The CLI connects afresh each run (the client library's handshake is counted too),
    reads the rollout once to name the step it approves, then makes the step's three."""
    code, _, err = cli("start", POOL, "--interval", "0s", "--as", "alice")
    assert code == 0, err
    code, _, err = cli("approve", POOL, "--as", "bob")
    assert code == 0, err
    with round_trips() as trips:
        code, _, err = cli("approve", POOL, "--as", "bob")
    assert code == 0, err
    handshake = [sent for sent in trips.sent if sent[0] in HANDSHAKE]
    assert trips.sent == [*handshake, ["EVALSHA"], *STEP], trips.sent
