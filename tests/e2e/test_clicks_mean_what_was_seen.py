"""Every click and command means what the person saw, and nothing goes around an approval.

Signed Slack requests to a running bot with the leader-elected scheduler running, as under
`serve`. Where a test reads a button and clicks it while the scheduler may still move the
rollout, that race is what it tests (reminders every second keep the state moving).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from functools import partial

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent

from handlers.cards import ButtonValue
from rollout.domain.errors import RolloutError
from rollout.domain.models import Phase, Rollout
from rollout.scheduler import SWEEP_JOB
from rollout.service import Ref
from sandbox.slack import Message, block_actions_body
from sandbox.slack.delivery import deliver
from sandbox.slack.payloads import block_actions_payload, button_action, encode_payload
from tests.e2e.conftest import CANARY, CHANNEL, ROUTE, SECRET, World, start_rollout
from tests.support.polling import eventually

UNCHANGED = {"llm-pool": 100, CANARY: 0}
REFUSED = (":no_entry:", "outdated", ":warning:", "already handled", "Already handled")


def _scheduled(make_world: Callable[..., World], **overrides: object) -> World:
    options: dict[str, object] = {"rollout_tick": "1s"}
    options.update(overrides)
    return make_world(scheduler=True, **options)


def _sweeps(world: World, count: int) -> None:
    """Wait for the scheduler to complete `count` sweeps from now (each schedules any tick
    due within two sweeps, so what was due has fired by the end of the last)."""
    assert world.scheduler is not None
    jobs, swept = world.scheduler.scheduler, threading.Semaphore(0)

    def done(event: JobExecutionEvent) -> None:
        if event.job_id == SWEEP_JOB:
            swept.release()

    jobs.add_listener(done, EVENT_JOB_EXECUTED)
    try:
        for _ in range(count):
            assert swept.acquire(timeout=15), "the scheduler did not sweep"
    finally:
        jobs.remove_listener(done)


def _set_by_hand(world: World, stable: int, canary: int) -> None:
    """A person edits the route's weights (kubectl apply): the bot did not write this."""
    route = world.kube.get_object(*ROUTE)
    assert route is not None
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = canary if ref["name"] == CANARY else stable
    world.kube.put_object(route)


def _refusals(world: World, user: str) -> list[str]:
    return [t for t in world.ephemeral_texts(user) if any(word in t for word in REFUSED)]


def _phase(world: World) -> Phase:
    return world.rollout().phase


def _card_with(world: World, action_id: str) -> Message | None:
    """The card, read again once a read of it shows the button `action_id`."""
    return world.card() if world.button(world.card(), action_id) else None


def _new_id(world: World, before: str | None) -> str | None:
    """The rollout's id, read again once a read of it is not `before`."""
    return _latest_id(world) if _latest_id(world) != before else None


# -- defect 1: a path around approvals ------------------------------------------------------


def test_an_automatic_plan_applies_nothing_until_another_approver_approves_it(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world, rollout_approvers=["U0BOB", "U0CAROL"])
    w.command("U0DAVE", f"{CANARY} start --steps 100 --auto --interval 0s")
    card = eventually(lambda: _card_with(w, "rollout_approve_plan"),
                      message="a card with Approve plan")
    assert "approver other than" in str(card.blocks)
    _sweeps(w, 3)  # two whole sweeps (the first may have begun before): nothing applied
    assert w.weights() == UNCHANGED and w.rollout().step == -1

    value = w.value(card, "rollout_approve_plan").encode()
    w.click("U0DAVE", card.ts, "rollout_approve_plan", value)  # not an approver
    eventually(lambda: any("only approvers" in t for t in w.ephemeral_texts("U0DAVE")))
    w.command("U0BOB", f"{CANARY} approve")  # a step approval is not a plan approval
    eventually(lambda: any("`approve-plan`" in t for t in w.ephemeral_texts("U0BOB")
                           if ":no_entry:" in t))
    assert w.weights() == UNCHANGED

    w.click("U0CAROL", card.ts, "rollout_approve_plan", value)
    eventually(lambda: w.weights() == {"llm-pool": 0, CANARY: 100}, message="0/100")
    plan_approval = w.rollout().plan_approval
    assert plan_approval is not None
    assert plan_approval.actor.id == "U0CAROL"


