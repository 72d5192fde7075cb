"""The keeper's renewal of a command's lock, over the fake store: it goes on through a
renewal Redis did not answer (saying so in the log) and ends once the lock is found lost,
or released."""

from __future__ import annotations

import logging

import pytest

from rollout.domain.errors import LockLapsed, NotFound, StoreUnavailable, Superseded
from rollout.ports import Lease
from rollout.service import _Hold
from tests.unit.fakes import FakeStore

KEY = "default/httproute/routes-to-llm/0"


def _hold(store: FakeStore) -> _Hold:
    return _Hold(store, store.open(key=KEY))


def test_a_renewal_redis_did_not_answer_goes_on_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    hold = _hold(store)

    def unanswered(lease: Lease) -> None:
        raise StoreUnavailable("Redis is unavailable (timed out)")

    store.confirm = unanswered  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="rollout.service"):
        assert hold.renew()
    assert caplog.messages == [f"could not renew the lock on {KEY} (Redis is unavailable "
                               "(timed out)); trying again next period"]


@pytest.mark.parametrize("lost", [Superseded("a rollback took over"),
                                  LockLapsed("the lock lapsed"), NotFound("unexpected")])
def test_a_lock_found_lost_or_an_answer_not_understood_ends_the_renewals(
        lost: Exception) -> None:
    store = FakeStore()
    hold = _hold(store)

    def refused(lease: Lease) -> None:
        raise lost

    store.confirm = refused  # type: ignore[method-assign]
    assert not hold.renew()


def test_a_released_hold_is_not_renewed() -> None:
    store = FakeStore()
    hold = _hold(store)
    assert hold.renew()
    hold.close()
    assert not hold.renew()
