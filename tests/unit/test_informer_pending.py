"""The bot's own writes an informer waits for are forgotten once given up on, also while its
watch never opens (a Role without `watch`, a proxy that cuts every watch): reads then go to
the cluster, and the informer's memory of the writes must not grow with every write the
process makes."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from rollout.adapters.kube.informer import Informer, WatchTiming
from tests.support.polling import eventually

ROUTE = "routes-to-llm"


class _Answer:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def release_conn(self) -> None:
        pass


class _ListOnly:
    """Lists one route; every watch is refused (403), as with a Role that grants only list."""

    def __init__(self) -> None:
        self.watches = 0

    def __call__(self, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            self.watches += 1
            raise ApiException(status=403, reason="Forbidden")
        route = {"metadata": {"name": ROUTE, "resourceVersion": "1"}}
        return _Answer(json.dumps({"metadata": {"resourceVersion": "1"},
                                   "items": [route]}).encode())


def test_writes_given_up_on_are_forgotten_while_the_watch_never_opens() -> None:
    cluster = _ListOnly()
    informer: Informer[dict[str, Any]] = Informer(
        "httproutes", cluster, lambda obj: obj,
        timing=WatchTiming(own_write_seconds=0.0, retry_seconds=60.0, recheck_seconds=60.0))
    informer.start()
    try:
        eventually(lambda: cluster.watches >= 1, message="the informer tried to watch")
        for version in range(2, 1002):  # the bot's writes, each read back past the cache
            informer.expect(ROUTE, str(version))
            assert informer.item(ROUTE) is None and not informer.live
        pending = informer._pending  # what it remembers
        assert len(pending) <= 1, f"{len(pending)} writes remembered"
    finally:
        informer.stop(5.0)
