"""Whether the API server's priority and fairness queued the bot's requests over a window.

A person's command shares the scheduler's flow (one service account). A priority level of
its own (a second service account, a FlowSchema) would take it past a queue only where
requests do queue for seats; this reads whether they did: kube-apiserver's own metrics, read
as the admin before and after the window, per priority level: the requests dispatched, the
mean time they waited for a seat, the share that waited longer than 5 ms, and the rejected."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

WAIT = "apiserver_flowcontrol_request_wait_duration_seconds"
REJECTED = "apiserver_flowcontrol_rejected_requests_total"
SEATS = "apiserver_flowcontrol_nominal_limit_seats"
#: the wait histogram's bucket a request that did not queue falls in
QUICK_BUCKET = 0.005


@dataclass
class Level:
    """One priority level's counters (cumulative, as the server keeps them)."""

    dispatched: float = 0.0
    waited_seconds: float = 0.0
    quick: float = 0.0  # dispatched within QUICK_BUCKET
    rejected: float = 0.0
    seats: float = 0.0


def server_metrics(admin: client.ApiClient) -> str:
    """kube-apiserver's /metrics, as the admin."""
    request = admin.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    answer: Any = admin.call_api(*request, _request_timeout=30)
    text: str = answer.read().decode()
    return text


def levels(metrics: str) -> dict[str, Level]:
    """The priority levels' counters in a /metrics text ('' for a server without any)."""
    found: dict[str, Level] = defaultdict(Level)
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            name = sample.labels.get("priority_level")
            if name is None:
                continue
            level, executed = found[name], sample.labels.get("execute") == "true"
            if sample.name == f"{WAIT}_count" and executed:
                level.dispatched += sample.value
            elif sample.name == f"{WAIT}_sum" and executed:
                level.waited_seconds += sample.value
            elif (sample.name == f"{WAIT}_bucket" and executed
                  and float(sample.labels.get("le", "nan")) == QUICK_BUCKET):
                level.quick += sample.value
            elif sample.name == REJECTED:
                level.rejected += sample.value
            elif sample.name == SEATS:
                level.seats = sample.value
    return dict(found)


def window_line(before: dict[str, Level], after: dict[str, Level]) -> str:
    """What each priority level that served anything did between the two readings."""
    parts = []
    for name in sorted(after):
        was, now = before.get(name, Level()), after[name]
        dispatched = now.dispatched - was.dispatched
        rejected = now.rejected - was.rejected
        if dispatched <= 0 and rejected <= 0:
            continue
        waited = (now.waited_seconds - was.waited_seconds) / max(dispatched, 1)
        queued = 1 - (now.quick - was.quick) / max(dispatched, 1)
        parts.append(f"{name} ({now.seats:.0f} seats): {dispatched:.0f} dispatched, mean wait "
                     f"for a seat {waited * 1e3:.2f} ms, {100 * queued:.1f}% waited over "
                     f"{QUICK_BUCKET * 1e3:.0f} ms, {rejected:.0f} rejected")
    return ("  the API server's priority and fairness over the window, by priority level: "
            + ("; ".join(parts) if parts else "n/a (no such metrics)"))
