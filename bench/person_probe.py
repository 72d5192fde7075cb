"""A person's write while the scheduler is loaded: how long the bot's own rollback or
approve would wait on the cluster. A GET and a weight-moving JSON patch of a route no
rollout holds, with the official client under the bot's identity (the API server's
priority and fairness puts it in the same flow as the scheduler's requests), every
`period` seconds on a thread of its own, for as long as the window lasts. Each pair says on
the people's channel that it went to work and that it is done, as a person's command does in
its first and last Redis scripts (outside the time measured, as those scripts are)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from kubernetes import client
from urllib3.exceptions import HTTPError

from bench.probe import WindowProbe
from bench.step_floor import move_weights
from bot.kube import api_client


class PersonProbe(WindowProbe):
    """`with PersonProbe(...) as probe:` writes until the block ends; `probe.seconds` are the
    pairs' latencies (a pair refused or unanswered is counted at its time to fail, and in
    `failures`)."""

    requests_per_send = 2  # a GET and a PATCH

    def __init__(self, kubeconfig: Path, route: tuple[str, str], *,
                 announce: tuple[redis.Redis, str], period: float = 0.25) -> None:
        """`announce`: the Redis and the people's channel the scheduler listens on."""
        self._kubeconfig = kubeconfig
        self._route = route
        self._redis, self._channel = announce
        self._period = period
        super().__init__("person probe")
        self.seconds: list[float] = []

    def _run(self) -> None:
        api = api_client(str(self._kubeconfig), connections=2)
        objects = client.CustomObjectsApi(api)
        canary = 10
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                name = f"person-probe:{len(self.sent)}"
                self._redis.publish(self._channel, "+" + name)
                started = time.monotonic()
                self.sent.append(datetime.now(UTC))
                try:
                    move_weights(objects, *self._route, canary)
                    canary = 10 - canary
                except (client.ApiException, HTTPError, OSError):  # refused, or no answer
                    self.failures += 1
                self.seconds.append(time.monotonic() - started)
                self._redis.publish(self._channel, "-" + name)
                self._stop.wait(max(0.0, self._period - (time.monotonic() - began)))
        finally:
            api.close()  # type: ignore[no-untyped-call]