def test_the_author_cannot_approve_their_own_automatic_plan(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world, rollout_approvers=["U0BOB", "U0CAROL"])
    w.command("U0BOB", f"{CANARY} start --steps 50,100 --auto --interval 0s")
    card = eventually(lambda: _card_with(w, "rollout_approve_plan"))
    w.click("U0BOB", card.ts, "rollout_approve_plan", w.value(card, "rollout_approve_plan")
            .encode())
    eventually(lambda: any("two-person rule" in t for t in w.ephemeral_texts("U0BOB")))
    w.command("U0BOB", f"{CANARY} promote")
    eventually(lambda: any("cannot promote it (two-person rule)" in t
                           for t in w.ephemeral_texts("U0BOB")))
    assert w.weights() == UNCHANGED


# -- defect 2: Pause and Rollback are never "outdated" --------------------------------------


def test_pause_and_rollback_drawn_before_reminders_and_approvals_still_act(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world, rollout_reminder="1s")
    card = start_rollout(w, text=f"{CANARY} start --interval 0s --approvals 2")
    drawn = {a: w.value(card, a).encode()
             for a in ("rollout_approve", "rollout_pause", "rollout_rollback")}
    w.click("U0BOB", card.ts, "rollout_approve", drawn["rollout_approve"])
    eventually(lambda: len(w.rollout().approvals) == 1)
    version = w.rollout().version
    eventually(lambda: w.rollout().version >= version + 2, message="two reminders")
    # carol clicks the same drawing: other approvals and reminders never refuse it
    w.click("U0CAROL", card.ts, "rollout_approve", drawn["rollout_approve"])
    eventually(lambda: w.weights() == {"llm-pool": 90, CANARY: 10})
    w.click("U0DAVE", card.ts, "rollout_pause", drawn["rollout_pause"])
    eventually(lambda: _phase(w) is Phase.PAUSED, message="paused by the old Pause")
    w.roll_back("U0DAVE", card.ts, drawn["rollout_rollback"])
    eventually(lambda: _phase(w) is Phase.ROLLED_BACK, message="rolled back by the old card")
    assert w.weights() == UNCHANGED
    for user in ("U0BOB", "U0CAROL", "U0DAVE"):
        assert _refusals(w, user) == []


# -- defect 3: an old card never acts on a newer rollout -----------------------------------


def test_an_old_cards_rollback_never_undoes_a_newer_rollout_on_the_rule(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world)
    first = start_rollout(w)
    old_rollback = w.value(first, "rollout_rollback").encode()
    w.command("U0CAROL", f"{CANARY} promote")
    eventually(lambda: _phase(w) is Phase.COMPLETED)
    assert w.weights() == {"llm-pool": 0, CANARY: 100}
    # the reverse move on the same rule: llm-pool is now the canary
    w.command("U0ALICE", "llm-pool start --interval 15m")

    def second_card() -> Message | None:
        if (len(w.cards()) == 2 and w.card().ts != first.ts
                and w.button(w.card(), "rollout_approve")):
            return w.card()
        return None

    second = eventually(second_card)
    w.click("U0BOB", second.ts, "rollout_approve",
            w.value(second, "rollout_approve").encode())
    eventually(lambda: w.weights() == {"llm-pool": 10, CANARY: 90})

    w.roll_back("U0DAVE", first.ts, old_rollback)
    # the refusal is answered once the service has decided, under the lock: nothing is left
    # to happen after it, so the weights can be asserted at once
    eventually(lambda: any("now belongs to rollout" in t for t in w.ephemeral_texts("U0DAVE")))
    assert w.weights() == {"llm-pool": 10, CANARY: 90}
    w.command("U0ALICE", f"{CANARY} rollback")  # the command names the old rollout too
    eventually(lambda: any("now belongs to rollout" in t for t in w.ephemeral_texts("U0ALICE")))
    assert w.weights() == {"llm-pool": 10, CANARY: 90}


