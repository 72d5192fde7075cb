"""How each pool or adapter behaves, changed at run time (over HTTP) to make a canary worse.

A behaviour is keyed by a pool name or an adapter name (a rewrite target); a request uses its
adapter's behaviour where one is set, else its pool's. ``ignore_weights`` is the gateway's:
it spreads requests evenly whatever the route and the rewrite say.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Behaviour:
    error_rate: float = 0.0  # share of requests that fail (HTTP 500 at the picker)
    ttft: float = 0.2  # mean time to first token, seconds
    itl: float = 0.025  # mean inter-token latency, seconds
    queue: float = 1.0  # mean requests waiting on a server
    kv_cache: float = 0.4  # KV-cache usage, 0..1

    def validated(self) -> Behaviour:
        if not 0.0 <= self.error_rate <= 1.0 or not 0.0 <= self.kv_cache <= 1.0:
            raise ValueError("error_rate and kv_cache are fractions between 0 and 1")
        if min(self.ttft, self.itl, self.queue) < 0:
            raise ValueError("ttft, itl and queue cannot be negative")
        return self


NAMES = frozenset(f.name for f in fields(Behaviour))


class Knobs:
    """Thread-safe: the load generator reads while the HTTP handler writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, Behaviour] = {}
        self._ignore_weights = False

    def behaviour(self, pool: str, adapter: str | None = None) -> Behaviour:
        with self._lock:
            if adapter is not None and adapter in self._by_name:
                return self._by_name[adapter]
            return self._by_name.get(pool, Behaviour())

    def set(self, name: str, changes: dict[str, Any]) -> Behaviour:
        """Change some fields of ``name``'s behaviour; ValueError names a bad field or value."""
        unknown = sorted(set(changes) - NAMES)
        if unknown:
            raise ValueError(f"unknown knob(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(NAMES))}")
        try:
            values = {k: float(v) for k, v in changes.items()}
        except (TypeError, ValueError):
            raise ValueError("knob values are numbers") from None
        with self._lock:
            current = self._by_name.get(name, Behaviour())
            updated = replace(current, **values).validated()
            self._by_name[name] = updated
            return updated

    def reset(self) -> None:
        with self._lock:
            self._by_name.clear()
            self._ignore_weights = False

    @property
    def ignore_weights(self) -> bool:
        with self._lock:
            return self._ignore_weights

    @ignore_weights.setter
    def ignore_weights(self, value: bool) -> None:
        with self._lock:
            self._ignore_weights = value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"ignore_weights": self._ignore_weights,
                    "behaviours": {k: asdict(v) for k, v in sorted(self._by_name.items())},
                    "defaults": asdict(Behaviour())}
