"""`python -m bench.kube_process KUBECONFIG [--no-controller]`: the Kubernetes API emulator in
a process of its own, so that under load it does not share the benchmark's interpreter lock;
without its gateway controller (which reconciles every route and pool on each write, too
slow for thousands of objects) where asked. It writes a kubeconfig, prints `ready`, and then
answers `count` on stdin with a JSON object of the requests served since the last `count`
({"<verb> <resource>": n})."""

from __future__ import annotations

import json
import sys
from collections import Counter

from sandbox.kube import KubeEmulator


def main() -> None:
    with KubeEmulator(seed="demo", controller="--no-controller" not in sys.argv[2:]) as emu:
        emu.write_kubeconfig(sys.argv[1])
        print("ready", flush=True)
        seen = 0
        for line in sys.stdin:
            if line.strip() != "count":
                continue
            served = emu.requests
            counts = Counter(f"{r.verb} {r.resource}" for r in served[seen:])
            seen = len(served)
            print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