# -- defect 4: the card and status follow rollbacks and drift ------------------------------


def test_a_drift_found_by_a_click_is_shown_even_though_the_click_is_refused(
    make_world: Callable[..., World],
) -> None:
    # the sweep is slow here, so that the click is what finds the drift
    w = _scheduled(make_world, rollout_tick="60s", rollout_leader_ttl="300s")
    card = start_rollout(w)
    w.click("U0BOB", card.ts, "rollout_approve", w.value(card, "rollout_approve").encode())
    eventually(lambda: w.rollout().step == 0 and w.weights()[CANARY] == 10)
    eventually(lambda: w.value(w.card(), "rollout_approve").step == 1,
               message="the card offers step 2")
    value = w.value(w.card(), "rollout_approve").encode()
    _set_by_hand(w, 70, 30)
    w.click("U0CAROL", card.ts, "rollout_approve", value)
    eventually(lambda: any("paused: weights changed outside the bot" in t
                           for t in w.ephemeral_texts("U0CAROL")))
    shown = eventually(lambda: _card_with(w, "rollout_resume"),
                       message="the card redrawn as paused")
    assert w.button(shown, "rollout_approve") is None
    assert "the cluster shows 70 / 30" in str(shown.blocks)
    assert w.weights() == {"llm-pool": 70, CANARY: 30}


def test_after_a_rollback_the_card_and_status_show_the_restored_weights(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world)
    card = start_rollout(w, text=f"{CANARY} start --steps 50,100 --interval 15m")
    w.click("U0BOB", card.ts, "rollout_approve", w.value(card, "rollout_approve").encode())
    eventually(lambda: w.weights() == {"llm-pool": 50, CANARY: 50})
    w.command("U0DAVE", f"{CANARY} rollback")
    eventually(lambda: _phase(w) is Phase.ROLLED_BACK)
    shown = eventually(lambda: "rolled back" in w.card().text and w.card())
    assert "weights llm-pool 100 / llm-pool-version-2 0" in str(shown.blocks)
    assert "░░░░░░░░░░ 0%" in str(shown.blocks)
    w.command("U0DAVE", f"{CANARY} status")
    answer = eventually(lambda: [t for t in w.ephemeral_texts("U0DAVE") if "Cluster:" in t])
    assert "rolled back at 0%" in answer[-1]


# -- defect 5: answers that say what happened ----------------------------------------------


def test_a_click_on_a_paused_rollout_says_why_it_is_paused(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world)
    card = start_rollout(w)
    value = w.value(card, "rollout_approve").encode()
    w.command("U0DAVE", f'{CANARY} pause --reason "p99 latency"')
    eventually(lambda: _phase(w) is Phase.PAUSED)
    w.click("U0BOB", card.ts, "rollout_approve", value)
    texts = eventually(lambda: [t for t in w.ephemeral_texts("U0BOB") if "paused" in t])
    assert "p99 latency" in texts[-1] and "outdated" not in texts[-1]
    w.command("U0CAROL", f"{CANARY} resume")
    eventually(lambda: _phase(w) is Phase.AWAITING_APPROVAL)
    w.command("U0CAROL", f"{CANARY} resume")
    eventually(lambda: any("is not paused" in t for t in w.ephemeral_texts("U0CAROL")))
    assert w.weights() == UNCHANGED


# -- defect 6: idempotency keys ------------------------------------------------------------


def _bare_click(w: World, user: str, ts: str, action_id: str, value: str) -> int:
    """A click whose payload has neither trigger_id nor action_ts."""
    action = button_action(action_id=action_id, value=value, block_id="rollout_actions")
    action.pop("action_ts")
    payload = block_actions_payload(user_id=user, channel_id=CHANNEL, message_ts=ts,
                                    action=action)
    payload.pop("trigger_id")
    return deliver(w.bot.events_url, encode_payload(payload), signing_secret=SECRET).status


