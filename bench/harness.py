"""Timing and reporting: medians of repeated runs, ratios against a floor from the same run.

Absolute numbers depend on the machine; the ratio says how much the bot adds on top of the
least work the same operation must do here and now.
"""

from __future__ import annotations

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


def median_time(call: Callable[[], object], *, repeat: int, setup: Callable[[], object] | None
                = None) -> float:
    samples = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"
