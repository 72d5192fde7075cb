"""The benchmarks still run (they are measured with `make bench`, never asserted on here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_bench_quick_run_prints_a_ratio_per_benchmark() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    ratios = [line for line in done.stdout.splitlines() if "ratio" in line]
    for name in ("ack, 20 concurrent", "redis per approve", "approve a step", "roll back",
                 "approve transition", "scheduler jobs",
                 "approve to weights, service approve, emulator",
                 "approve to weights, Slack button, emulator",
                 "start a CLI command (its imports)"):
        assert sum(line.startswith(name) for line in ratios) == 1, (name, done.stdout)
    trips = [line for line in done.stdout.splitlines()
             if line.startswith("redis round trips per approve: 3.0")]
    assert len(trips) == 1, done.stdout
    idle = [line for line in done.stdout.splitlines() if line.startswith("idle leader")]
    assert len(idle) == 2 and all("before (full reload per sweep)" in line for line in idle), \
        done.stdout
    lines = done.stdout.splitlines()
    for head in ("  per service approve, emulator:", "  per button approve, emulator:"):
        assert sum(line.startswith(head) and "Kubernetes requests" in line and "Redis" in line
                   for line in lines) == 1, (head, done.stdout)
    scale = [line for line in lines if line.startswith("scale, 10 rollouts")]
    assert len(scale) == 1 and "step lag p50" in scale[0] and "floor: the due time" in scale[0], \
        done.stdout
    assert sum(line.startswith("  scale, 10 rollouts") and "idle scheduler" in line
               for line in lines) == 1, done.stdout
    assert sum(line.startswith("  floor: a step's GET and PATCH alone") and "of the floor" in line
               for line in lines) == 1, done.stdout
    plans = [re.search(r"\((\d+) plans", line) for line in lines
             if line.startswith("  a plan approved meanwhile")]
    assert len(plans) == 1 and plans[0] is not None and int(plans[0][1]) >= 1, done.stdout


def test_bench_refuses_a_bad_size_and_runs_nothing() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "scale", "--sizes", "0,x"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "want counts like 100,300,1000" in done.stderr
    assert "scale," not in done.stdout


def test_bench_refuses_a_profile_it_could_not_write_and_runs_nothing(tmp_path: Path) -> None:
    """It used to find out at the end of the largest size, minutes later."""
    for bad in (str(tmp_path / "missing" / "scale.prof"), str(tmp_path)):
        done = subprocess.run([sys.executable, "-m", "bench", "--only", "scale",
                               "--profile", bad], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 2
        assert "want a file in an existing directory" in done.stderr
        assert "scale," not in done.stdout
