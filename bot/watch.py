"""`rollout-bot status POOL --watch`: follow a rollout from a terminal until it finishes or
pauses, one line per change.

The poll and the clock are passed in, so a test drives the loop without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot.text import status_lines, watch_line
from handlers.grammar import duration_value
from handlers.mentions import plain
from rollout.domain.errors import InvalidInput
from rollout.domain.models import Phase
from rollout.service import Status

DEFAULT_EVERY_SECONDS = 2.0


def watch_every(every: str | None, *, watching: bool) -> float:
    """How often `--watch` looks: `--every` read as the grammar reads a duration, else 2s.
    `--every` without `--watch` is refused, not ignored: `status --every 5s` looked once and
    said nothing of it; `--every 0` is refused, not taken as 1s."""
    if every is None:
        return DEFAULT_EVERY_SECONDS
    if not watching:
        raise InvalidInput("`--every` is how often `--watch` looks; without `--watch` there "
                           "is one look: add `--watch` or drop `--every`")
    seconds = duration_value("--every", every)
    if seconds < 1:
        raise InvalidInput(f"`--every` wants a duration of at least 1s, like 2s or 1m, "
                           f"not `{every}`")
    return seconds


def settled(status: Status) -> bool:
    """Nothing more will happen without a person: finished, paused, or no rollout at all."""
    r = status.rollout
    return r is None or not r.active or r.phase is Phase.PAUSED


def watch(fetch: Callable[[], Status], out: TextIO, *, sleep: Callable[[float], None],
          now: Callable[[], datetime], every: float = DEFAULT_EVERY_SECONDS) -> Status:
    """Print the status once in full, then a line whenever it changes, in the words as typed
    (as `status` prints them); return the status that ended the watch."""
    status = fetch()
    for line in status_lines(status):
        print(plain(line), file=out, flush=True)
    last = watch_line(status, now()).split("  ", 1)[-1]
    while not settled(status):
        sleep(every)
        status = fetch()
        line = watch_line(status, now())
        if line.split("  ", 1)[-1] != last:  # the same state at a later time is no news
            print(plain(line), file=out, flush=True)
            last = line.split("  ", 1)[-1]
    return status
