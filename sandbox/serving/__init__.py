"""Simulated LLM serving for canary analysis: per-pool model servers (vLLM-style metrics) and
endpoint pickers (llm_d_epp_* metrics), a load generator that follows the weights the route
and the rewrite have now, and knobs over HTTP to make a canary worse."""

from sandbox.serving.knobs import Behaviour, Knobs
from sandbox.serving.load import LoadGenerator
from sandbox.serving.metrics import PoolMetrics
from sandbox.serving.world import ServingWorld

__all__ = ["Behaviour", "Knobs", "LoadGenerator", "PoolMetrics", "ServingWorld"]
