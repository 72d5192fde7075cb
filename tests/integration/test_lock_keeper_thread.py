"""The lock keeper on its real thread: one thread renews every hold in flight, ends when
nothing has been held for a period, and starts again with the next hold."""

from __future__ import annotations

import threading

from rollout.lock_keeper import LockKeeper
from tests.support.polling import eventually


class _Hold:
    def __init__(self) -> None:
        self.renewed = threading.Event()
        self.renewals = 0
        self.by: set[int] = set()

    def renew(self) -> bool:
        self.renewals += 1
        self.by.add(threading.get_ident())
        if self.renewals >= 2:
            self.renewed.set()
        return True


def test_one_thread_renews_every_hold_and_ends_when_idle() -> None:
    keeper = LockKeeper(0.02, limit=60)
    holds = [_Hold() for _ in range(20)]
    keys = [keeper.keep(h) for h in holds]
    assert all(h.renewed.wait(5) for h in holds), "every hold renewed twice"
    assert len(set().union(*(h.by for h in holds))) == 1, "all by one thread"
    first = keeper._thread
    assert first is not None
    for key in keys:
        keeper.let_go(key)
    eventually(lambda: not first.is_alive(), timeout=5,
               message="the keeper ends once nothing is held")
    again = _Hold()
    keeper.keep(again)
    assert again.renewed.wait(5) and keeper._thread is not None and keeper._thread.is_alive()


def test_holds_kept_from_many_threads_at_once_are_each_renewed() -> None:
    keeper = LockKeeper(0.02, limit=60)
    holds = [_Hold() for _ in range(64)]
    keys: list[int] = []
    lock = threading.Lock()

    def keep(h: _Hold) -> None:
        key = keeper.keep(h)
        with lock:
            keys.append(key)

    threads = [threading.Thread(target=keep, args=(h,)) for h in holds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(h.renewed.wait(5) for h in holds)
    assert keeper.held() == 64
    for key in keys:
        keeper.let_go(key)
    assert keeper.held() == 0
