"""Helpers shared by the integration and end-to-end tiers."""

from __future__ import annotations

import json

from tests.support.real_cluster import RealCluster


def weight_writes(emulator: RealCluster, *, resource: str = "httproutes",
                  field: str = "backendRefs") -> list[list[int]]:
    """The weights of every successful write of rule 0's `field`, in order, from the
    emulator's request log: how many times, and with what, the bot moved traffic."""
    writes = []
    for r in emulator.requests:
        if r.verb != "patch" or r.resource != resource or r.status >= 300:
            continue
        for op in json.loads(r.body):
            if op["path"] == f"/spec/rules/0/{field}":
                writes.append([entry.get("weight", 1) for entry in op["value"]])
    return writes
