"""An emulated Kubernetes API server, faithful where the rollout bot depends on it.

Real HTTP (waitress), resourceVersion/generation semantics, 409 on stale writes, merge and JSON
patches (422 on a failed ``test``), the status subresource, label/field selectors, watch,
discovery for kubectl, validation, pruning and defaulting from the official CRDs it is given
(structural schema and CEL rules), a simulated gateway controller, and fault injection with a
request log for tests.
"""

from sandbox.kube.faults import Fault, RequestRecord
from sandbox.kube.server import KubeEmulator, serve_forever

__all__ = ["Fault", "KubeEmulator", "RequestRecord", "serve_forever"]
