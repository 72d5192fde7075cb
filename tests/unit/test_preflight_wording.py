"""Every preflight finding in full: which check, whether it refuses or waits, the problem and
the remedy, word for word. A person acts on the remedy, so a changed one must be seen."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from rollout.domain.facts import LEGACY_GROUP, POOL_GROUP, Condition, ParentStatus
from rollout.domain.findings import Check, Finding, Outcome
from rollout.domain.preflight import (
    CapacityPolicy,
    PreflightRequest,
    check_capacity,
    check_objectives,
    check_pool,
    check_rewrite,
    preflight,
)
from tests.unit.facts_builders import CANARY, STABLE, objectives, pods, pool, world
from tests.unit.test_preflight import rewrite

RIVALS = world(
    rewrites=(
        rewrite("lora", "2026-01-01T00:00:00Z", "lora"),
        rewrite("lora-b", "2026-01-02T00:00:00Z", "lora"),
    )
)
GATEWAY_SAYS_NO = (
    ParentStatus(
        name="inference-gateway",
        conditions=(
            Condition(
                type="Accepted",
                status="False",
                reason="NotAllowed",
                message="no grant",
                observed_generation=1,
            ),
            Condition(type="ResolvedRefs", status="False", reason="X", observed_generation=1),
        ),
    ),
)
NO_REASON = (
    ParentStatus(
        name="inference-gateway",
        conditions=(Condition(type="ResolvedRefs", status="False", observed_generation=1),),
    ),
)


def refused(check: Check, problem: str, remedy: str) -> tuple[Check, Outcome, str, str]:
    return check, Outcome.REFUSE, problem, remedy


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        pytest.param(
            lambda: check_pool(world(), name="llm-pool-version-3"),
            [
                refused(
                    Check.POOL,
                    "InferencePool llm-pool-version-3 not found in namespace default",
                    "Create it first (same model configuration as the stable pool); "
                    "pools there: llm-pool, llm-pool-version-2",
                ),
            ],
            id="missing",
        ),
        pytest.param(
            lambda: check_pool(world(pools=()), name="x"),
            [
                refused(
                    Check.POOL,
                    "InferencePool x not found in namespace default",
                    "Create it first (same model configuration as the stable pool)",
                ),
            ],
            id="missing empty",
        ),
        pytest.param(
            lambda: check_pool(
                world(pools=(pool(STABLE), pool(CANARY, group=LEGACY_GROUP))),
                name=CANARY,
                group=POOL_GROUP,
            ),
            [
                refused(
                    Check.POOL,
                    "InferencePool llm-pool-version-2 exists only as "
                    "inference.networking.x-k8s.io/v1alpha2, but the route refers "
                    "to group inference.networking.k8s.io: the gateway would not "
                    "resolve it",
                    "Create llm-pool-version-2 as inference.networking.k8s.io/v1 "
                    "(the GA API), or point the route's backendRef at group "
                    "inference.networking.x-k8s.io",
                ),
            ],
            id="legacy",
        ),
        pytest.param(
            lambda: check_pool(
                world(pools=(pool(STABLE), pool(CANARY, group=POOL_GROUP))),
                name=CANARY,
                group=LEGACY_GROUP,
            ),
            [
                refused(
                    Check.POOL,
                    "InferencePool llm-pool-version-2 exists only as "
                    "inference.networking.k8s.io/v1, but the route refers to group "
                    "inference.networking.x-k8s.io: the gateway would not resolve it",
                    "Point the route's backendRef at group inference.networking.k8s.io",
                ),
            ],
            id="legacy rev",
        ),
        pytest.param(
            lambda: check_pool(
                world(served_pool_groups=frozenset({LEGACY_GROUP}), pools=()), name=CANARY
            ),
            [
                refused(
                    Check.POOL,
                    "the cluster does not serve InferencePool in group inference.networking.k8s.io",
                    "Install the inference.networking.k8s.io/v1 InferencePool CRD, "
                    "or use the group the cluster serves "
                    "(inference.networking.x-k8s.io)",
                ),
            ],
            id="unserved",
        ),
        pytest.param(
            lambda: check_pool(world(served_pool_groups=frozenset(), pools=()), name=CANARY),
            [
                refused(
                    Check.POOL,
                    "the cluster does not serve InferencePool in group inference.networking.k8s.io",
                    "Install the inference.networking.k8s.io/v1 InferencePool CRD, "
                    "or use the group the cluster serves (none)",
                ),
            ],
            id="unserved none",
        ),
        pytest.param(
            lambda: check_pool(
                world(pools=(pool(STABLE), pool(CANARY, deleting=True)), services=frozenset()),
                name=CANARY,
            ),
            [
                refused(
                    Check.POOL,
                    "InferencePool llm-pool-version-2 is being deleted",
                    "Wait until it is gone and create it again: a deleted object "
                    "cannot be kept, and traffic moved onto it would be lost with it",
                ),
                refused(
                    Check.POOL,
                    "the endpoint picker Service llm-pool-version-2-epp of "
                    "InferencePool llm-pool-version-2 does not exist",
                    "Deploy the pool's endpoint picker (its Service and Deployment) "
                    "before moving traffic; without it the gateway cannot route to "
                    "the pool",
                ),
            ],
            id="deleting+nosvc",
        ),
        pytest.param(
            lambda: check_pool(
                world(pools=(pool(STABLE), pool(CANARY, parents=GATEWAY_SAYS_NO))),
                name=CANARY,
                gateways=("inference-gateway",),
            ),
            [
                refused(
                    Check.POOL,
                    "gateway inference-gateway reports Accepted=False for "
                    "InferencePool llm-pool-version-2 (NotAllowed: no grant)",
                    "Fix what the gateway reports on the pool's status.parents, then start again",
                ),
                refused(
                    Check.POOL,
                    "gateway inference-gateway reports ResolvedRefs=False for "
                    "InferencePool llm-pool-version-2 (X)",
                    "Fix what the gateway reports on the pool's status.parents, then start again",
                ),
            ],
            id="gw",
        ),
        pytest.param(
            lambda: check_pool(
                world(pools=(pool(STABLE), pool(CANARY, parents=NO_REASON))),
                name=CANARY,
                gateways=("inference-gateway",),
            ),
            [
                refused(
                    Check.POOL,
                    "gateway inference-gateway reports ResolvedRefs=False for "
                    "InferencePool llm-pool-version-2",
                    "Fix what the gateway reports on the pool's status.parents, then start again",
                ),
            ],
            id="gw noreason",
        ),
        pytest.param(
            lambda: check_pool(world(pools=(pool(STABLE), pool(CANARY, picker=None))), name=CANARY),
            [
                refused(
                    Check.POOL,
                    "InferencePool llm-pool-version-2 names no endpoint picker",
                    "Set spec.endpointPickerRef to the pool's endpoint picker Service",
                ),
            ],
            id="nopicker",
        ),
        pytest.param(
            lambda: check_objectives(
                world(
                    objectives=objectives(STABLE, ("chat", 10), ("batch", 0), ("eval", 5))
                    + objectives(CANARY, ("chat", 20), ("extra", 1))
                ),
                stable=pool(STABLE),
                canary=pool(CANARY),
            ),
            [
                refused(
                    Check.OBJECTIVES,
                    "InferenceObjectives (llm-d.ai) differ between llm-pool and "
                    "llm-pool-version-2: missing on llm-pool-version-2: batch "
                    "(priority 0, as llm-pool-batch on llm-pool); missing on "
                    "llm-pool-version-2: eval (priority 5, as llm-pool-eval on "
                    "llm-pool); only on llm-pool-version-2: "
                    "llm-pool-version-2-extra (priority 1); chat: priority 20 on "
                    "llm-pool-version-2, 10 on llm-pool",
                    "Give llm-pool-version-2 the same objectives (name and "
                    "priority) as llm-pool so both pools serve alike",
                ),
            ],
            id="objectives",
        ),
        pytest.param(
            lambda: check_capacity(
                world(
                    pods=pods(STABLE, 4) + pods(CANARY, 2, ready=False) + pods(CANARY, 1, start=5)
                ),
                stable=pool(STABLE),
                canary=pool(CANARY),
                share_percent=None,
                policy=CapacityPolicy(minimum=2),
            ),
            [
                (
                    Check.CAPACITY,
                    Outcome.WAIT,
                    "llm-pool-version-2 has 1 Ready endpoint: at least 2 are required",
                    "Scale llm-pool-version-2's model servers up (or wait for them "
                    "to become Ready); the step goes ahead once 2 are Ready",
                ),
            ],
            id="cap start",
        ),
        pytest.param(
            lambda: check_capacity(
                world(pods=pods(STABLE, 8) + pods(CANARY, 2)),
                stable=pool(STABLE),
                canary=pool(CANARY),
                share_percent=50,
                policy=CapacityPolicy(minimum=1, headroom_percent=25),
            ),
            [
                (
                    Check.CAPACITY,
                    Outcome.WAIT,
                    "llm-pool-version-2 has 2 Ready endpoints: 50% of the traffic "
                    "llm-pool serves with 8 needs 5 (with 25% headroom)",
                    "Scale llm-pool-version-2's model servers up (or wait for them "
                    "to become Ready); the step goes ahead once 5 are Ready",
                ),
            ],
            id="cap step",
        ),
        pytest.param(
            lambda: check_capacity(
                world(pods=pods(STABLE, 8) + pods(CANARY, 2)),
                stable=pool(STABLE),
                canary=pool(CANARY),
                share_percent=50,
                policy=CapacityPolicy(minimum=1),
            ),
            [
                (
                    Check.CAPACITY,
                    Outcome.WAIT,
                    "llm-pool-version-2 has 2 Ready endpoints: 50% of the traffic "
                    "llm-pool serves with 8 needs 4",
                    "Scale llm-pool-version-2's model servers up (or wait for them "
                    "to become Ready); the step goes ahead once 4 are Ready",
                ),
            ],
            id="cap step nohead",
        ),
        pytest.param(
            lambda: check_rewrite(RIVALS, rewrite="lora-b", rule=0),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite lora also matches model lora on pool "
                    "llm-pool and is older than lora-b (created "
                    "2026-01-01T00:00:00Z and 2026-01-02T00:00:00Z): the endpoint "
                    "picker applies the oldest and silently ignores lora-b",
                    "Roll out on lora instead (--rewrite lora), or remove that match from it",
                ),
            ],
            id="younger",
        ),
        pytest.param(
            lambda: check_rewrite(RIVALS, rewrite="nope", rule=0),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite nope not found in namespace default",
                    "Name an existing rewrite: lora, lora-b",
                ),
            ],
            id="missing rw",
        ),
        pytest.param(
            lambda: check_rewrite(world(), rewrite="nope", rule=0),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite nope not found in namespace default",
                    "Name an existing rewrite",
                ),
            ],
            id="missing rw none",
        ),
        pytest.param(
            lambda: check_rewrite(RIVALS, rewrite="lora", rule=3),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite lora has no rule 3",
                    "It has 1 rule; name one of them",
                ),
            ],
            id="norule",
        ),
        pytest.param(
            lambda: check_rewrite(
                world(rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora", deleting=True),)),
                rewrite="lora",
                rule=0,
            ),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite lora is being deleted",
                    "Recreate it before rolling out on it",
                ),
            ],
            id="deleting rw",
        ),
        pytest.param(
            lambda: check_rewrite(
                world(
                    rewrites=(
                        rewrite("any-old", "2025-01-01T00:00:00Z"),
                        rewrite("any-new", "2026-01-01T00:00:00Z"),
                    )
                ),
                rewrite="any-new",
                rule=0,
            ),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite any-old also matches any model (a "
                    "catch-all rule) on pool llm-pool and is older than any-new "
                    "(created 2025-01-01T00:00:00Z and 2026-01-01T00:00:00Z): the "
                    "endpoint picker applies the oldest and silently ignores any-new",
                    "Roll out on any-old instead (--rewrite any-old), or remove that match from it",
                ),
            ],
            id="catchall",
        ),
        pytest.param(
            lambda: (
                preflight(
                    world(pools=(pool(CANARY),)),
                    PreflightRequest(stable=STABLE, canary=CANARY),
                    CapacityPolicy(),
                ).findings
            ),
            [
                refused(
                    Check.POOL,
                    "the stable InferencePool llm-pool was not found",
                    "Keep the stable pool alive: it takes the traffic back on a rollback",
                ),
            ],
            id="stable missing",
        ),
        pytest.param(
            lambda: (
                preflight(
                    world(pools=(pool(CANARY), pool(STABLE, group=LEGACY_GROUP))),
                    PreflightRequest(stable=STABLE, canary=CANARY, pool_group=POOL_GROUP),
                    CapacityPolicy(),
                ).findings
            ),
            [
                refused(
                    Check.POOL,
                    "the rule sends the stable traffic to InferencePool llm-pool in "
                    "inference.networking.k8s.io, which has none of that name; there is one "
                    "in inference.networking.x-k8s.io",
                    "Point the rule's backendRef at inference.networking.x-k8s.io (its "
                    "`group`), or create llm-pool in inference.networking.k8s.io first",
                ),
            ],
            id="stable in the other group",
        ),
        pytest.param(
            lambda: check_rewrite(world(rewrite_group="llm-d.ai"), rewrite="nope", rule=0),
            [
                refused(
                    Check.REWRITE,
                    "InferenceModelRewrite nope not found in namespace default (llm-d.ai)",
                    "Name an existing rewrite",
                ),
            ],
            id="missing rw group",
        ),
    ],
)
def test_the_finding_is_said_in_full(
    found: Callable[[], Sequence[Finding]],
    expected: list[tuple[Check, Outcome, str, str]],
) -> None:
    assert [(x.check, x.outcome, x.problem, x.remedy) for x in found()] == expected
