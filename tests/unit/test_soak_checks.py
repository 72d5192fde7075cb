"""The soak's judgements, on hand-made logs: each check finds what it exists to find and
nothing in a clean run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from rollout.adapters.store import RedisStore
from rollout.domain.models import Phase
from sandbox.kube.faults import RequestRecord
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from sandbox.slack.workspace import ResponseUrlPost
from tests.soak import checks
from tests.soak.__main__ import main as soak_main
from tests.soak.run import Options, Soak
from tests.soak.world import Answer, Process, SlackAsk, SlackDelivery
from tests.support.real_cluster import KubeWorld, RealCluster
from tests.unit.builders import started

ROUTE = "routes-to-llm"
STABLE, CANARY = "llm-pool", "llm-pool-version-2"
RECORD = {"id": "r1", "stable": STABLE, "canary": CANARY,
          "baseline": {"stable_weight": 100, "canary_weight": 0, "canary": {"name": CANARY}}}


def _patch(at: float, stable: int, canary: int, step: int, state: str = "active", *,
           status: int = 200, record: bool = False, rollout: str = "r1") -> RequestRecord:
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/annotations/inference-rollout.dev~1fence",
         "value": "3"},
        {"op": "replace", "path": "/spec/rules/0/backendRefs",
         "value": [{"name": STABLE, "weight": stable}, {"name": CANARY, "weight": canary}]},
        {"op": "add", "path": checks.MARKER_PATH,
         "value": json.dumps({"rollout": rollout, "step": step, "state": state})},
    ]
    if record:
        ops.append({"op": "add", "path": checks.RECORD_PATH, "value": json.dumps(RECORD)})
    return RequestRecord(method="PATCH", path=f"/apis/x/{ROUTE}", verb="patch",
                         resource="httproutes", namespace="default", name=ROUTE,
                         subresource=None, content_type="application/json-patch+json",
                         body=json.dumps(ops).encode(), status=status, at=at)


def _answer(verb: str, code: int, started_at: float, ended: float, step: int | None = None
            ) -> Answer:
    return Answer(verb, CANARY, "r1", step, started_at, ended, code, "")


def _route(stable: int, canary: int, marker: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"annotations": {"inference-rollout.dev/rule-0": json.dumps(marker)}},
            "spec": {"rules": [{"backendRefs": [{"name": STABLE, "weight": stable},
                                                {"name": CANARY, "weight": canary}]}]}}


LOG = [_patch(1.0, 100, 0, -1, record=True), _patch(2.0, 75, 25, 0),
       _patch(3.0, 50, 50, 1, status=500), _patch(4.0, 50, 50, 1),
       _patch(5.0, 100, 0, 1, "rolled-back")]


def test_only_weight_writes_the_server_applied_count() -> None:
    fence_off = RequestRecord(method="PATCH", path="", verb="patch", resource="httproutes",
                              namespace="default", name=ROUTE, subresource=None,
                              content_type="", status=200, at=9.0, body=json.dumps(
                                  [{"op": "add", "path": "/metadata/annotations/x",
                                    "value": "1"}]).encode())
    writes = checks.landed_writes([*LOG, fence_off])
    assert [(w.at, w.step, w.state) for w in writes] == [
        (1.0, -1, "active"), (2.0, 0, "active"), (4.0, 1, "active"), (5.0, 1, "rolled-back")]
    assert checks.baselines(writes) == {"r1": {STABLE: 100, CANARY: 0}}


def test_a_step_landing_twice_is_found_and_a_rollback_is_not_a_step() -> None:
    assert checks.steps_applied_twice(checks.landed_writes(LOG)) == []
    twice = checks.landed_writes([*LOG, _patch(6.0, 50, 50, 1)])
    assert checks.steps_applied_twice(twice) == [f"{ROUTE}: rollout r1 step 2 landed 2 times"]


def test_a_rollback_answered_ok_must_leave_the_baseline() -> None:
    writes = checks.landed_writes(LOG)
    ok = [_answer("rollback", 0, 4.5, 5.5)]
    home = {ROUTE: _route(100, 0, {"rollout": "r1", "step": 1, "state": "rolled-back"})}
    assert checks.rollbacks_lost(ok, writes, home) == []
    moved = {ROUTE: _route(50, 50, {"rollout": "r1", "step": 1, "state": "rolled-back"})}
    assert len(checks.rollbacks_lost(ok, writes, moved)) == 1
    undone = checks.landed_writes([*LOG, _patch(6.0, 50, 50, 1)])
    assert len(checks.rollbacks_lost(ok, undone, home)) == 1
    assert checks.rollbacks_lost([_answer("rollback", 5, 4.5, 5.5)], undone, home) == []


def test_answers_are_held_to_what_landed_while_they_worked() -> None:
    writes = checks.landed_writes(LOG)
    truthful = [_answer("approve", 0, 1.5, 2.5, step=0), _answer("approve", 0, 9.0, 9.5, step=0),
                _answer("approve", 2, 6.0, 7.0, step=1), _answer("rollback", 0, 4.5, 5.5),
                _answer("approve", 1, 2.5, 3.5, step=1)]
    assert checks.contradicting_answers(truthful, writes) == []
    said_no = _answer("approve", 3, 3.5, 4.5, step=1)  # its write landed at 4.0
    said_yes = _answer("approve", 0, 6.0, 7.0, step=2)  # step 3 never landed
    found = checks.contradicting_answers([said_no, said_yes], writes)
    assert [line.split(":")[0] for line in found] == [f"approve {CANARY} step 2",
                                                      f"approve {CANARY} step 3"]


def test_the_store_and_the_cluster_must_agree_on_finished_rollouts_too() -> None:
    rollout = started((25, 50, 100))
    done = rollout.model_copy(update={"phase": Phase.COMPLETED, "step": 2})
    completed = _route(0, 100, {"rollout": "r1", "step": 2, "state": "completed"})
    assert checks.store_cluster_disagreements({ROUTE: completed}, {"r1": done},
                                              {ROUTE: "r1"}) == []
    restored = _route(100, 0, {"rollout": "r1", "step": 2, "state": "rolled-back"})
    assert len(checks.store_cluster_disagreements({ROUTE: restored}, {"r1": done},
                                                  {ROUTE: "r1"})) == 2
    active = rollout.model_copy(update={"phase": Phase.AWAITING_APPROVAL})
    prepared = _route(100, 0, {"rollout": "r1", "step": -1, "state": "active"})
    assert checks.store_cluster_disagreements({ROUTE: prepared}, {"r1": active},
                                              {ROUTE: "r1"}) == [
        f"{ROUTE}: r1 still awaiting_approval after converging"]
    assert len(checks.store_cluster_disagreements({ROUTE: completed}, {"r1": None},
                                                  {ROUTE: None})) == 2


def test_the_audit_must_name_every_landed_step() -> None:
    writes = checks.landed_writes(LOG)
    assert checks.audit_disagreements(writes, {"r1": {0, 1}}) == []
    assert checks.audit_disagreements(writes, {"r1": {0}}) == [
        "rollout r1: steps [2] landed, the audit does not say so"]


def test_an_answer_that_says_landed_or_not_known_is_held_to_what_it_says() -> None:
    writes = checks.landed_writes(LOG)
    unrecorded = Answer("approve", CANARY, "r1", 1, 3.5, 4.5, 3,
                        "landed, not recorded yet: the lock lapsed")
    unknown = Answer("approve", CANARY, "r1", 1, 3.5, 4.5, 1,
                     "Not known whether this landed: timed out; the rollout is paused")
    assert [checks.claim(unrecorded), checks.claim(unknown)] == ["landed", "unknown"]
    assert checks.contradicting_answers([unrecorded, unknown], writes) == []
    never = Answer("approve", CANARY, "r1", 2, 6.0, 7.0, 3, "landed, not recorded yet: x")
    assert len(checks.contradicting_answers([never], writes)) == 1


def _ask(url_id: str, started_at: float, verb: str = "approve", route: str = ROUTE,
         step: int | None = 1) -> SlackAsk:
    return SlackAsk(route, verb, CANARY, "r1", step, started_at, url_id)


def _post(url_id: str, at: float, text: str) -> ResponseUrlPost:
    return ResponseUrlPost(url_id=url_id, kind="command", channel="C1", user="U1",
                           response_type="ephemeral", replace_original=False,
                           delete_original=False, text=text, blocks=None, thread_ts=None,
                           body={}, at=at)


def test_slack_answers_are_judged_when_no_other_request_could_make_their_write() -> None:
    asks = [_ask("a", 10.0), _ask("b", 20.0), _ask("c", 30.0), _ask("d", 31.0),
            _ask("e", 40.0, route="other"), _ask("f", 50.0, step=2), _ask("g", 60.0, step=2),
            _ask("h", 100.0, verb="rollback", step=None),
            _ask("i", 200.0, route="third"), _ask("j", 210.0, route="third"),
            _ask("k", 220.0, route="third"), _ask("l", 230.0, route="third"),
            _ask("m", 240.0, route="third")]
    posts = [_post("a", 10.5, ":hourglass_flowing_sand: Working on it…"),
             _post("a", 11.0, ":white_check_mark: Step 2 applied"),
             _post("b", 21.0, ":hourglass: the change landed in the cluster but could not be "
                              "recorded"),
             _post("c", 33.0, ":warning: Not applied"),  # d was sent before c was answered
             _post("d", 34.0, ":white_check_mark: Step 2 applied"),
             _post("e", 41.0, ":no_entry: Refused"),
             _post("g", 61.0, ":warning: Not applied"),  # f (step 2) may still be at work
             _post("h", 101.0, ":white_check_mark: Rolled back")]  # f cannot roll back
    acked = SlackDelivery(status=200)
    deliveries = {a.url_id: acked for a in asks} | {
        "i": SlackDelivery(status=None), "j": SlackDelivery(status=503, ack="retry later"),
        "k": SlackDelivery(status=200, ack=":hourglass: The bot is busy"),
        "m": SlackDelivery(status=200, card_changed=True)}  # l: acked
    judged, left = checks.slack_answers(asks, posts, deliveries)
    assert [(a.started, a.ended, a.code) for a in judged] == [
        (10.0, 11.0, 0), (20.0, 21.0, 0), (40.0, 41.0, 1), (100.0, 101.0, 0)]
    assert left == {"slack answers overlapping a request for the same write": 3,
                    "slack requests acked and never answered": 2,  # f and l
                    "slack requests not delivered (replica down, or no HTTP answer in time)": 1,
                    "slack requests refused at delivery (HTTP 503)": 1,
                    "slack requests answered in the ack": 1,
                    "slack clicks answered on the card": 1}
    # an acked request's answer: refused by Slack, or its replica killed before it answered
    late = [_ask("n", 300.0, route="fourth"), _ask("o", 310.0, route="fourth"),
            _ask("p", 320.0, route="fourth"), _ask("q", 330.0, route="fourth")]
    sent = {"n": SlackDelivery(status=200, replica=0, at=300.0),
            "o": SlackDelivery(status=200, replica=1, at=310.0),  # 1 killed at 312
            "p": SlackDelivery(status=200, replica=0, at=320.0),  # 0 killed at 290: before
            "q": SlackDelivery(status=200, replica=1, at=330.0)}  # 1 killed at 361: too late
    _, why = checks.slack_answers(late, [], sent, refused={"n"},
                                  kills={0: [290.0], 1: [312.0, 361.0]})
    assert why == {"slack requests acked, their answer refused by Slack's injected faults": 1,
                   "slack requests acked by a replica killed before it answered": 1,
                   "slack requests acked and never answered": 2}
    # a judged Slack answer is held to the writes like a CLI one
    said_applied_with_nothing_landed = checks.contradicting_answers(judged[:1], [])
    assert len(said_applied_with_nothing_landed) == 1
    # those acked and never answered, and nothing explains, are listed to follow up
    assert checks.never_answered(asks, posts, deliveries) == [
        'approve step 3 of llm-pool-version-2 (r1) on routes-to-llm: to replica None at '
        '00:00:00.000 UTC, no "working on it", response URL f',
        'approve step 2 of llm-pool-version-2 (r1) on third: to replica None at '
        '00:00:00.000 UTC, no "working on it", response URL l']
    assert checks.never_answered(late, [_post("p", 321.0, ":hourglass_flowing_sand: Working")],
                                 sent, refused={"n"}, kills={0: [290.0], 1: [312.0, 361.0]}
                                 ) == [
        'approve step 2 of llm-pool-version-2 (r1) on fourth: to replica 0 at 00:05:20.000 '
        'UTC, a "working on it", response URL p',
        'approve step 2 of llm-pool-version-2 (r1) on fourth: to replica 1 at 00:05:30.000 '
        'UTC, no "working on it", response URL q']


def test_a_rollback_of_a_start_whose_first_write_never_landed_is_held_to_the_stored_baseline(
) -> None:
    only_restore = checks.landed_writes([_patch(5.0, 100, 0, -1, "rolled-back")])
    ok = [_answer("rollback", 0, 4.5, 5.5)]
    home = {ROUTE: _route(100, 0, {"rollout": "r1", "step": -1, "state": "rolled-back"})}
    assert len(checks.rollbacks_lost(ok, only_restore, home)) == 1  # nothing to judge by
    stored = {"r1": {STABLE: 100, CANARY: 0}}
    assert checks.rollbacks_lost(ok, only_restore, home, stored) == []
    assert len(checks.rollbacks_lost(ok, only_restore, home, {"r1": {STABLE: 90, CANARY: 10}
                                                              })) == 1


def _log(at: str, level: str, message: str, **fields: str) -> str:
    return json.dumps({"time": f"1970-01-01T00:{at}+00:00", "level": level,
                       "logger": "rollout-bot.decisions", "message": message, **fields})


def test_a_request_never_answered_comes_with_what_its_replica_logged_while_awaited() -> None:
    lines = [_log("04:59.000", "info", "approved r1 too early", rollout_id="r1"),
             _log("05:00.100", "info", "slack request", rollout_id="r1"),
             _log("05:01.000", "info", "applied r2", rollout_id="r2"),  # another rollout
             "Traceback (most recent call last):",  # not JSON: skipped
             _log("05:02.000", "warning", "Slack chat.update failed: 500"),  # names none
             _log("05:29.900", "info", "approved step 2 of r1", rollout_id="r1"),
             _log("05:30.600", "info", "r1 after the wait", rollout_id="r1")]
    assert checks.log_excerpt(lines, "r1", 300.0) == [
        "00:05:00.100 info rollout-bot.decisions: slack request",
        "00:05:02.000 warning rollout-bot.decisions: Slack chat.update failed: 500",
        "00:05:29.900 info rollout-bot.decisions: approved step 2 of r1"]
    # a request that named no rollout yet (a start): every line of the wait
    assert len(checks.log_excerpt(lines, None, 300.0)) == 4
    many = [_log("05:01.000", "warning", f"w{i}") for i in range(checks.EXCERPT_LINES + 3)]
    cut = checks.log_excerpt(many, "r1", 300.0)
    assert len(cut) == checks.EXCERPT_LINES + 1 and cut[-1] == "... and 3 more lines"
    asks = [_ask("p", 300.0, route="fourth")]
    sent = {"p": SlackDelivery(status=200, replica=1, at=300.0)}
    listed = checks.never_answered(asks, [], sent, logs={0: [], 1: lines})
    assert listed == [
        'approve step 2 of llm-pool-version-2 (r1) on fourth: to replica 1 at 00:05:00.000 '
        'UTC, no "working on it", response URL p'
        "\n        | 00:05:00.100 info rollout-bot.decisions: slack request"
        "\n        | 00:05:02.000 warning rollout-bot.decisions: Slack chat.update failed: 500"
        "\n        | 00:05:29.900 info rollout-bot.decisions: approved step 2 of r1"]
    assert checks.never_answered(asks, [], sent, logs={0: lines}) == [listed[0].split("\n")[0]]


@pytest.mark.parametrize("content", ["a file", "a used directory"])
def test_the_soak_keeps_its_logs_only_in_a_new_or_empty_directory(
        tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything starts: a run's logs mixed into another's would be followed
    up wrongly, and its Redis would start on the other run's files."""
    target = tmp_path / "logs"
    if content == "a file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / "replica-0.log").write_text("{}\n")
    with pytest.raises(SystemExit) as stopped:
        soak_main(["--duration", "1", "--logs", str(target)])
    assert stopped.value.code == 2
    assert f"--logs {target}: give a new or empty directory" in capsys.readouterr().err


