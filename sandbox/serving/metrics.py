"""One pool's simulated metrics: its model servers (vLLM names) and its endpoint picker
(``llm_d_epp_*`` names), each in its own registry because Prometheus scrapes them as
separate targets; neither carries a pool label, as in a real cluster.

Requests are simulated, not served: each one draws its latencies from the pool's (or
adapter's) behaviour and records them where vLLM and the picker would.
"""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sandbox.serving.knobs import Behaviour

BASE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TOKENS_PER_REQUEST = (24, 48)
ITL_SAMPLES_PER_REQUEST = 5  # enough for a quantile, without a sample per token

# vLLM's own buckets for these histograms
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
# the endpoint picker's buckets
_EPP_TTFT_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5,
                     6, 8, 10, 15, 20, 30, 45, 60, 120)
_EPP_DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3,
                         4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480,
                         600, 900, 1200, 1800, 2700, 3600)
_EPP_LABELS = ("model_name", "target_model_name", "fairness_id", "priority")


class PoolMetrics:
    """The model servers and the endpoint picker of one InferencePool."""

    def __init__(self, pool: str, *, rng: random.Random | None = None) -> None:
        self.pool = pool
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.vllm = CollectorRegistry(auto_describe=True)
        self.epp = CollectorRegistry(auto_describe=True)
        labels = ("model_name", "engine")
        self._ttft = Histogram("vllm:time_to_first_token_seconds",
                               "Histogram of time to first token in seconds.", labels,
                               registry=self.vllm, buckets=_TTFT_BUCKETS)
        self._itl = Histogram("vllm:inter_token_latency_seconds",
                              "Histogram of inter-token latency in seconds.", labels,
                              registry=self.vllm, buckets=_ITL_BUCKETS)
        self._e2e = Histogram("vllm:e2e_request_latency_seconds",
                              "Histogram of e2e request latency in seconds.", labels,
                              registry=self.vllm, buckets=_E2E_BUCKETS)
        self._success = Counter("vllm:request_success", "Count of successfully processed "
                                "requests.", (*labels, "finished_reason"), registry=self.vllm)
        self._waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be "
                              "processed.", labels, registry=self.vllm)
        self._kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent "
                         "usage.", labels, registry=self.vllm)
        self._requests = Counter("llm_d_epp_request", "Total number of processed requests.",
                                 _EPP_LABELS, registry=self.epp)
        self._errors = Counter("llm_d_epp_request_error", "Total number of request errors.",
                               (*_EPP_LABELS, "error_code"), registry=self.epp)
        self._epp_ttft = Histogram("llm_d_epp_request_ttft_seconds", "Time to first token in "
                                   "seconds.", (*_EPP_LABELS, "streaming"), registry=self.epp,
                                   buckets=_EPP_TTFT_BUCKETS)
        self._epp_duration = Histogram("llm_d_epp_request_duration_seconds", "End-to-end "
                                       "request latency distribution in seconds.", _EPP_LABELS,
                                       registry=self.epp, buckets=_EPP_DURATION_BUCKETS)
        self._ready = Gauge("llm_d_epp_ready_endpoints", "The number of ready endpoints in "
                            "the inference server pool.", ("name",), registry=self.epp)
        self._ready.labels(pool).set(2)
        server = (BASE_MODEL, "0")
        for metric in (self._ttft, self._itl, self._e2e):  # present before any traffic
            metric.labels(*server)
        self._waiting.labels(*server).set(0)
        self._kv.labels(*server).set(0)

    def serve(self, behaviour: Behaviour, *, model: str, target: str) -> bool:
        """Record one request for ``model`` rewritten to ``target``; True if it succeeded."""
        rng = self._rng
        server = (BASE_MODEL, "0")
        epp = (model, target, "", "0")
        with self._lock:
            self._requests.labels(*epp).inc()
            self._waiting.labels(*server).set(round(rng.uniform(0, 2 * behaviour.queue)))
            self._kv.labels(*server).set(min(1.0, behaviour.kv_cache * rng.uniform(0.9, 1.1)))
            if rng.random() < behaviour.error_rate:
                self._errors.labels(*epp, "500").inc()
                self._success.labels(*server, "abort").inc()
                return False
            ttft = behaviour.ttft * rng.uniform(0.8, 1.2)
            itl = behaviour.itl * rng.uniform(0.8, 1.2)
            tokens = rng.randint(*TOKENS_PER_REQUEST)
            e2e = ttft + tokens * itl
            self._ttft.labels(*server).observe(ttft)
            for _ in range(ITL_SAMPLES_PER_REQUEST):
                self._itl.labels(*server).observe(itl * rng.uniform(0.9, 1.1))
            self._e2e.labels(*server).observe(e2e)
            self._success.labels(*server, "stop").inc()
            self._epp_ttft.labels(*epp, "true").observe(ttft)
            self._epp_duration.labels(*epp).observe(e2e)
            return True

    def exposition(self, which: str) -> bytes:
        """The Prometheus text format of ``vllm`` or ``epp``."""
        registry = {"vllm": self.vllm, "epp": self.epp}[which]
        return generate_latest(registry)
