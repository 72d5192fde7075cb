"""What the bot stores and reads back: audit events (an enum of actions, refusals with the
refused verb) and the recovery record on the rule (validated, or refused as unreadable)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from rollout.adapters.kube.markers import decode_record, encode_record, record_key
from rollout.domain.models import AuditAction, AuditEvent, RecoveryRecord
from tests.unit.builders import ALICE, BASELINE, T0, started

KEY = record_key(0)


def _event(**fields: object) -> dict[str, object]:
    return {"at": T0.isoformat(), "rollout_id": "r1", "target": "t",
            "actor": ALICE.model_dump(mode="json"), **fields}


def test_a_refusal_stored_in_the_one_string_form_loads_as_denied_with_its_verb() -> None:
    event = AuditEvent.model_validate(_event(action="denied:approve-plan"))
    assert (event.action, event.refused) == (AuditAction.DENIED, "approve-plan")


def test_every_action_round_trips_as_the_string_stored_today() -> None:
    for action in AuditAction:
        refused = "approve" if action is AuditAction.DENIED else None
        event = AuditEvent.model_validate(_event(action=action.value, refused=refused))
        stored = json.loads(event.model_dump_json())
        assert stored["action"] == action.value
        assert AuditEvent.model_validate_json(event.model_dump_json()) == event
    assert AuditAction("step_applied") is AuditAction.STEP_APPLIED


@pytest.mark.parametrize("fields", [
    {"action": "denied"},  # a refusal names the verb it refused
    {"action": "approved", "refused": "approve"},  # only a refusal does
    {"action": "denied:"},
    {"action": "approve"},  # not an action
])
def test_a_malformed_event_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AuditEvent.model_validate(_event(**fields))


def test_the_record_round_trips_through_the_annotation() -> None:
    r = started()
    record = decode_record({KEY: encode_record(r)}, 0)
    assert record == RecoveryRecord(id="r1", stable="llm-pool", canary="llm-pool-version-2",
                                    plan=r.plan, baseline=BASELINE, requester=ALICE,
                                    created_at=T0, keep_seconds=0)
    assert RecoveryRecord.of(r) == record


def test_a_record_written_by_the_earlier_encoder_still_reads() -> None:
    r = started()
    earlier = json.dumps({
        "id": r.id, "stable": r.stable, "canary": r.canary,
        "plan": r.plan.model_dump(mode="json"), "baseline": r.baseline.model_dump(mode="json"),
        "requester": r.requester.model_dump(mode="json"), "created_at": r.created_at.isoformat(),
    }, separators=(",", ":"), sort_keys=True)
    # no keep period in it: recover takes the install's ROLLOUT_KEEP
    assert decode_record({KEY: earlier}, 0) == RecoveryRecord.of(r).model_copy(
        update={"keep_seconds": None})


@pytest.mark.parametrize("raw", [
    "",
    "not json",
    "[]",
    '{"id": "r1"}',
])
def test_a_missing_or_unreadable_record_is_none(raw: str) -> None:
    assert decode_record({KEY: raw}, 0) is None
    assert decode_record({}, 0) is None


@pytest.mark.parametrize("change", [
    {"id": ""},
    {"stable": ""},
    {"plan": {"steps": [{"percent": 50}]}},  # a plan must end at 100
    {"baseline": {"stable": {}}},
    # a weight for a canary that was not on the rule (a hand-edited annotation)
    {"baseline": {"stable": {"name": "a", "weight": 90}, "canary": None, "stable_weight": 90,
                  "canary_weight": 10}},
    {"created_at": "yesterday"},
    {"requester": {"id": "U0X", "via": "carrier pigeon"}},
])
def test_a_record_that_does_not_validate_is_none(change: dict[str, object]) -> None:
    data = json.loads(encode_record(started()))
    assert decode_record({KEY: json.dumps({**data, **change})}, 0) is None


def test_a_baseline_gives_no_weight_to_a_canary_that_was_not_on_the_rule() -> None:
    with pytest.raises(ValidationError, match=r"canary_weight is 10 for a canary that was not "
                                              r"on the rule \(canary is null\); it must be 0"):
        BASELINE.model_validate({**BASELINE.model_dump(), "canary": None, "canary_weight": 10})
    absent = BASELINE.model_validate({**BASELINE.model_dump(), "canary": None,
                                      "canary_weight": 0})
    assert absent.canary is None and absent.total == 100
