"""APScheduler driving due ticks from the state in Redis; jobs hold no logic.

APScheduler 3 cannot share a job store between processes, so Redis is the source of truth:
each rollout's `next_due_at`, indexed by the save script in a sorted set of due times, and a
change index (which rollout each write touched, by write number). A new leader loads every
active rollout once and keeps one date job per due rollout in an in-memory store; after that
a sweep costs a constant number of Redis commands when nothing changed: the lease, the
writes since the last sweep (reloading only those rollouts), and the due times within a short
horizon. A fired job calls `RolloutService.tick`, the same locked, fenced, compare-and-set
path as a click, so two leaders at once still cannot apply a step twice. The drift watch, a
job of its own, looks at each active rollout's target as its kept state names it (DESIGN
invariant 6): the namespace cache's copy (else a GET) per active rollout, no Redis unless it
finds something but the in-flight set. When the API server throttles the ticks (429), the
pacer (`rollout.pacing`) holds them back for its Retry-After and lets fewer in at once.
The tick a person's change just made due (heard from this replica's own commands, or from
another replica's announcement) runs on threads of its own and takes the pacer's next free
place: the person waits for that step, not for the backlog of automatic ones.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from rollout.adapters.change_feed import ChangeFeed
from rollout.adapters.leadership import LeaderLease
from rollout.ahead_lane import AheadLane
from rollout.domain import gating
from rollout.domain.errors import RolloutError, Throttled
from rollout.domain.models import Phase, Rollout, Via
from rollout.leader_beat import LeaderBeat
from rollout.pacing import TickPacer
from rollout.service import Outcome, RolloutService

log = logging.getLogger(__name__)

JOB_PREFIX = "due:"
SWEEP_JOB = "sweep"
WATCH_JOB = "watch"
ANALYSIS_JOB = "analysis"
#: ticks in flight at once: a step spends most of its time waiting on Kubernetes and Redis,
#: so APScheduler's default of 10 capped a scheduler at 10 waits, whatever its CPU allowed
#: (64 made 300 rollouts with 1 s bakes step faster on the real API server, 245 steps/s
#: against 219, but at 1,000 the cluster's answers to the namespace cache's lists then ran past
#: their timeout and every step read its namespace directly; since those reads take turns,
#: 64 holds at 1,000, 149 steps/s, and is no faster than 32). The default of
#: ROLLOUT_TICK_THREADS, which an install against a larger API server may raise
STEP_THREADS = 32


#: the executor of the leader's own jobs (the sweep, which renews the lease; the drift watch;
#: the analysis), one thread each: on the ticks' executor they queued behind every tick due,
#: and at 1,000 rollouts on a slow cluster the sweep ran 10 s late, the lease lapsed by the
#: replica's own clock and every tick stopped until the sweep came
LEADER_EXECUTOR = "leader"
LEADER_JOBS = 3

#: the executor of the ticks a person's change just made due (a plan approved, a rollout
#: resumed): on the ticks' executor they queued behind every tick due, and at 1,000
#: rollouts on a slow cluster a plan approved took its first step 9 to 12 s later (p99).
#: Its threads hold no extra place in the pacer's window: they take the next one that frees
AHEAD_EXECUTOR = "ahead"


def background_scheduler(threads: int = STEP_THREADS) -> BackgroundScheduler:
    """The ticks' executor, `threads` ticks at once; `RolloutScheduler` adds the leader's
    own."""
    return BackgroundScheduler(timezone="UTC",
                               executors={"default": ThreadPoolExecutor(threads)})


class RolloutScheduler:
    def __init__(
        self, *, service: RolloutService, lease: LeaderLease, sweep_seconds: float = 5.0,
        scheduler: BackgroundScheduler | None = None, feed: ChangeFeed | None = None,
        pacer: TickPacer | None = None, threads: int = STEP_THREADS,
    ) -> None:
        """`threads`: ticks in flight at once (the executor's threads and the pacer's
        ceiling), for the scheduler made here and the pacer; one passed in has its own."""
        self.service = service
        #: the hold-back when the Kubernetes API throttles the ticks (429)
        self.pacer = pacer or TickPacer(service.clock, ceiling=threads)
        self.lease = lease
        #: other replicas' changes, announced: the leader sweeps at once (`wake`)
        self.feed = feed
        self.sweep_seconds = sweep_seconds
        self.scheduler = scheduler or background_scheduler(threads)
        with contextlib.suppress(ValueError):  # another RolloutScheduler added it already
            self.scheduler.add_executor(ThreadPoolExecutor(LEADER_JOBS), LEADER_EXECUTOR)
        #: the rollouts a person changed lately, under `_lock`: their next job goes ahead if
        #: it falls due at once; kept for two sweeps (the one after an announcement has
        #: scheduled it by then)
        self.lane = AheadLane(timedelta(seconds=2 * sweep_seconds))
        with contextlib.suppress(ValueError):
            self.scheduler.add_executor(ThreadPoolExecutor(self.lane.threads), AHEAD_EXECUTOR)
        self._lock = threading.Lock()
        self._was_leader = False
        #: the lease token of the term this replica's jobs and cache belong to: a new token
        #: while it thought it led (the lease lapsed and was regained, maybe after another
        #: leader's term, or Redis was emptied) is a takeover too
        self._term: int | None = None
        #: the term's full reload is still to complete: one that failed (a Redis blip, as at
        #: a failover, when terms change) is tried again at the next sweep, not replaced by
        #: the changes since the last term's sweep (the rollouts not written since went
        #: without a job, a drift watch and an analysis for the whole term)
        self._reload_pending = True
        #: a full reload asks the analysis job's housekeeping for one retention pass
        #: (`_expire`): off the sweep, whose lease renewal and ticks a scan of a Redis shared
        #: with millions of other keys would hold up for seconds; set again when a pass fails
        self._expiry_pending = threading.Event()
        self._stopping = False
        #: the active rollouts as of write number `_seen`, kept current by the change index
        self._active: dict[str, Rollout] = {}
        self._cache_lock = threading.Lock()
        self._seen = 0
        #: while a full reload reads, under `_cache_lock`: each state heard meanwhile (by a
        #: command here, an announcement, a tick), which the reload's older copy must not
        #: replace; None when no reload reads
        self._heard: dict[str, Rollout] | None = None
        #: the jobs running now (a rollout's tick by its job id, the sweep), under `_lock`
        self._running: set[str] = set()
        #: running jobs asked to run again meanwhile: each runs once more (`_repeat`)
        self._again: set[str] = set()
        #: a rollout job's instances handed to the tick threads and not begun yet (queued
        #: behind other ticks), under `_queue_lock`: APScheduler's submission event and the
        #: job's start may come in either order, so each counts one way and a job is queued
        #: while its count is positive
        self._queued: dict[str, int] = {}
        self._queue_lock = threading.Lock()
        #: where each running tick found its rollout (`_where`), under `_lock`: a tick that
        #: leaves it there, due at a time passed (a freeze or a capacity wait held the step),
        #: is tried again at the next sweep; scheduled at once at its past due time, its job
        #: fired again and again, thousands of times a second, each a lock in Redis
        self._ticking: dict[str, tuple[int, Phase, datetime | None] | None] = {}
        #: the rollouts whose step was held since the running sweep began, under `_lock`:
        #: the sweep that scheduled one may check its due list after that tick ended, and
        #: must leave it to the next sweep too
        self._held: set[str] = set()
        #: the end of the last hold recorded for `status` (`_record_hold`)
        self._recorded_hold: datetime | None = None
        self._hold_lock = threading.Lock()
        #: runs the leader's own jobs when the wall clock holds them (stepped back)
        self.beat = LeaderBeat(sweep_seconds, self._run_now)
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.scheduler.add_job(self.sweep, "interval", seconds=self.sweep_seconds, id=SWEEP_JOB,
                               max_instances=1, coalesce=True, replace_existing=True,
                               next_run_time=datetime.now(self.scheduler.timezone),
                               executor=LEADER_EXECUTOR)
        # their own jobs: a long pass over many targets, or a slow Prometheus, never delays the
        # sweep's lease renewal (a lease that lapses stops every tick of this replica)
        self.scheduler.add_job(self.look, "interval", seconds=self.sweep_seconds, id=WATCH_JOB,
                               max_instances=1, coalesce=True, replace_existing=True,
                               executor=LEADER_EXECUTOR)
        self.scheduler.add_job(self.analyse, "interval", seconds=self.sweep_seconds,
                               id=ANALYSIS_JOB, max_instances=1, coalesce=True,
                               replace_existing=True, executor=LEADER_EXECUTOR)
        self.scheduler.start()
        self.beat.follow(SWEEP_JOB, WATCH_JOB, ANALYSIS_JOB)
        self.beat.start()
        if self.feed is not None:
            # while this replica leads, its own changes reach it directly (`on_change`); every
            # person's command, its own included, says when it runs (the ticks make way)
            self.feed.listen(self.wake, quiet_while=lambda: self.lease.is_leader,
                             on_person=self._person)

    def _person(self, command: str, began: bool) -> None:
        """A person's command, on any replica, went to work or is done (`rollout.pacing`)."""
        if began:
            self.pacer.person_began(command)
        else:
            self.pacer.person_ended(command)

    def stop(self) -> None:
        """Stop firing, wait for a tick in flight, then let the lease go."""
        self.halt()
        self.lease.release()

    def halt(self) -> None:
        """Stop firing and wait for a tick in flight, keeping the lease: another replica
        leads only once it expires, as after a crash.

        APScheduler's shutdown holds its job-store lock while it waits for running jobs, so
        a job must not call back into the scheduler once shutdown begins: the flag, set
        under our lock, makes sure none does.

        APScheduler removes a spent date job during its pass over due jobs, under that lock;
        a shutdown that marks it stopped in the middle of the pass sends the removal looking
        among jobs never started, and its thread dies on JobLookupError. So every job is
        removed before the shutdown: the removal takes the same lock, so a pass in flight
        ends first, and the passes after it find nothing (no job of ours is added once the
        flag is set). Redis holds every due time, so the jobs are nothing to keep."""
        with self._lock:
            self._stopping = True
        self.beat.stop()
        self.pacer.wake()  # a tick waiting for a place in the window gives up
        if self.feed is not None:
            self.feed.close()
        if self.scheduler.running:
            self.scheduler.remove_all_jobs()
            self.scheduler.shutdown(wait=True)

    @property
    def _halted(self) -> bool:
        """Stopping, or shut down by someone else: APScheduler marks itself stopped before
        it takes its job-store lock to wait for running jobs, so a job that looks here first
        does not call back into it (and wait for that lock) while it shuts down."""
        return self._stopping or not self.scheduler.running

    # -- the leader's loop ---------------------------------------------------------------

    def wake(self, rollout_id: str = "") -> None:
        """Another replica announced a change (of `rollout_id`; a person's: only the leader
        writes automatic steps, and it announces nothing): as leader, follow that rollout
        at once, and sweep now rather than at the next interval (a change announced while
        the sweep runs makes it sweep once more)."""
        with self._lock:
            if self._halted or not self.lease.is_leader:
                return
            if rollout_id:
                self.lane.hear(rollout_id, self.service.clock.now())
            if SWEEP_JOB in self._running:
                self._again.add(SWEEP_JOB)
            else:
                self.scheduler.modify_job(SWEEP_JOB,
                                          next_run_time=datetime.now(self.scheduler.timezone))
        if rollout_id:
            self._fetch(rollout_id)

    def _fetch(self, rollout_id: str) -> None:
        """Load the announced rollout and schedule it now. The sweep would too, but it
        reloads every rollout written since the last one: at 1,000 rollouts, hundreds,
        parsed on a thread that shares the interpreter with dozens of tick threads, and the
        plan a person approved took its first step a second or more later. A failed load is
        left to that sweep."""
        try:
            r = self.service.load([rollout_id]).get(rollout_id)
        except RolloutError as exc:
            log.debug("could not load announced %s: %s (the sweep catches up)", rollout_id, exc)
            return
        if r is not None:
            self._follow(r)

    def _run_now(self, job: str) -> None:
        """The beat found one of the leader's jobs late: it fires now."""
        with self._lock:
            if not self._halted:
                with contextlib.suppress(JobLookupError):
                    self.scheduler.modify_job(job,
                                              next_run_time=datetime.now(self.scheduler.timezone))

    def sweep(self) -> None:
        """The sweep job: once, and once more for each time it was woken meanwhile."""
        with self.beat.running(SWEEP_JOB):
            self._repeat(SWEEP_JOB, self._sweep)

    def _sweep(self) -> bool:
        """Renew the lease; as leader, make the jobs match the due times in Redis. Whether
        it completed."""
        leading = self.lease.refresh()
        with self._lock:
            if self._halted:
                return False
            if not leading:
                if self._was_leader:
                    log.info("lost the leader lease: dropping every rollout job")
                    self.pacer.wake()  # a tick waiting for a place gives up
                self._drop_jobs()
                self._forget()
                self._was_leader = False
                return False
            token = self.lease.token
            taking_over = not self._was_leader or token != self._term
            if taking_over:
                if self._was_leader:
                    log.warning("the leader lease was regained under a new token (%s, was "
                                "%s): another term may have come between; rebuilding jobs "
                                "from Redis", token, self._term)
                    self._forget()
                else:
                    log.info("became leader (token %s): rebuilding jobs from Redis", token)
            self._was_leader, self._term = True, token
            self._reload_pending = self._reload_pending or taking_over
            self._held.clear()
        try:
            changes = self.service.changes_since(0 if self._reload_pending else self._seen)
            if self._reload_pending or not changes.complete:
                with self._hearing():
                    rollouts = self.service.active()
                    self.service.index_due(rollouts)
                    self.sync(rollouts)
                self.service.index_kept()
                self._expiry_pending.set()
            else:
                self._catch_up(changes.ids)
            self._seen, self._reload_pending = changes.seq, False
            horizon = self.service.clock.now() + timedelta(seconds=2 * self.sweep_seconds)
            due = self.service.due_until(horizon)
            self._recheck(list(due), horizon)
        except RolloutError as exc:
            log.warning("could not read active rollouts: %s", exc)
            return False
        self._ensure(list(due))
        return True

    def _reloaded(self, rollouts: list[Rollout]) -> None:
        """Keep the active rollouts a full reload read, but where this replica heard a newer
        state of one while the reload read (a command, an announcement, a tick), keep that:
        the reload's older copy would take the job a person's change just made, until the
        next sweep. A state heard before the reload began never wins over Redis' copy: it
        was in Redis then, so a newer one there is a write Redis lost (an asynchronous
        failover, a restart from an older snapshot), which Redis' copy now replaces (a lost
        pause kept would have left the rollout due in Redis and never ticked)."""
        with self._cache_lock:
            fresh = {r.id: r for r in rollouts}
            for rid, heard in (self._heard or {}).items():
                loaded = fresh.get(rid)
                if loaded is None or heard.version > loaded.version:
                    if heard.active:
                        fresh[rid] = heard
                    else:
                        fresh.pop(rid, None)
            self._active = fresh

    @contextlib.contextmanager
    def _hearing(self) -> Iterator[None]:
        """While Redis is read for the cache: keep each state heard meanwhile (`_heard`),
        newer than the read."""
        with self._cache_lock:
            self._heard = {}
        try:
            yield
        finally:
            with self._cache_lock:
                self._heard = None

    def _recheck(self, due: list[str], horizon: datetime) -> None:
        """The due index says these fall due by `horizon`; where the cache holds no state of
        one due by then, read Redis' copy and keep it if it differs. Mostly the index was
        read before a change this replica heard since (the copies agree, nothing changes);
        but where Redis lost a write this replica heard (an asynchronous failover under a
        lease that survived it) the cache holds a version Redis no longer has, which no
        newer write replaces until someone makes one: a lost pause left the rollout due in
        Redis, and no job. A state heard while this reads (`_remember`) wins over it."""
        with self._cache_lock:
            doubted = [rid for rid in due if not _due_by(self._active.get(rid), horizon)]
        if not doubted:
            return
        with self._hearing():
            loaded = self.service.load(doubted)
            with self._cache_lock:
                for rid, r in loaded.items():
                    held = self._active.get(rid)
                    if r is None or rid in (self._heard or {}) \
                            or _version(r) == _version(held):
                        continue  # gone, heard anew meanwhile, or the index was behind
                    if held is not None and r.version < held.version:
                        log.warning("Redis holds version %d of %s, older than the %d this "
                                    "leader heard: a write was lost (a failover?); following "
                                    "Redis", r.version, rid, held.version)
                    if r.active:
                        self._active[rid] = r
                    else:
                        self._active.pop(rid, None)

    def _forget(self) -> None:
        """Drop the cached states of a term that ended: the next term reloads, and a copy
        from the last one (Redis emptied since, its versions begun again) must not win."""
        with self._cache_lock:
            self._active = {}

    def _catch_up(self, changed: list[str]) -> None:
        """Reload the rollouts written since the last sweep (by any replica) and make their
        jobs match."""
        if not changed:
            return
        for rid, r in self.service.load(changed).items():
            self._remember(rid, r)
        with self._lock:
            if self._halted or not self.lease.is_leader:
                return
            for rid in changed:
                self._match(rid)

    def _follow(self, r: Rollout) -> None:
        """Keep `r` (unless a newer state of it is kept) and make its job match the newest."""
        self._remember(r.id, r)
        with self._lock:
            if not self._halted and self.lease.is_leader:
                self._match(r.id)

    def _match(self, rollout_id: str) -> None:
        """Under `_lock`: the rollout's job at the due time of the newest state kept of it, or
        none. Reading the kept state under the lock that every scheduling holds means an older
        due time can never replace a newer one."""
        with self._cache_lock:
            kept = self._active.get(rollout_id)
        if kept is not None and kept.active and kept.next_due_at:
            if self._left_due(kept):
                self._held.add(rollout_id)
            else:
                self._schedule(rollout_id, kept.next_due_at)
        else:
            self._remove(rollout_id)

    def _left_due(self, kept: Rollout) -> bool:
        """Under `_lock`: the rollout's running tick found it where it is now (the same step,
        phase and due time), and that due time has passed: the step was held, and the next
        sweep tries it again (`_ensure`)."""
        started = self._ticking.get(kept.id)
        return (started is not None and started == _where(kept)
                and kept.next_due_at is not None and kept.next_due_at <= self.service.clock.now())

    def _remember(self, rollout_id: str, r: Rollout | None) -> None:
        """Keep the newer of what we hold and `r` (None: gone): a reload that raced a change
        this replica just made never puts the older state back."""
        with self._cache_lock:
            held = self._active.get(rollout_id)
            if r is not None and self._heard is not None:
                last = self._heard.get(rollout_id)
                if last is None or r.version >= last.version:
                    self._heard[rollout_id] = r
            if r is not None and held is not None and r.version < held.version:
                return
            if r is not None and r.active:
                self._active[rollout_id] = r
            else:
                self._active.pop(rollout_id, None)

    def _cached(self) -> list[Rollout]:
        with self._cache_lock:
            return list(self._active.values())

    def _ensure(self, due: list[str]) -> None:
        """A job for each active rollout the due index says falls due within the horizon, at
        the due time of the newest state kept of it: the index was read before changes this
        replica may have made since, and its older time would fire a tick too early (which
        finds nothing due) or while that rollout's tick still runs (which only makes that
        tick go once more). A rollout whose tick is running, or waits for a tick thread, is
        left to that tick: another job would only queue a second instance behind it, and a
        third is skipped by APScheduler with a warning (at 1,000 rollouts on a slow cluster,
        tens of thousands of them, once the sweep ran on time). One whose step was held since
        this sweep began (its job ran on the schedule this sweep made) waits for the next."""
        with self._lock:
            if self._halted or not self.lease.is_leader:
                return
            for rid in due:
                self._match_idle(rid)

    def _match_idle(self, rollout_id: str) -> None:
        """Under `_lock`: `_match`, unless the rollout's tick runs or waits for a thread (it
        reschedules the rollout when it ends), or its step was held since this sweep began."""
        job = JOB_PREFIX + rollout_id
        if rollout_id not in self._held and job not in self._running \
                and not self._is_queued(job):
            self._match(rollout_id)

    def look(self) -> None:
        """As leader, the drift watch's pass: every active rollout kept, and every finished
        one with a write in flight."""
        with self.beat.running(WATCH_JOB):
            self._look()

    def _look(self) -> None:
        if self._halted or not self.lease.is_leader:
            return
        try:
            finishing = self.service.in_flight()
        except RolloutError as exc:
            log.warning("could not read the rollouts with a write in flight: %s", exc)
            return
        self.watch(self._cached() + finishing)

    def watch(self, rollouts: list[Rollout]) -> None:
        """Look at each active rollout's target once per sweep, so a weight changed by hand
        pauses the rollout within one sweep rather than at the end of a bake."""
        for r in rollouts:
            if self._halted or not self.lease.is_leader:
                return
            try:
                self.service.watch(r)
            except RolloutError as exc:
                log.warning("could not check %s against the cluster: %s", r.id, exc)
            except Exception:  # one rollout's bug must not stop the watch of the others
                log.exception("checking %s against the cluster failed", r.id)

    def analyse(self) -> None:
        """As leader, the housekeeping (the retention pass a full reload asked for, the
        reminders of keep periods that ended), then each active rollout's canary analysis
        where a run is due; the service decides and acts (roll back, pause,
        or move on once it passed)."""
        with self.beat.running(ANALYSIS_JOB):
            self._analyse()

    def _analyse(self) -> None:
        if self._halted or not self.lease.is_leader:
            return
        self._expire()
        try:
            self.service.remind_kept()
        except RolloutError as exc:
            log.warning("could not remind of ended keep periods: %s (the next run retries)",
                        exc)
        except Exception:  # a reminder's bug must not stop every rollout's analysis
            log.exception("reminding of ended keep periods failed (the next run retries)")
        now = self.service.clock.now()
        for cached in self._cached():
            if self._halted or not self.lease.is_leader:
                return
            if not gating.due(cached, now):  # the sweep's copy: reload only what is due
                continue
            try:
                r = self.service.load([cached.id])[cached.id]
                outcome = self.service.analyse(r) if r is not None and r.active else None
            except RolloutError as exc:
                log.warning("analysis of %s did not complete: %s (the next run retries)",
                            cached.id, exc)
                continue
            except Exception:  # one rollout's bug must not stop the analysis of the others
                log.exception("analysis of %s failed (the next run retries)", cached.id)
                continue
            if outcome is not None and outcome.events:
                log.info("analysis %s: %s", cached.id, outcome.message)

    def _expire(self) -> None:
        """The retention pass a full reload asked for (`_expiry_pending`), once; a pass that
        fails is tried again at the next run."""
        if not self._expiry_pending.is_set():
            return
        self._expiry_pending.clear()  # before the pass: a reload meanwhile asks for another
        try:
            given = self.service.expire_finished()
        except RolloutError as exc:
            self._expiry_pending.set()
            log.warning("could not give finished rollouts their time to live: %s (the next "
                        "run retries)", exc)
            return
        except Exception:  # the pass's bug must not stop every rollout's analysis
            self._expiry_pending.set()
            log.exception("giving finished rollouts their time to live failed (the next run "
                          "retries)")
            return
        if given:
            log.info("gave %d finished rollouts kept without a retention their time to live",
                     given)

    def sync(self, rollouts: list[Rollout]) -> None:
        """Keep `rollouts`, a full read of the active ones (`_reloaded`), and make the jobs
        match: one date job per rollout with a due time, none for the rest. Each due time is
        read from the cache under `_lock`, as every scheduling does: due times read before
        the lock put back an older time over the job a change heard meanwhile had made."""
        self._reloaded(rollouts)
        with self._lock:
            if self._halted or not self.lease.is_leader:
                return
            kept = {r.id for r in self._cached()}
            for job in self.scheduler.get_jobs():
                rid = job.id.removeprefix(JOB_PREFIX)
                if job.id.startswith(JOB_PREFIX) and rid not in kept:
                    self._remove(rid)  # its place in the ahead lane too
            for rid in kept:
                self._match_idle(rid)

    def on_change(self, outcome: Outcome) -> None:
        """A service listener, told of every command's outcome in this replica (a tick that
        found nothing due too, whose date job is spent): keep the rollout, reschedule it."""
        if outcome.rollout is not None and self.lease.is_leader:
            if any(e.actor.via is not Via.SCHEDULER for e in outcome.events):
                with self._lock:
                    self.lane.hear(outcome.rollout.id, self.service.clock.now())
            self._follow(outcome.rollout)

    def fire(self, rollout_id: str, ahead: bool = False) -> None:
        """The job: tick the rollout if we still lead. Any logic lives in the service.

        A tick decides its step at its start, so under a slow cluster the next due time it
        schedules can pass before it returns, and that job fires while it still runs. The
        job then only asks the running tick to go once more: one tick at a time for a
        rollout, and no due time left for a sweep to find."""
        self._count_queued(JOB_PREFIX + rollout_id, -1)
        if ahead:  # the person's change is served now: the rollout's next job queues
            with self._lock:
                self.lane.served(rollout_id)
        if self._halted or not self.lease.is_leader:
            return
        if ahead:  # this rollout's tick may be waiting behind the backlog already, or
            # running on a state from before the change: the tick that serves it goes ahead
            self.pacer.move_ahead(JOB_PREFIX + rollout_id)
        self._repeat(JOB_PREFIX + rollout_id, lambda: self._tick(rollout_id, ahead))

    def _submitted(self, event: JobSubmissionEvent) -> None:
        """APScheduler handed a job to its threads (called under its job-store lock: only
        our own small lock is taken here)."""
        if event.job_id.startswith(JOB_PREFIX):
            self._count_queued(event.job_id, 1)

    def _count_queued(self, job: str, change: int) -> None:
        with self._queue_lock:
            count = self._queued.get(job, 0) + change
            if count:
                self._queued[job] = count
            else:
                self._queued.pop(job, None)

    def _is_queued(self, job: str) -> bool:
        with self._queue_lock:
            return self._queued.get(job, 0) > 0

    def _repeat(self, job: str, once: Callable[[], object]) -> None:
        """Run `once` for `job`, one run at a time: a call while it runs only asks for one
        more run, which follows while this replica leads and does not stop, whether or not
        the run it followed completed (the ask came after it began: a person's step, made
        due while a tick of the rollout failed, would have waited for the next sweep).
        Whether to run again is decided under the lock the asking takes, so no ask is
        lost."""
        with self._lock:
            if job in self._running:
                self._again.add(job)
                return
            self._running.add(job)
        try:
            again = True
            while again:
                once()
                with self._lock:
                    again = job in self._again and not self._halted and self.lease.is_leader
                    self._again.discard(job)
                    if not again:
                        self._running.discard(job)
                        self.pacer.forget_move(job)  # a move kept for a run not to come
        except BaseException:  # the next sweep retries
            with self._lock:
                self._running.discard(job)
                self._again.discard(job)
                self.pacer.forget_move(job)
            raise

    def _tick(self, rollout_id: str, ahead: bool) -> bool:
        """One tick, unless the Kubernetes API's throttle holds the ticks back (then it is
        moved to the hold's end); whether it completed. One that goes `ahead` takes the
        pacer's next free place."""
        held = self.pacer.held_until()
        if held is not None:
            self._defer(rollout_id, held)
            return False
        if not self.pacer.enter(lambda: self._halted or not self.lease.is_leader,
                                ahead=ahead, key=JOB_PREFIX + rollout_id):
            return False
        held = self.pacer.held_until()
        if held is not None:  # a throttle came while this waited: its place was one it freed
            self.pacer.leave(changed=False)
            self._defer(rollout_id, held)
            return False
        with self._cache_lock:
            kept = self._active.get(rollout_id)
        with self._lock:
            self._ticking[rollout_id] = _where(kept) if kept is not None else None
        try:
            outcome = self.service.tick(rollout_id)
        except Throttled as exc:  # refused before it was served: nothing to undo
            until = self.pacer.throttled(exc.retry_after)
            self._defer(rollout_id, until)
            self._record_hold(until)
            log.debug("tick of %s throttled by the Kubernetes API: again at %s", rollout_id,
                      until.isoformat())  # the pacer says it once per hold
            return False
        except BaseException as exc:
            self.pacer.leave(changed=False)
            if not isinstance(exc, RolloutError):
                raise
            log.warning("tick of %s did not complete: %s (the next sweep retries)",
                        rollout_id, exc)
            return False
        finally:
            with self._lock:
                self._ticking.pop(rollout_id, None)
        self.pacer.leave(changed=outcome.changed)
        if outcome.changed:
            log.info("tick %s: %s", rollout_id, outcome.message)
        return True

    def _record_hold(self, until: datetime) -> None:
        """Record a hold that begins or grows, for `status` on any replica (once per hold:
        the throttles of the ticks already in flight only repeat it). A record that fails
        leaves the hold as it is; the log and the metrics still say it. The write is made
        under the lock: two ticks throttled at once each grow the hold, and the shorter
        written last would have told `status` the hold ends before it does."""
        holds = self.service.options.tick_holds
        with self._hold_lock:
            if holds is None or (self._recorded_hold is not None
                                 and until <= self._recorded_hold):
                return
            self._recorded_hold = until
            try:
                holds.hold(until)
            except RolloutError as exc:
                log.warning("could not record the scheduler's hold until %s: %s",
                            until.isoformat(), exc)

    def _defer(self, rollout_id: str, until: datetime) -> None:
        """The rollout's job at `until`, the end of a throttle's hold (its due time stays in
        Redis, and every job scheduled during the hold is moved to its end)."""
        with self._lock:
            if not self._halted and self.lease.is_leader:
                self._schedule(rollout_id, until)

    def due_times(self) -> dict[str, datetime]:
        return {job.id.removeprefix(JOB_PREFIX): job.next_run_time
                for job in self.scheduler.get_jobs() if job.id.startswith(JOB_PREFIX)}

    # -- jobs ----------------------------------------------------------------------------

    def _schedule(self, rollout_id: str, due: datetime) -> None:
        """Under `_lock`: the rollout's job at `due` (or the hold's end), on the ahead
        executor if a person waits for it."""
        ahead = self.lane.admit(rollout_id, due, self.service.clock.now())
        executor = AHEAD_EXECUTOR if ahead else "default"
        held = self.pacer.held_until()
        if held is not None and due < held:  # it would only be moved to the hold's end
            due = held
        job_id = JOB_PREFIX + rollout_id
        job = self.scheduler.get_job(job_id)
        if job is not None and job.next_run_time == due and job.executor == executor:
            return
        self.scheduler.add_job(  # a second instance only hands over to the first (`fire`)
            self.fire, "date", run_date=due, args=[rollout_id, ahead], id=job_id,
            replace_existing=True, misfire_grace_time=None, coalesce=True, max_instances=2,
            executor=executor,
        )

    def _remove(self, rollout_id: str) -> None:
        self.lane.release(rollout_id)
        _remove_job(JOB_PREFIX + rollout_id, self.scheduler)

    def _drop_jobs(self) -> None:
        self.lane.clear()
        self.pacer.forget_moves()
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX):
                _remove_job(job.id, self.scheduler)


def _remove_job(job_id: str, scheduler: BackgroundScheduler) -> None:
    """Remove a job if it is still there. APScheduler removes a spent date job in its own
    pass, under its own lock: between our look and our removal it may be gone, and the
    removal must not fail for that (it raised out of a sweep, leaving the rollouts after it
    unscheduled until the next)."""
    with contextlib.suppress(JobLookupError):
        scheduler.remove_job(job_id)


def _version(r: Rollout | None) -> int | None:
    return r.version if r is not None else None


def _due_by(r: Rollout | None, horizon: datetime) -> bool:
    """Whether the kept state `r` falls due by `horizon` (as the due index says it does)."""
    return r is not None and r.active and r.next_due_at is not None \
        and r.next_due_at <= horizon


def _where(r: Rollout) -> tuple[int, Phase, datetime | None]:
    """Where a rollout stands for its scheduling: a tick that moved it changed one of these."""
    return r.step, r.phase, r.next_due_at
