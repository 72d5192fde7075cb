"""`python -m bench.profiled_scheduler OUT`: `rollout-bot scheduler` with a cProfile in every
thread, merged into OUT (pstats) when it exits. `python -m cProfile` would see only the main
thread, which here only waits: the steps run on APScheduler's worker threads. Each profile
counts its thread's CPU time: with wall time, a thread waiting for the GIL or a reply would
charge the wait to whatever it was in, and 32 busy threads make that most of the profile."""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time
from types import FrameType
from typing import Any

from bot.cli import main as cli_main

_profiles: list[cProfile.Profile] = []


def _profile_this_thread(frame: FrameType, event: str, arg: Any) -> None:
    """The first profiling event of a new thread hands the thread to a profiler of its own."""
    profile = cProfile.Profile(time.thread_time)
    _profiles.append(profile)
    profile.enable()


def main() -> int:
    out = sys.argv[1]
    threading.setprofile(_profile_this_thread)
    main_profile = cProfile.Profile(time.thread_time)
    main_profile.enable()
    try:
        return cli_main(["scheduler"])
    finally:
        main_profile.disable()
        stats = pstats.Stats(main_profile)
        for profile in list(_profiles):
            profile.disable()  # stops collecting, from here: the stats are what it holds
            stats.add(profile)
        stats.dump_stats(out)


if __name__ == "__main__":
    raise SystemExit(main())
