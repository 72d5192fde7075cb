"""Prometheus metrics for one app instance, in a registry of its own (no global registry).

Counts come from three places: the HTTP edge (requests and ack latency), the Slack handlers
(through the `handlers.telemetry.Telemetry` protocol) and the service's outcome listeners
(steps, rollbacks, approvals, failed cluster writes). Rollouts by phase are read from the
store at scrape time, so every replica reports the same truth. The scheduler's hold-back
under a throttling Kubernetes API (its window of ticks, the throttles met) is read from its
pacer at scrape time too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from rollout.domain.models import PauseKind, Phase, Rollout
from rollout.domain.verdict import Status
from rollout.pacing import TickPacer
from rollout.service import Outcome

log = logging.getLogger(__name__)

ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class _PhaseCollector(Collector):
    def __init__(self, rollouts: Callable[[], list[Rollout]]) -> None:
        self._rollouts = rollouts

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("rollout_bot_rollouts", "Rollouts known to the store, by phase "
                                  "(active ones and the most recent finished ones)",
                                  labels=["phase"])
        up = GaugeMetricFamily("rollout_bot_store_up", "1 when the store answered this scrape")
        counts = dict.fromkeys(Phase, 0)
        checks = _AnalysisGauges()
        try:
            for r in self._rollouts():
                counts[r.phase] += 1
                if r.active:
                    checks.add(r)
        except Exception:  # a scrape must answer even when Redis does not
            log.warning("could not list rollouts for /metrics", exc_info=True)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            for phase, count in counts.items():
                gauge.add_metric([phase.value], count)
        yield gauge
        yield up
        yield from checks.families()


class _AnalysisGauges:
    """The latest run of each active rollout's step analysis: values and verdicts by check."""

    def __init__(self) -> None:
        labels = ["rollout", "canary", "check"]
        self.values = GaugeMetricFamily(
            "rollout_bot_analysis_value", "Latest value of a canary analysis check, for the "
            "canary, the stable and the threshold (side)", labels=[*labels, "side"])
        self.verdicts = GaugeMetricFamily(
            "rollout_bot_analysis_check", "1 for the latest verdict of a canary analysis "
            "check (pass, fail, inconclusive)", labels=[*labels, "verdict"])
        self.split = GaugeMetricFamily(
            "rollout_bot_analysis_canary_share", "The canary's share of requests: written by "
            "the route (expected) and observed in the metrics", labels=["rollout", "canary",
                                                                        "kind"])

    def add(self, r: Rollout) -> None:
        state = r.step_analysis
        run = state.latest if state is not None and state.step == r.step else None
        if run is None:
            return
        for c in run.checks:
            for side, value in (("canary", c.canary), ("stable", c.stable),
                                ("threshold", c.threshold)):
                if value is not None:
                    self.values.add_metric([r.id, r.canary, c.name, side], value)
            for verdict in Status:
                self.verdicts.add_metric([r.id, r.canary, c.name, verdict.value],
                                         1 if c.status is verdict else 0)
        if run.split is not None:
            self.split.add_metric([r.id, r.canary, "expected"], run.split.expected)
            if run.split.observed is not None:
                self.split.add_metric([r.id, r.canary, "observed"], run.split.observed)

    def families(self) -> Iterator[Metric]:
        yield self.values
        yield self.verdicts
        yield self.split


class _PacerCollector(Collector):
    """The scheduler's hold-back, as this replica's scheduler has it (a replica that does not
    lead has a full window and no throttle)."""

    def __init__(self, pacer: TickPacer) -> None:
        self._pacer = pacer

    def collect(self) -> Iterator[Metric]:
        pacer = self._pacer
        yield GaugeMetricFamily(
            "rollout_bot_scheduler_tick_window", "Scheduler ticks let in flight at once: "
            "halved at each Kubernetes API throttle, grown back as steps land",
            value=pacer.window)
        yield GaugeMetricFamily("rollout_bot_scheduler_ticks_in_flight",
                                "Scheduler ticks holding a place in the window",
                                value=pacer.in_flight)
        yield GaugeMetricFamily("rollout_bot_scheduler_held", "1 while a Kubernetes API "
                                "throttle's Retry-After holds every scheduler tick back",
                                value=0 if pacer.held_until() is None else 1)
        yield CounterMetricFamily("rollout_bot_scheduler_throttles", "Scheduler ticks the "
                                  "Kubernetes API refused with 429", value=pacer.throttles)
        yield GaugeMetricFamily("rollout_bot_scheduler_people_in_flight", "People's commands "
                                "in flight that the scheduler's ticks make way for",
                                value=pacer.people)


class Metrics:
    """Implements `handlers.telemetry.Telemetry`; `observe_outcome` is a service listener."""

    def __init__(self, *, rollouts: Callable[[], list[Rollout]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rollout_bot_slack_requests", "Slack requests by kind and verb",
                                ["kind", "action"], registry=r)
        self.acks = Histogram("rollout_bot_slack_ack_seconds",
                              "Time from a Slack request's arrival to its ack", ["status"],
                              buckets=ACK_BUCKETS, registry=r)
        self.steps_applied = Counter("rollout_bot_steps_applied", "Plan steps written to the "
                                     "cluster", registry=r)
        self.rollbacks = Counter("rollout_bot_rollbacks", "Rollouts rolled back", registry=r)
        self.approvals = Counter("rollout_bot_approvals", "Step approvals recorded", registry=r)
        self.denials = Counter("rollout_bot_denials", "Requests refused by the authorization "
                               "policy or the two-person rule", ["action"], registry=r)
        self.kube_errors = Counter("rollout_bot_kubernetes_errors", "Kubernetes API failures "
                                   "seen by the bot", registry=r)
        self.slack_errors = Counter("rollout_bot_slack_api_errors", "Slack Web API and response "
                                    "URL failures", ["method"], registry=r)
        if rollouts is not None:
            r.register(_PhaseCollector(rollouts))

    def watch_pacer(self, pacer: TickPacer) -> None:
        """Report the scheduler's hold-back (`serve` runs a scheduler beside the app)."""
        self.registry.register(_PacerCollector(pacer))

    # -- Telemetry -------------------------------------------------------------------------

    def request(self, kind: str, action: str) -> None:
        self.requests.labels(kind=kind, action=action).inc()

    def slack_error(self, method: str) -> None:
        self.slack_errors.labels(method=method).inc()

    def kube_error(self) -> None:
        self.kube_errors.inc()

    def denial(self, action: str) -> None:
        self.denials.labels(action=action).inc()

    # -- edges -----------------------------------------------------------------------------

    def ack(self, seconds: float, *, status: int) -> None:
        self.acks.labels(status=str(status)).observe(seconds)

    def observe_outcome(self, outcome: Outcome) -> None:
        for event in outcome.events:
            if event.action == "step_applied":
                self.steps_applied.inc()
            elif event.action == "rolled_back":
                self.rollbacks.inc()
            elif event.action in ("approved", "plan_approved"):
                self.approvals.inc()
        r = outcome.rollout
        if not outcome.ok and r is not None and (
            r.phase is Phase.FAILED or (r.pause is not None and r.pause.kind is PauseKind.FAILURE)
        ):
            self.kube_errors.inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
