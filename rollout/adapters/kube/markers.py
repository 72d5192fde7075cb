"""The annotations the bot keeps on the objects it manages, encoded and decoded.

They name the rollout and step per rule (so an emptied Redis can be reconstructed or refused),
and carry the last fencing token, which a JSON-patch `test` guards against stale writers.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from rollout.domain.models import Actor, RecoveryRecord, Rollout
from rollout.domain.split import Marker, MarkerState

PREFIX = "inference-rollout.dev/"
FENCE = PREFIX + "fence"


def rule_key(rule: int) -> str:
    return f"{PREFIX}rule-{rule}"


def record_key(rule: int) -> str:
    return f"{PREFIX}rule-{rule}-record"


def pointer(annotation: str) -> str:
    """The JSON pointer of an annotation (RFC 6901 escapes `/` as `~1`)."""
    return "/metadata/annotations/" + annotation.replace("~", "~0").replace("/", "~1")


def encode_marker(marker: Marker) -> str:
    data: dict[str, object] = {"rollout": marker.rollout_id, "step": marker.step,
                               "state": marker.state.value}
    if marker.by is not None:
        data["by"] = marker.by.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, separators=(",", ":"))


def decode_marker(annotations: dict[str, str], rule: int) -> Marker | None:
    raw = annotations.get(rule_key(rule))
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Marker(
            rollout_id=str(data["rollout"]), step=int(data["step"]),
            state=MarkerState(data.get("state", "active")), fence=fence_of(annotations),
            by=_actor(data.get("by")),
        )
    except (ValueError, KeyError, TypeError, ValidationError):
        return None


def _actor(raw: object) -> Actor | None:
    """Who completed the rollout, where the marker says; a marker written before it said
    so, or one whose `by` does not validate, still names its rollout and step."""
    if raw is None:
        return None
    try:
        return Actor.model_validate(raw)
    except ValidationError:
        return None


def fence_of(annotations: dict[str, str]) -> int:
    try:
        return int(annotations.get(FENCE, "0"))
    except ValueError:
        return 0


def encode_record(rollout: Rollout) -> str:
    """What an operator needs to rebuild the rollout if Redis is lost."""
    return RecoveryRecord.of(rollout).model_dump_json()


def decode_record(annotations: dict[str, str], rule: int) -> RecoveryRecord | None:
    """The record of one rule; None when it is missing or does not validate (the service
    then tells the operator to release the rule and restore the weights by hand)."""
    raw = annotations.get(record_key(rule))
    if not raw:
        return None
    try:
        return RecoveryRecord.model_validate_json(raw)
    except ValidationError:
        return None
