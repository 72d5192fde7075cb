"""The marker annotation as written on a rule and read back: a completion names who applied
the last step, and a marker written before it did, or one whose `by` is damaged, still names
its rollout and step."""

from __future__ import annotations

import json

from rollout.adapters.kube.markers import FENCE, decode_marker, encode_marker, rule_key
from rollout.adapters.kube.writes import marker_for
from rollout.domain.machine import ApplyStep
from rollout.domain.models import Phase
from rollout.domain.split import Marker, MarkerState
from tests.unit.builders import BOB, started


def _read(raw: str, rule: int = 0) -> Marker | None:
    return decode_marker({rule_key(rule): raw, FENCE: "7"}, rule)


def test_a_completion_marker_names_who_completed_and_reads_back_the_same() -> None:
    r = started(steps=(10, 100)).model_copy(update={"completed_by": BOB,
                                                     "phase": Phase.COMPLETED})
    marker = marker_for(r, ApplyStep(step=1, percent=100))
    assert marker.state is MarkerState.COMPLETED and marker.by == BOB
    assert _read(encode_marker(marker)) == marker.model_copy(update={"fence": 7})


def test_a_step_before_the_last_names_nobody() -> None:
    r = started(steps=(10, 100)).model_copy(update={"completed_by": BOB})
    marker = marker_for(r, ApplyStep(step=0, percent=10))
    assert marker.by is None and "by" not in json.loads(encode_marker(marker))


def test_a_marker_written_before_it_named_the_completer_still_reads() -> None:
    found = _read('{"rollout":"r1","step":3,"state":"completed"}')
    assert found == Marker(rollout_id="r1", step=3, state=MarkerState.COMPLETED, fence=7)


def test_a_damaged_completer_leaves_the_rest_of_the_marker_readable() -> None:
    for by in ('{"id":""}', '"bob"', '{"name":"bob"}'):
        found = _read('{"rollout":"r1","step":3,"state":"completed","by":' + by + "}")
        assert found == Marker(rollout_id="r1", step=3, state=MarkerState.COMPLETED, fence=7)
