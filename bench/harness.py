"""Timing and reporting: medians of repeated runs, ratios against a floor from the same run.

Absolute numbers depend on the machine; the ratio says how much the bot adds on top of the
least work the same operation must do here and now.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    median_s: float
    floor_name: str
    floor_s: float

    @property
    def ratio(self) -> float:
        return self.median_s / self.floor_s if self.floor_s > 0 else float("inf")

    def line(self) -> str:
        return (f"{self.name:<44} {_fmt(self.median_s):>10}   floor {self.floor_name}: "
                f"{_fmt(self.floor_s):>10}   ratio {self.ratio:6.1f}x")


def interleaved(call: Callable[[], object], floor: Callable[[], object], *, repeat: int,
                setup: Callable[[], object] | None = None) -> tuple[float, float]:
    """Median times of `call` and of `floor`, a sample of each in turn (`setup` before each
    sample of `call`, untimed), so that whatever else the machine does weighs on both; the
    order changes each round, so that neither always runs in the wake of the other."""
    samples: list[float] = []
    floors: list[float] = []
    for round_ in range(repeat):
        if round_ % 2:
            floors.append(_timed(floor))
        if setup is not None:
            setup()
        samples.append(_timed(call))
        if not round_ % 2:
            floors.append(_timed(floor))
    return statistics.median(samples), statistics.median(floors)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def percentile(samples: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `samples`, nearest rank: p99 of 200 samples is the 198th."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def spread_line(name: str, samples: list[float], floor_name: str, floor: list[float]) -> str:
    """p50 and p99 of `samples` against the same of a floor measured in the same run."""
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    f50, f99 = percentile(floor, 0.5), percentile(floor, 0.99)
    return (f"{name}: p50 {_fmt(p50)}  p99 {_fmt(p99)}   floor {floor_name}: "
            f"p50 {_fmt(f50)}  p99 {_fmt(f99)}   ratio p50 {p50 / f50:.1f}x  "
            f"p99 {p99 / f99:.1f}x")
