"""The leader's beat: which of the leader's jobs it runs, by an injected monotonic clock."""

from __future__ import annotations

from rollout.leader_beat import LATE_PERIODS, LeaderBeat


class _Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _beat() -> tuple[LeaderBeat, _Monotonic, list[str]]:
    clock, ran = _Monotonic(), list[str]()
    beat = LeaderBeat(5.0, ran.append, monotonic=clock)
    beat.follow("sweep", "watch")
    return beat, clock, ran


def test_a_job_is_late_only_past_two_periods_since_it_began() -> None:
    beat, clock, ran = _beat()
    clock.now += LATE_PERIODS * 5.0
    beat.beat()
    assert ran == []
    clock.now += 0.01
    beat.beat()
    assert ran == ["sweep", "watch"]


def test_a_job_is_not_late_while_it_runs_nor_for_two_periods_after_it_ends() -> None:
    """A long pass (a drift watch over many targets) is no sign of a clock that moved: its
    interval's next run comes within a period of its end."""
    beat, clock, ran = _beat()
    clock.now += 9.0
    with beat.running("sweep"):
        clock.now += 60.0  # a long pass: never nudged while it runs
        beat.beat()
        assert ran == ["watch"]
    clock.now += LATE_PERIODS * 5.0
    beat.beat()
    assert "sweep" not in ran
    clock.now += 0.01
    beat.beat()
    assert ran.count("sweep") == 1


def test_a_nudged_job_is_asked_again_only_after_two_more_periods() -> None:
    """APScheduler may not run it at once (its threads taken): not a warning every beat."""
    beat, clock, ran = _beat()
    clock.now += 10.01
    beat.beat()
    clock.now += 5.0
    beat.beat()
    assert ran == ["sweep", "watch"]
    clock.now += 5.01
    beat.beat()
    assert ran == ["sweep", "watch", "sweep", "watch"]


def test_runs_of_one_job_on_two_threads_keep_it_running_until_both_end() -> None:
    beat, clock, ran = _beat()
    with beat.running("sweep"):
        with beat.running("sweep"):
            pass
        clock.now += 11.0
        beat.beat()
    assert ran == ["watch"]


def test_stop_without_start_returns() -> None:
    beat, _clock, _ran = _beat()
    beat.stop()
