"""How long a CLI command takes to start: a fresh interpreter importing what every command
imports before it reads anything (the CLI and the wiring it builds), against a fresh
interpreter importing the libraries alone (the official Kubernetes client's configuration and
API client, redis and pydantic), a sample of each in turn. A command pays this before its
first request, and so does a replica or a scheduler that restarts."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.harness import spread_line

COMMAND = "import bot.cli, bot.bootstrap"
FLOOR = "import kubernetes.config, kubernetes.client, redis, pydantic"


def _started(code: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    return time.perf_counter() - began


def bench_startup(rounds: int) -> list[str]:
    """`rounds` samples of each, alternating which goes first."""
    samples: list[float] = []
    floors: list[float] = []
    for round_ in range(rounds):
        if round_ % 2:
            floors.append(_started(FLOOR))
        samples.append(_started(COMMAND))
        if not round_ % 2:
            floors.append(_started(FLOOR))
    return [spread_line("start a CLI command (its imports)", samples, "the libraries alone",
                        floors)]
