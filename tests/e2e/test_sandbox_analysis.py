"""The sandbox's serving world follows the bot's own writes: after the bot applies a step
through the chat, the canary's observed share in the sandbox's Prometheus is the step's
weight, and making the canary worse shows in the shipped analysis.

The bot does not act on the analysis yet (README, "Canary analysis (building blocks)"): this
asks the analysis directly, as the scheduler will.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.sandbox import CHANNEL, Sandbox
from rollout.adapters.analysis_file import load_default
from rollout.adapters.prometheus import PrometheusAnalysis
from rollout.domain.analysis import AnalysisSpec, Subject, SubjectKind
from rollout.domain.verdict import Outcome, StepAnalysis, Verdict, advance
from tests.e2e.test_sandbox import _button, _eventually, _weights
from tests.support.polling import eventually


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(chat_port=0, data_dir=tmp_path / "sandbox", tick="1s").start()
    try:
        if not box.prometheus_url:
            pytest.skip("prometheus is not installed (make prometheus installs it)")
        yield box
    finally:
        box.stop()


def _quick() -> AnalysisSpec:
    _, spec = load_default().select(None, SubjectKind.POOL)
    return spec.model_copy(update={
        "interval": timedelta(seconds=1), "window": timedelta(seconds=10),
        "warmup": timedelta(seconds=3), "min_samples": 50, "failure_limit": 1})


def _until(port: PrometheusAnalysis, subject: Subject, want: Outcome) -> Verdict:
    spec, state = _quick(), StepAnalysis(step=1, started_at=datetime.now(UTC))

    def once() -> Verdict:
        nonlocal state
        state, verdict = advance(spec, subject, state, port, datetime.now(UTC))
        assert verdict.outcome is want, verdict.reason
        return verdict

    return eventually(once, timeout=60, step=0.5, message=f"a {want} verdict")


def test_the_observed_share_follows_the_bots_step(sandbox: Sandbox) -> None:
    sandbox.slack.send_slash_command("U0ALICE", CHANNEL,
                                     "llm-pool-version-2 start --steps 25,100 --interval 1h")
    ts, value = _eventually(lambda: _button(sandbox, "rollout_approve"), box=sandbox)
    sandbox.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
    _eventually(lambda: _weights(sandbox) == [75, 25], box=sandbox)

    port = PrometheusAnalysis(sandbox.prometheus_url)
    subject = Subject(kind=SubjectKind.POOL, namespace="default", stable="llm-pool",
                      canary="llm-pool-version-2", canary_share=0.25)
    healthy = _until(port, subject, Outcome.PASSED)
    assert healthy.split is not None and healthy.split.observed is not None
    assert abs(healthy.split.observed - 0.25) < 0.08

    assert sandbox.serving is not None
    sandbox.serving.knobs.set("llm-pool-version-2", {"error_rate": 0.5})
    worse = _until(port, subject, Outcome.FAILED)
    assert worse.failing is not None and worse.failing.name == "error-rate"
    assert worse.failing.canary is not None and worse.failing.canary > 0.25
