"""The benchmarks still run (they are measured with `make bench`, never asserted on here)."""

from __future__ import annotations

import subprocess
import sys


def test_bench_quick_run_prints_a_ratio_per_benchmark() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "ratio" in line]
    assert len(lines) == 4, done.stdout