def test_clicks_without_slacks_ids_are_still_told_apart(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world)
    card = start_rollout(w)
    assert _bare_click(w, "U0DAVE", card.ts, "rollout_pause",
                       w.value(card, "rollout_pause").encode()) == 200
    eventually(lambda: _phase(w) is Phase.PAUSED)
    resume = eventually(lambda: w.button(w.card(), "rollout_resume"))
    assert _bare_click(w, "U0CAROL", card.ts, "rollout_resume", resume["value"]) == 200
    eventually(lambda: _phase(w) is Phase.AWAITING_APPROVAL)
    pause = eventually(lambda: w.button(w.card(), "rollout_pause"))
    assert _bare_click(w, "U0DAVE", card.ts, "rollout_pause", pause["value"]) == 200
    eventually(lambda: _phase(w) is Phase.PAUSED, message="the second pause applied")


def test_a_retry_after_a_failure_runs_again(make_world: Callable[..., World]) -> None:
    from sandbox.kube.faults import Fault

    w = _scheduled(make_world, rollout_tick="60s", rollout_leader_ttl="300s")
    card = start_rollout(w)
    value = w.value(card, "rollout_approve").encode()
    body = block_actions_body(user_id="U0BOB", user_name="bob", channel_id=CHANNEL,
                              message_ts=card.ts, action_id="rollout_approve", value=value,
                              block_id="rollout_actions")
    w.kube.inject(Fault(verb="get", resource="httproutes", status=503, count=-1))
    assert deliver(w.bot.events_url, body, signing_secret=SECRET).status == 200
    eventually(lambda: any(r.verb == "get" and r.resource == "httproutes" and r.status == 503
                           for r in w.kube.requests), message="the failed read")
    w.settled()  # the click's work has failed and ended
    w.kube.clear_faults()
    assert w.weights() == UNCHANGED
    assert deliver(w.bot.events_url, body, signing_secret=SECRET).status == 200  # the retry
    # the saved step, not the route: the proxy logs a PATCH once the server has answered it,
    # and the bot saves only after that answer, so the log then holds the write
    eventually(lambda: w.weights() == {"llm-pool": 90, CANARY: 10} and w.rollout().step == 0,
               message="applied on retry")
    patches = w.route_patches()
    assert deliver(w.bot.events_url, body, signing_secret=SECRET).status == 200  # a duplicate
    w.settled()
    assert w.route_patches() == patches and w.rollout().step == 0, [
        (r.verb, r.status, r.body[:300]) for r in w.kube.requests if r.verb == "patch"]


# -- defect 7: drift pauses within one sweep -----------------------------------------------


def test_a_weight_changed_by_hand_pauses_within_one_sweep(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world)
    card = start_rollout(w, text=f"{CANARY} start --interval 15m")
    w.click("U0BOB", card.ts, "rollout_approve", w.value(card, "rollout_approve").encode())
    eventually(lambda: w.rollout().phase is Phase.BAKING)
    # "within one sweep" counted in drift-watch passes, not in seconds of a loaded machine:
    # the first pass that began after the change has paused the rollout when it ends
    scheduler = w.scheduler
    assert scheduler is not None
    real_watch, changed, after = scheduler.watch, threading.Event(), list[Phase]()

    def watch(rollouts: list[Rollout]) -> None:
        began_after = changed.is_set()
        real_watch(rollouts)
        if began_after:
            after.append(_phase(w))

    scheduler.watch = watch  # type: ignore[method-assign]
    _set_by_hand(w, 60, 40)
    changed.set()
    eventually(lambda: after, timeout=30.0, message="a drift-watch pass after the change")
    assert after[0] is Phase.PAUSED, after  # the 15 min bake is far off: the watch paused it
    pause = w.rollout().pause
    assert pause is not None and pause.kind.value == "drift"
    eventually(lambda: "the cluster shows 60 / 40" in str(w.card().blocks))
    assert w.weights() == {"llm-pool": 60, CANARY: 40}


