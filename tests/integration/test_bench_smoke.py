"""The benchmarks still run (they are measured with `make bench`, never asserted on here)."""

from __future__ import annotations

import subprocess
import sys


def test_bench_quick_run_prints_a_ratio_per_benchmark() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    ratios = [line for line in done.stdout.splitlines() if "ratio" in line]
    for name in ("ack, 20 concurrent", "redis per approve", "approve a step", "roll back",
                 "approve transition", "scheduler jobs"):
        assert sum(line.startswith(name) for line in ratios) == 1, (name, done.stdout)
    trips = [line for line in done.stdout.splitlines()
             if line.startswith("redis round trips per approve: 3.0")]
    assert len(trips) == 1, done.stdout
    idle = [line for line in done.stdout.splitlines() if line.startswith("idle leader")]
    assert len(idle) == 2 and all("before (full reload per sweep)" in line for line in idle), \
        done.stdout
