"""The sandbox's load generator spreads requests by the weights it was given (or evenly, when
the gateway's ignore_weights knob is on); no thread, no HTTP: ``generate`` is driven here."""

from __future__ import annotations

import random

from sandbox.serving.knobs import Knobs
from sandbox.serving.load import LoadGenerator, Split, Traffic
from sandbox.serving.metrics import BASE_MODEL, PoolMetrics

POOLS = ("llm-pool", "llm-pool-version-2")


def generator(*, route_rate: float, rewrite_rate: float) -> LoadGenerator:
    pools = {p: PoolMetrics(p, rng=random.Random(1)) for p in POOLS}
    return LoadGenerator(kube_url="http://127.0.0.1:9", pools=pools, knobs=Knobs(),
                         traffic=Traffic(route_rate=route_rate, rewrite_rate=rewrite_rate),
                         rng=random.Random(7))


def test_requests_follow_the_route_weights() -> None:
    load = generator(route_rate=1000, rewrite_rate=0)
    load.generate(Split(routes={"r": (("llm-pool", 90), ("llm-pool-version-2", 10))},
                        rewrites={}), 10.0)
    canary = load.served[("llm-pool-version-2", BASE_MODEL)]
    assert sum(load.served.values()) == 10000
    assert 900 < canary < 1100


def test_ignoring_the_weights_spreads_evenly() -> None:
    load = generator(route_rate=1000, rewrite_rate=0)
    load.knobs.ignore_weights = True
    load.generate(Split(routes={"r": (("llm-pool", 90), ("llm-pool-version-2", 10))},
                        rewrites={}), 10.0)
    assert 4500 < load.served[("llm-pool-version-2", BASE_MODEL)] < 5500


def test_a_rewrite_spreads_its_model_over_the_targets_on_its_pool() -> None:
    load = generator(route_rate=0, rewrite_rate=1000)
    load.generate(Split(routes={}, rewrites={"lora": (
        "llm-pool", "lora", (("lora-v1", 75), ("lora-v2", 25)))}), 4.0)
    assert set(load.served) == {("llm-pool", "lora-v1"), ("llm-pool", "lora-v2")}
    assert 900 < load.served[("llm-pool", "lora-v2")] < 1100


def test_adapter_requests_take_the_route_first_and_are_rewritten_only_on_its_pool() -> None:
    load = generator(route_rate=0, rewrite_rate=1000)
    load.generate(Split(
        routes={"r": (("llm-pool", 80), ("llm-pool-version-2", 20))},
        rewrites={"lora": ("llm-pool", "lora", (("lora-v1", 50), ("lora-v2", 50)))}), 10.0)
    served = load.served
    assert set(served) == {("llm-pool", "lora-v1"), ("llm-pool", "lora-v2"),
                           ("llm-pool-version-2", "lora")}
    assert 1800 < served[("llm-pool-version-2", "lora")] < 2200  # the route's 20%
    assert 3600 < served[("llm-pool", "lora-v2")] < 4400  # half of the other 80%


def test_zero_weights_send_nothing_and_fractions_carry_over() -> None:
    load = generator(route_rate=3, rewrite_rate=0)
    split = Split(routes={"r": (("llm-pool", 0), ("llm-pool-version-2", 0))}, rewrites={})
    load.generate(split, 1.0)
    assert not load.served
    split = Split(routes={"r": (("llm-pool", 1),)}, rewrites={})
    for _ in range(4):
        load.generate(split, 0.25)  # 0.75 requests each time
    assert load.served[("llm-pool", BASE_MODEL)] == 3


def test_a_worse_adapter_does_not_make_its_pool_worse() -> None:
    knobs = Knobs()
    knobs.set("lora-v2", {"error_rate": 1.0})
    assert knobs.behaviour("llm-pool", "lora-v2").error_rate == 1.0
    assert knobs.behaviour("llm-pool", "lora-v1").error_rate == 0.0
    assert knobs.behaviour("llm-pool").error_rate == 0.0
