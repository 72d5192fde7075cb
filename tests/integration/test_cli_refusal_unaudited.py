"""A refusal whose audit line Redis cannot take: the refusal is still the CLI's answer (exit 2,
its one line), with one line more saying the audit does not have it. A real redis-server of
the test's own, stopped after the domain refused and before the audit was written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import EXIT_OK, EXIT_REFUSED, UNAUDITED_NOTE
from rollout.service import RolloutService
from sandbox.redis_server import RedisServer
from tests.integration.conftest import Cli, unique_prefix

POOL = "llm-pool-version-2"
TWO_PERSON = ("refused: cli:alice started this rollout and cannot approve its steps "
              "(two-person rule): ask another approver")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _stop_redis_before_the_audit(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = RolloutService.record_denial

    def stopped_first(self: RolloutService, **kwargs: Any) -> bool:
        server.stop()
        return audit(self, **kwargs)

    monkeypatch.setattr(RolloutService, "record_denial", stopped_first)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_refusal_redis_cannot_audit_is_still_the_answer(
        cluster_kubeconfig: Path, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch,
        verbose: bool) -> None:
    """The two-person rule's refusal came out buried under the audit's traceback; exit 3
    ("retry") would have sent a script to retry what is refused for good."""
    monkeypatch.setenv("ROLLOUT_KEY_PREFIX", unique_prefix())
    cli = Cli(cluster_kubeconfig, own_redis.url)
    code, _, err = cli("start", POOL, "--as", "alice")
    assert code == EXIT_OK, err
    _stop_redis_before_the_audit(own_redis, monkeypatch)
    code, out, err = cli("approve", POOL, "--as", "alice", *(["-v"] if verbose else []))
    assert (code, out) == (EXIT_REFUSED, "")
    assert not own_redis.running
    said = err.splitlines()
    assert said[-2:] == [TWO_PERSON, UNAUDITED_NOTE]
    assert "Traceback" not in err
    if verbose:  # `-v` says why: the store's own words, in one log line
        why = [line for line in said if "could not audit the refusal" in line]
        assert len(why) == 1 and "of approve by cli:alice: Redis is unavailable" in why[0]
    else:
        assert len(said) == 2
