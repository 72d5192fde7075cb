"""A REDIS_URL whose db number the server does not have: the server refuses the connection's
SELECT. Every command then fails as Redis being unavailable, with the server's reason, and
the CLI says so in one line; it once left a traceback (an uncaught ResponseError)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli import EXIT_RETRY, main
from rollout.adapters.store import RedisStore
from rollout.domain.errors import StoreUnavailable
from sandbox.redis_server import RedisServer
from tests.unit.builders import TARGET

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
"""


def _db_99(server: RedisServer) -> str:
    return server.url.rsplit("/", 1)[0] + "/99"  # a server has 16 unless told otherwise


def test_every_store_call_is_unavailable_with_the_reason(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(_db_99(redis_server), prefix="setup")
    calls = (store.active_ids, store.ping, lambda: store.acquire(TARGET.object_key),
             lambda: store.open(key=TARGET.object_key, preempt=False, memo=None, person=True))
    for call in calls:
        with pytest.raises(StoreUnavailable, match="DB index is out of range"):
            call()


def test_the_cli_says_it_in_one_line(redis_server: RedisServer, tmp_path: Path) -> None:
    """`list` asks Redis only: its kubeconfig is read, its cluster never asked."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    out, err = io.StringIO(), io.StringIO()
    code = main(["list", "--redis-url", _db_99(redis_server), "--kubeconfig",
                 str(kubeconfig)], out=out, err=err)
    assert code == EXIT_RETRY, err.getvalue()
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unavailable:"), lines
    assert "DB index is out of range" in lines[0] and "REDIS_URL" in lines[0]
    assert out.getvalue() == ""
