"""Build the test world ahead of the suite: `python -m tests.support.build`.

Builds kube-apiserver and etcd into the cache (the first time only: several minutes on two
cores) and downloads the CRD modules, so that no test waits on a build.
"""

from __future__ import annotations

import os
import sys
import time

from tests.support.control_plane import binaries, cache_root
from tests.support.crds import official_crds


def main() -> int:
    started = time.monotonic()
    crds = official_crds()
    if os.environ.get("ROLLOUT_TEST_KUBECONFIG"):
        print(f"test world: the cluster of ROLLOUT_TEST_KUBECONFIG, {len(crds)} CRDs")
        return 0
    built = binaries(log=None)
    took = time.monotonic() - started
    print(f"test world ready in {took:.0f}s: {built.kube_apiserver.name} and {built.etcd.name} "
          f"under {cache_root()}, {len(crds)} CRDs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
