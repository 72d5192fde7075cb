"""Health gates: what the gateway says about the route after a step.

A weight change is only half done when the API server accepted it: the gateway must accept
the route and resolve every backend. These pure checks read `status.parents[].conditions`
of the generation the bot wrote; a condition about an older generation says nothing yet. One
that names no generation (the field is optional) is taken as current, as preflight takes a
pool's: skipped, a gateway that never names one could reject every step unseen.
"""

from __future__ import annotations

from typing import Any

GATED_CONDITIONS = ("Accepted", "ResolvedRefs")


def gateway_problem(route: dict[str, Any]) -> str:
    """'' when no parent reports trouble with the current generation, else what it reports."""
    generation = route.get("metadata", {}).get("generation")
    problems = []
    for parent in (route.get("status") or {}).get("parents") or []:
        name = (parent.get("parentRef") or {}).get("name", "?")
        for cond in parent.get("conditions") or []:
            if cond.get("type") not in GATED_CONDITIONS or cond.get("status") != "False":
                continue
            observed = cond.get("observedGeneration")
            if generation is not None and observed is not None and observed != generation:
                continue  # about an older spec
            reason = cond.get("reason", "")
            message = cond.get("message", "")
            problems.append(f"gateway {name} reports {cond['type']}=False"
                            + (f" ({reason}{': ' + message if message else ''})"
                               if reason else ""))
    return "; ".join(problems)
