"""Invariant 7: with Redis emptied, the route's annotations name the rollout and step;
the bot refuses new steps there until an operator recovers or releases it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from rollout.domain.errors import Conflict, NeedsOperator
from rollout.domain.models import Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, Cli, World

POOL = "llm-pool-version-2"
DEFAULT_ANALYSES = Path(__file__).parents[2] / "rollout" / "domain" / "analyses" / "default.yaml"
REF = Ref(canary=POOL)


def _at_25_then_lose_redis(world: World) -> str:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 25, 50, 100], interval_seconds=0))
    world.service.approve(REF, actor=BOB)
    world.service.approve(REF, actor=BOB)
    rollout_id = world.service.get(REF).id
    world.store.client.flushdb()
    return rollout_id


def test_status_says_what_the_cluster_shows_and_steps_are_refused(world: World) -> None:
    rollout_id = _at_25_then_lose_redis(world)
    status = world.service.status(REF)
    assert status.rollout is None
    assert rollout_id in status.cluster_note and "step 2" in status.cluster_note
    assert "rollout-bot recover" in status.cluster_note
    patches = world.route_patches()
    with pytest.raises(NeedsOperator, match="recover"):
        world.service.approve(REF, actor=BOB)
    with pytest.raises(NeedsOperator, match="recover"):
        world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    assert world.route_patches() == patches
    assert world.weights() == {"llm-pool": 75, POOL: 25}


def test_another_canary_cannot_start_on_the_orphaned_rule(world: World) -> None:
    """The rule belongs to the rollout its marker names, whatever canary a new start names:
    a start of another pool on it would overwrite the only record of the true baseline."""
    rollout_id = _at_25_then_lose_redis(world)
    route = world.route()
    patches = world.route_patches()
    with pytest.raises(NeedsOperator, match=f"{rollout_id}.*recover"):
        world.service.start(namespace="default", canary="llm-new", route="routes-to-llm",
                            stable="llm-pool", actor=ALICE, plan=build_plan())
    assert world.route_patches() == patches
    assert world.route()["metadata"]["annotations"] == route["metadata"]["annotations"]
    assert world.store.client.keys(world.store.key("*")) == []
    out = world.service.recover(namespace="default", canary=POOL, actor=BOB)
    assert out.rollout is not None and out.rollout.id == rollout_id


def test_recover_rebuilds_the_rollout_paused_and_it_can_continue(world: World) -> None:
    rollout_id = _at_25_then_lose_redis(world)
    out = world.service.recover(namespace="default", canary=POOL, actor=BOB)
    assert out.rollout is not None and out.rollout.id == rollout_id
    assert out.rollout.phase is Phase.PAUSED and out.rollout.step == 1
    with pytest.raises(Conflict, match="paused"):
        world.service.approve(REF, actor=BOB)
    world.service.resume(REF, actor=BOB)
    assert world.service.approve(REF, actor=BOB).ok
    assert world.weights() == {"llm-pool": 50, POOL: 50}
    world.service.rollback(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 100, POOL: 0}


def test_release_drops_the_marker_and_leaves_the_weights(world: World) -> None:
    _at_25_then_lose_redis(world)
    out = world.service.release(namespace="default", canary=POOL, actor=BOB)
    assert "weights left as they are" in out.message
    assert world.weights() == {"llm-pool": 75, POOL: 25}
    assert world.service.orphans("default", POOL) == []
    with pytest.raises(Conflict, match="already receives traffic"):
        world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())


def test_the_cli_documents_the_way_out(cli: Cli, world: World) -> None:
    del world
    cli("start", POOL, "--interval", "0s", "--as", "alice")
    cli("approve", POOL, "--as", "bob")
    url = cli.base[cli.base.index("--redis-url") + 1]
    redis.Redis.from_url(url).flushdb()
    code, out, _ = cli("status", POOL)
    assert code == 0 and "rollout-bot recover" in out
    code, _, err = cli("approve", POOL, "--as", "bob")
    assert code == 4 and "needs an operator" in err
    code, out, _ = cli("recover", POOL, "--as", "bob")
    assert code == 0 and "recovered" in out
    code, out, _ = cli("resume", POOL, "--as", "bob")
    assert code == 0


def test_recover_refuses_to_drop_an_analysis_this_bot_cannot_run_unless_told(
        cli: Cli, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Started with the default analysis; Redis emptied, and the bot redeployed with an
    analysis file that lacks it: recovered without it, the rollout would step unmeasured."""
    del world
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:9")  # started measured
    code, _, err = cli("start", POOL, "--interval", "0s", "--as", "alice")
    assert code == 0, err
    cli("approve", POOL, "--as", "bob")
    url = cli.base[cli.base.index("--redis-url") + 1]
    redis.Redis.from_url(url).flushdb()
    other = tmp_path / "analyses.yaml"
    other.write_text(DEFAULT_ANALYSES.read_text().replace("llm-serving", "renamed"))
    monkeypatch.setenv("ROLLOUT_ANALYSIS_FILE", str(other))
    code, _, err = cli("recover", POOL, "--as", "bob")
    assert code == 4 and "canary analysis 'llm-serving', which this bot cannot run" in err
    assert "--without-analysis" in err
    code, out, err = cli("recover", POOL, "--as", "bob", "--without-analysis")
    assert code == 0 and "recovered" in out, err


def test_a_route_replaced_without_the_bots_annotations_gets_its_record_back(
        world: World) -> None:
    """A route replaced mid-rollout by one without the bot's annotations (a `kubectl
    replace`, a GitOps sync) at the weights the rollout holds: the next step wrote the marker
    again but not the record, and after a loss of Redis the rollout could not be recovered."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 25, 50, 100], interval_seconds=0))
    assert world.service.approve(REF, actor=BOB).ok
    rollout_id = world.service.get(REF).id
    replaced = world.route()
    replaced["metadata"]["annotations"] = {}
    world.emulator.put_object(replaced)
    assert not world.route()["metadata"].get("annotations")
    assert world.service.approve(REF, actor=BOB).ok  # 75/25, the marker and the record back
    world.store.client.flushdb()
    out = world.service.recover(namespace="default", canary=POOL, actor=BOB)
    assert out.rollout is not None and out.rollout.id == rollout_id
    assert out.rollout.step == 1 and out.rollout.phase is Phase.PAUSED
    world.service.rollback(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 100, POOL: 0}
