"""The shipped analysis' adapter TTFT measures streaming requests only: the endpoint picker
records a non-streaming request's whole duration as its time to first token (its
llm_d_epp_request_ttft_seconds carries streaming="true"|"false")."""

from __future__ import annotations

from datetime import timedelta

from rollout.adapters.analysis_file import load_default
from rollout.domain.analysis import Subject, SubjectKind, queries_for

ADAPTERS = Subject(kind=SubjectKind.ADAPTER, namespace="default", stable="lora-a",
                   canary="lora-b", pool="llm-pool", model="chat", canary_share=0.1)


def test_adapter_ttft_and_its_samples_count_streaming_requests_only() -> None:
    _, spec = load_default().select(None, SubjectKind.ADAPTER)
    queries = {q.key: q.promql for q in queries_for(spec, ADAPTERS, timedelta(minutes=5))}
    for side in ("canary", "stable"):
        for key in (f"adapter-ttft-p95/{side}", f"adapter-ttft-p95/{side}/samples"):
            assert 'streaming="true"' in queries[key], key
            assert "llm_d_epp_request_ttft_seconds" in queries[key]
    assert 'target_model_name="lora-b",streaming="true"' in queries["adapter-ttft-p95/canary"]


def test_no_other_query_of_the_shipped_analysis_filters_on_streaming() -> None:
    """Only the picker's TTFT histogram has the label; a filter elsewhere would match nothing."""
    spec = load_default().analyses["llm-serving"]
    for check in spec.checks:
        if check.name != "adapter-ttft-p95":
            assert "streaming" not in check.query and "streaming" not in (check.samples or "")
