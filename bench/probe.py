"""What the scale benchmark's probes share: work on a thread of their own for as long as a
`with` block (the measured window) lasts, noting when each request is sent so that the
window's count of the bot's requests can leave them out."""

from __future__ import annotations

import threading
from datetime import datetime
from types import TracebackType
from typing import Self


class WindowProbe:
    """`with probe:` runs `_run` on a thread until the block ends (it should return once
    `_stop` is set); `sent` holds when each send went, of `requests_per_send` requests."""

    requests_per_send = 1

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.sent: list[datetime] = []
        self.failures = 0

    def requests_between(self, started: datetime, ended: datetime) -> int:
        """The probe's requests sent in [started, ended)."""
        return self.requests_per_send * sum(1 for at in self.sent if started <= at < ended)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._closed()

    def _run(self) -> None:
        raise NotImplementedError

    def _closed(self) -> None:
        """After the thread ended: let go of what the probe held."""