# ---- the soak's wait for an answer -------------------------------------------------------


class _Message:
    def __init__(self, blocks: list[dict[str, Any]]) -> None:
        self.blocks = blocks


class _Slack:
    """The two things the wait reads of the Slack emulator: answers and the card."""

    def __init__(self, card: list[dict[str, Any]]) -> None:
        self.responses: list[ResponseUrlPost] = []
        self.card = card

    def message(self, channel: str, ts: str) -> _Message:
        return _Message(self.card)


def _soak_waiting(slack: _Slack) -> Soak:
    soak = Soak(options=cast(Options, None), world=cast(KubeWorld, None),
                cluster=cast(RealCluster, None), redis=cast(RedisServer, None),
                slack=cast(SlackEmulator, slack), env={}, store=cast(RedisStore, None),
                targets=[], replicas=[], scheduler=cast(Process, None))
    soak.stop.set()  # the soak's window has ended
    return soak


def test_a_click_answered_on_its_card_after_the_window_ended_is_recorded_as_answered() -> None:
    """A click sent just before the window ended, whose card changed a moment after: it was
    counted as acked and never answered (seed 52) when the wait stopped at the window's end."""
    clicked = [{"type": "actions", "elements": []}]
    slack = _Slack(card=[{"type": "section"}])  # the card as it is now: changed
    soak = _soak_waiting(slack)
    delivery = SlackDelivery(status=200, replica=2, at=0.0)
    soak._await_answer("soak-469", delivery, timeout=5.0, card=("C1", "1.0", clicked))
    assert soak.slack_deliveries["soak-469"].card_changed
    assert checks.unanswered(soak.slack_deliveries["soak-469"]) == \
        "slack clicks answered on the card"
