"""A stored state this version cannot parse is told apart from a bug: Unreadable, naming the
rollout (when the state names it) and the first field it could not read."""

from __future__ import annotations

import json
import logging

import pytest

from rollout.adapters.store import _rollout
from rollout.domain.clock import ManualClock
from rollout.domain.errors import Unreadable
from rollout.domain.models import Rollout
from rollout.service import Ref, RolloutService
from tests.unit.builders import T0, started
from tests.unit.fakes import FakeStore, FakeTraffic, open_gates


def _state(**changes: object) -> str:
    state = json.loads(started().model_dump_json())
    state.update(changes)
    return json.dumps(state)


def test_a_state_of_a_newer_version_names_its_rollout_and_the_field() -> None:
    with pytest.raises(Unreadable) as exc:
        _rollout(_state(id="r7", phase="WARMING"), "")
    assert (exc.value.rollout_id, exc.value.field) == ("r7", "phase")
    assert str(exc.value).startswith("the recorded state of rollout r7 cannot be read by "
                                     "this version of the bot (phase: ")
    assert str(exc.value).endswith("damaged. Nothing was changed: run the version that "
                                   "wrote it, or roll back with the CLI of that version")


@pytest.mark.parametrize("state", ["{not json", "[1, 2]", json.dumps({"id": 7})])
def test_damaged_state_is_unreadable_without_a_name(state: str) -> None:
    with pytest.raises(Unreadable, match=r"rollout \(unnamed\)") as exc:
        _rollout(state, "")
    assert exc.value.rollout_id == ""


def test_a_damaged_card_makes_the_state_unreadable_too() -> None:
    with pytest.raises(Unreadable, match=r"rollout r1 .*channel"):
        _rollout(_state(id="r1"), json.dumps({"ts": "1"}))


def test_a_readable_state_reads_as_before() -> None:
    assert _rollout(started().model_dump_json(), "") == started()
    assert _rollout("", "") is None


class _NewerStateOf(FakeStore):
    """The store with one state of a newer version, which this one cannot read."""

    def __init__(self, unreadable: str) -> None:
        super().__init__()
        self.unreadable = unreadable

    def get(self, rollout_id: str) -> Rollout | None:
        if rollout_id == self.unreadable:
            raise Unreadable(f"the recorded state of rollout {rollout_id} cannot be read",
                             rollout_id=rollout_id)
        return super().get(rollout_id)


def test_the_service_passes_an_unreadable_state_by_where_it_reads_many(
        caplog: pytest.LogCaptureFixture) -> None:
    store = _NewerStateOf("r9")
    service = RolloutService(store=store, traffic=FakeTraffic(), clock=ManualClock(T0),
                             gates=open_gates())
    readable = started().model_copy(update={"id": "r1"})
    newer = started().model_copy(update={"id": "r9", "target": readable.target.model_copy(
        update={"name": "another-route"})})
    store.rollouts.update({"r1": readable, "r9": newer})
    with caplog.at_level(logging.WARNING, logger="rollout.service"):
        assert [r.id for r in service.active()] == ["r1"]
    assert caplog.messages == ["passing by rollout r9: the recorded state of rollout r9 "
                               "cannot be read"]
    assert [r.id for r in service.list_rollouts()] == ["r1"]
    assert service.load(["r9", "r1", "gone"]) == {"r9": None, "r1": readable, "gone": None}
    with pytest.raises(Unreadable):
        service.get(Ref(rollout_id="r9"))


def test_an_unreadable_state_is_warned_of_once_until_it_can_be_read_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """The leader meets a newer version's state at every sweep of a rolling upgrade: one
    warning, not one every few seconds; and again if it turns unreadable after a read."""
    store = _NewerStateOf("r9")
    service = RolloutService(store=store, traffic=FakeTraffic(), clock=ManualClock(T0),
                             gates=open_gates())
    store.rollouts["r9"] = started().model_copy(update={"id": "r9"})
    said = "passing by rollout r9: the recorded state of rollout r9 cannot be read"
    with caplog.at_level(logging.DEBUG, logger="rollout.service"):
        for _sweep in range(3):
            assert service.load(["r9"]) == {"r9": None}
    assert [(r.levelno, r.message) for r in caplog.records] == [
        (logging.WARNING, said), (logging.DEBUG, said), (logging.DEBUG, said)]
    caplog.clear()
    store.unreadable = ""
    with caplog.at_level(logging.DEBUG, logger="rollout.service"):
        assert service.load(["r9"])["r9"] is not None
        store.unreadable = "r9"
        service.load(["r9"])
    assert [(r.levelno, r.message) for r in caplog.records] == [(logging.WARNING, said)]