# -- defect 8: approval requests mention the approvers -------------------------------------


def test_approval_requests_and_reminders_mention_the_approvers_with_slack_dates(
    make_world: Callable[..., World],
) -> None:
    w = _scheduled(make_world, rollout_approver_groups=["S0REVIEWERS"], rollout_reminder="1s")
    card = start_rollout(w)
    w.command("U0BOB", f"{CANARY} approve")  # the bake of 0s ends: an approval request

    def asks() -> list[str]:
        return [m.text for m in w.slack.thread(CHANNEL, card.ts)
                if "<!subteam^S0REVIEWERS>" in m.text]

    lines = eventually(lambda: len(asks()) >= 3 and asks(),
                       message="start, approval request and a reminder mention the approvers")
    assert all("<@U0BOB>" in t and "<@U0CAROL>" in t for t in lines)
    assert all("<!date^" in t and "{date_short_pretty} {time}|" in t for t in lines)
    assert any("still waits for approval" in t for t in lines)


# -- the race as reviewers live it ---------------------------------------------------------


def _latest_id(w: World) -> str | None:
    try:
        return str(w.rollout().id)
    except RolloutError:
        return None


def _reviewer(w: World, user: str, rollout_id: str, seed: int, errors: list[str]) -> None:
    """Click Approve within a second of each drawing that offers a step not yet clicked,
    as a person reading the card would, while the scheduler keeps reminding."""
    rng = random.Random(seed)
    clicked: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = w.container.service.get(Ref(rollout_id=rollout_id))
        if r.phase is Phase.COMPLETED or r.card is None:
            if r.phase is Phase.COMPLETED:
                return
            time.sleep(0.02)
            continue
        message = w.slack.message(CHANNEL, r.card.ts)
        button = w.button(message, "rollout_approve") if message is not None else None
        step = ButtonValue.decode(button["value"]).step if button else None
        if button is None or step is None or step in clicked:
            time.sleep(0.02)
            continue
        time.sleep(rng.uniform(0.0, 1.0))
        clicked.add(step)
        status, _, _ = w.click(user, r.card.ts, "rollout_approve", button["value"])
        if status != 200:
            errors.append(f"{user} step {step}: HTTP {status}")
    errors.append(f"{user}: the rollout did not complete in time")


def test_two_reviewers_clicking_within_a_second_of_each_update_are_never_refused(
    make_world: Callable[..., World],
) -> None:
    """`--approvals 2`, 100 steps (five rollouts of 20), reminders every second: every
    click a reviewer makes on the card as drawn is accepted."""
    w = _scheduled(make_world, rollout_reminder="1s")
    steps = ",".join(str(p) for p in range(5, 101, 5))
    applied = 0
    for round_ in range(5):
        if round_:
            w.command("U0DAVE", f"{CANARY} rollback")
            eventually(lambda: _phase(w) is Phase.ROLLED_BACK)
        before = w.rollout().id if round_ else None
        w.command("U0ALICE", f"{CANARY} start --steps {steps} --interval 0s --approvals 2")
        rollout_id = eventually(partial(_new_id, w, before))
        errors: list[str] = []
        threads = [threading.Thread(target=_reviewer, args=(w, user, rollout_id, seed, errors))
                   for seed, user in enumerate(("U0BOB", "U0CAROL"), start=round_ * 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        done = w.container.service.get(Ref(rollout_id=rollout_id))
        assert done.phase is Phase.COMPLETED
        assert len(done.approvals) == 40
        applied += done.step + 1
    assert applied == 100
    assert w.weights() == {"llm-pool": 0, CANARY: 100}
    for user in ("U0BOB", "U0CAROL"):
        assert w.ephemeral_texts(user) == [], f"{user} was refused"
