"""`rollout-bot status POOL --watch`: follow a rollout from a terminal until it finishes or
pauses, one line per change.

The poll and the clock are passed in, so a test drives the loop without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot.text import status_lines, watch_line
from rollout.domain.models import Phase
from rollout.service import Status

DEFAULT_EVERY_SECONDS = 2.0


def settled(status: Status) -> bool:
    """Nothing more will happen without a person: finished, paused, or no rollout at all."""
    r = status.rollout
    return r is None or not r.active or r.phase is Phase.PAUSED


def watch(fetch: Callable[[], Status], out: TextIO, *, sleep: Callable[[float], None],
          now: Callable[[], datetime], every: float = DEFAULT_EVERY_SECONDS) -> Status:
    """Print the status once in full, then a line whenever it changes; return the status
    that ended the watch."""
    status = fetch()
    for line in status_lines(status):
        print(line, file=out, flush=True)
    last = watch_line(status, now()).split("  ", 1)[-1]
    while not settled(status):
        sleep(every)
        status = fetch()
        line = watch_line(status, now())
        if line.split("  ", 1)[-1] != last:  # the same state at a later time is no news
            print(line, file=out, flush=True)
            last = line.split("  ", 1)[-1]
    return status
