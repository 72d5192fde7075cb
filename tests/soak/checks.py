"""What a soak found, judged from the proxy's log of writes that landed, the CLI's answers, the
audit and the final cluster and store: pure functions over data the run collected."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rollout.adapters.kube.markers import pointer, record_key, rule_key
from rollout.domain.models import Phase, Rollout
from rollout.domain.split import MarkerState, expected_pair
from sandbox.kube.faults import RequestRecord
from sandbox.slack.workspace import ResponseUrlPost
from tests.soak.world import Answer, SlackAsk, SlackDelivery

MARKER_PATH = pointer(rule_key(0))
RECORD_PATH = pointer(record_key(0))
STEP_STATES = (MarkerState.ACTIVE.value, MarkerState.COMPLETED.value)


@dataclass(frozen=True)
class Write:
    """A weight-changing PATCH of a route's rule 0 that the API server applied."""

    route: str
    at: float
    weights: dict[str, int]
    rollout: str
    step: int
    state: str
    record: dict[str, Any] | None  # the rollout's record, on the write that took the rule

    @property
    def applies_step(self) -> bool:
        return self.state in STEP_STATES and self.step >= 0


def landed_writes(log: Iterable[RequestRecord]) -> list[Write]:
    """Every route write that landed (2xx from the server, answered to the bot or not)."""
    writes = []
    for r in log:
        if r.verb != "patch" or r.resource != "httproutes" or not 200 <= r.status < 300:
            continue
        ops = {op["path"]: op.get("value") for op in json.loads(r.body)
               if op["op"] in ("add", "replace")}
        refs, marker = ops.get("/spec/rules/0/backendRefs"), ops.get(MARKER_PATH)
        if refs is None or marker is None:
            continue  # a fence-off or a marker cleared: no traffic moved
        mark = json.loads(marker)
        record = json.loads(ops[RECORD_PATH]) if RECORD_PATH in ops else None
        writes.append(Write(
            route=r.name or "", at=r.at,
            weights={ref["name"]: int(ref.get("weight", 1)) for ref in refs},
            rollout=str(mark["rollout"]), step=int(mark["step"]),
            state=str(mark.get("state", "active")), record=record,
        ))
    return writes


def steps_applied_twice(writes: Sequence[Write]) -> list[str]:
    """A step of a rollout whose weight write landed more than once."""
    seen = Counter((w.route, w.rollout, w.step) for w in writes if w.applies_step)
    return [f"{route}: rollout {rid} step {step + 1} landed {n} times"
            for (route, rid, step), n in seen.items() if n > 1]


def baselines(writes: Sequence[Write]) -> dict[str, dict[str, int]]:
    """Each rollout's pre-start weights, from the record its first write carried."""
    out = {}
    for w in writes:
        if w.record is not None:
            base = w.record["baseline"]
            weights = {w.record["stable"]: int(base["stable_weight"])}
            if base.get("canary") is not None:
                weights[w.record["canary"]] = int(base["canary_weight"])
            out[w.rollout] = weights
    return out


def _managed(weights: Mapping[str, int], names: Iterable[str]) -> dict[str, int | None]:
    return {n: weights.get(n) for n in names}


def stored_baseline(rollout: Rollout) -> dict[str, int]:
    """The pre-start weights the store keeps for a rollout."""
    weights = {rollout.stable: rollout.baseline.stable_weight}
    if rollout.baseline.canary is not None:
        weights[rollout.canary] = rollout.baseline.canary_weight
    return weights


def rollbacks_lost(answers: Sequence[Answer], writes: Sequence[Write],
                   final_routes: Mapping[str, dict[str, Any]],
                   stored: Mapping[str, dict[str, int]] | None = None) -> list[str]:
    """A rollback answered OK whose rollout's traffic is not at its baseline: the last write
    of that rollout is not the restore, or the route (still that rollout's) shows otherwise.
    The baseline is the record the rollout's first write carried; `stored` (the store's,
    per rollout id) stands in for a rollout whose first write never landed (a start cut short:
    its rollback restores the weights the start read)."""
    base = baselines(writes)
    lost = []
    for a in answers:
        if a.verb != "rollback" or a.code != 0 or a.rollout_id is None:
            continue
        own = [w for w in writes if w.rollout == a.rollout_id]
        if not own:
            continue  # nothing of it ever landed: nothing to restore
        last = own[-1]
        wanted = base.get(a.rollout_id) or (stored or {}).get(a.rollout_id)
        if wanted is None:
            lost.append(f"rollback of {a.rollout_id}: no record of its baseline landed, nor "
                        f"is it in the store; its writes: {_described(own)}")
            continue
        if last.state != MarkerState.ROLLED_BACK.value or \
                _managed(last.weights, wanted) != _managed(wanted, wanted):
            lost.append(f"rollback of {a.rollout_id} answered OK at {a.ended:.3f}, its "
                        f"baseline is {wanted}, its writes: {_described(own)}")
            continue
        route = final_routes.get(last.route)
        if route is not None and route_marker(route).get("rollout") == a.rollout_id:
            now = route_weights(route)
            if _managed(now, wanted) != _managed(wanted, wanted):
                lost.append(f"rollback of {a.rollout_id}: {last.route} ends at {now}, "
                            f"baseline {wanted}")
    return lost


def _described(writes: Sequence[Write]) -> str:
    return "; ".join(f"{w.at:.3f} {w.state} step {w.step + 1} {w.weights}"
                     + (" +record" if w.record is not None else "") for w in writes)


def _landed(writes: Sequence[Write], a: Answer, *, since: float) -> bool:
    """Whether the write this command exists to make landed between `since` and its answer."""
    for w in writes:
        if not since <= w.at <= a.ended:
            continue
        if a.verb == "approve" and w.rollout == a.rollout_id and w.step == a.step \
                and w.applies_step:
            return True
        if a.verb == "rollback" and w.rollout == a.rollout_id \
                and w.state == MarkerState.ROLLED_BACK.value:
            return True
        if a.verb == "start" and w.record is not None and w.record["canary"] == a.canary:
            return True
    return False


# The CLI's own first words where one exit code covers answers that differ on whether the
# write landed: exit 3 is also "landed, not recorded yet", exit 1 also "not known", exit 5
# also "landed, then a rollback took over".
LANDED_UNRECORDED = "landed, not recorded yet"
LANDED_SUPERSEDED = "superseded: the change landed in the cluster"
NOT_KNOWN = "Not known whether this landed"


def claim(a: Answer) -> str:
    """What an answer says of its write: "landed", "not landed" or "unknown"."""
    if a.code == 0 or a.output.startswith((LANDED_UNRECORDED, LANDED_SUPERSEDED)):
        return "landed"
    if a.code == -9 or NOT_KNOWN in a.output:
        return "unknown"
    return "not landed"


def contradicting_answers(answers: Sequence[Answer], writes: Sequence[Write]) -> list[str]:
    """An answer that says landed (exit 0, or "landed, not recorded yet") for a write that
    never landed, or not landed (any other exit, but "not known") for a write that landed while
    it worked. Only one command per kind is ever in flight on a CLI-driven target, so a write
    in a command's window is that command's."""
    found = []
    for a in answers:
        said = claim(a)
        if a.verb not in ("approve", "rollback", "start") or said == "unknown":
            continue
        if a.verb != "start" and a.rollout_id is None:
            continue
        if said == "landed":
            # a retry may find its step applied by an earlier attempt: any time up to the answer
            since = a.started if a.verb == "start" else 0.0
            if a.verb == "rollback" and not any(w.rollout == a.rollout_id for w in writes):
                continue  # nothing of it landed, so there was nothing to restore
            if not _landed(writes, a, since=since):
                found.append(f"{a.verb} {a.canary} step {_step(a)}: exit {a.code} (landed) but "
                             f"no such write landed: {a.output!r}")
        elif _landed(writes, a, since=a.started):
            found.append(f"{a.verb} {a.canary} step {_step(a)}: exit {a.code} but its write "
                         f"landed: {a.output!r}")
    return found


# Slack answers: the first emoji says how it went (handlers.replies); two kinds of answer say
# the change landed though the command did not finish ("landed, not recorded yet" and
# "landed, then a rollback took over"), as the CLI's exit codes 3 and 5 may.
SLACK_OK = (":white_check_mark:", ":information_source:")
SLACK_LANDED = (":hourglass: the change landed", ":rewind: the change landed")
SLACK_WORKING = ":hourglass_flowing_sand:"


def slack_answers(asks: Sequence[SlackAsk], posts: Sequence[ResponseUrlPost],
                  deliveries: Mapping[str, SlackDelivery], *,
                  refused: Collection[str] = (),
                  kills: Mapping[int, Sequence[float]] | None = None,
                  ) -> tuple[list[Answer], Counter[str]]:
    """The Slack requests whose answer can be judged, as `Answer`s (exit 0 where the answer
    says it landed): each answered, and the only request that could make its write (the same
    verb on the same rollout, and step, or a start on the same route) from its sending to its
    answer, so that such a write in that window is its own; one never answered may still be
    at work. The counter says how many were left out, and why: an unanswered request by what
    its delivery saw, the answers Slack refused (`refused`, response URL ids) and when each
    replica was killed (`kills`, by replica index) (`unanswered`)."""
    final: dict[str, ResponseUrlPost] = {}
    for post in sorted(posts, key=lambda p: p.at):
        if post.text and not post.text.startswith(SLACK_WORKING):
            final[post.url_id] = post
    windows = {a.url_id: (a.started, final[a.url_id].at if a.url_id in final else float("inf"))
               for a in asks}
    judged: list[Answer] = []
    left: Counter[str] = Counter()
    for a in asks:
        answered = final.get(a.url_id)
        if answered is None:
            left[unanswered(deliveries.get(a.url_id), refused=a.url_id in refused,
                            kills=(kills or {}))] += 1
            continue
        start, end = windows[a.url_id]
        if any(_same_write(a, b) and b.url_id != a.url_id and windows[b.url_id][0] <= end
               and start <= windows[b.url_id][1] for b in asks):
            left["slack answers overlapping a request for the same write"] += 1
            continue
        text = answered.text or ""
        code = 0 if text.startswith(SLACK_OK + SLACK_LANDED) else 1
        judged.append(Answer(a.verb, a.canary, a.rollout_id, a.step, start, end, code, text))
    return judged, left


def never_answered(asks: Sequence[SlackAsk], posts: Sequence[ResponseUrlPost],
                   deliveries: Mapping[str, SlackDelivery], *,
                   refused: Collection[str] = (),
                   kills: Mapping[int, Sequence[float]] | None = None,
                   logs: Mapping[int, Sequence[str]] | None = None) -> list[str]:
    """Each Slack request acked and never answered that nothing explains (`unanswered`), with
    what the soak knows of it: the command, when and to which replica it went, and whether
    the bot's "Working on it" came; and, given each replica's log lines (`logs`, by replica
    index), what that replica logged of it while the soak waited (`log_excerpt`)."""
    answered = {p.url_id for p in posts if p.text and not p.text.startswith(SLACK_WORKING)}
    working = {p.url_id for p in posts if p.text and p.text.startswith(SLACK_WORKING)}
    found = []
    for a in asks:
        delivery = deliveries.get(a.url_id)
        if a.url_id in answered or unanswered(
                delivery, refused=a.url_id in refused,
                kills=kills) != "slack requests acked and never answered":
            continue
        assert delivery is not None
        at = datetime.fromtimestamp(delivery.at, UTC).strftime("%H:%M:%S.%f")[:-3]
        step = "" if a.step is None else f" step {a.step + 1}"
        found.append(f"{a.verb}{step} of {a.canary} ({a.rollout_id or 'no rollout yet'}) "
                     f"on {a.route}: to replica {delivery.replica} at {at} UTC, "
                     f"{'a' if a.url_id in working else 'no'} \"working on it\", "
                     f"response URL {a.url_id}"
                     + "".join(f"\n        | {line}" for line in log_excerpt(
                         _replica_log(logs, delivery.replica), a.rollout_id, delivery.at)))
    return found


def _replica_log(logs: Mapping[int, Sequence[str]] | None, replica: int | None
                 ) -> Sequence[str]:
    return (logs or {}).get(replica, ()) if replica is not None else ()


#: at most this many log lines follow a request never answered
EXCERPT_LINES = 30


def log_excerpt(lines: Iterable[str], rollout_id: str | None, at: float) -> list[str]:
    """What a bot process logged (its JSON lines) from a request's delivery at `at` to the
    end of the soak's wait for its answer: the lines naming the rollout (every line, when the
    request named none yet) and every warning or error, as `time level logger: message`."""
    found = []
    for raw in lines:
        try:
            entry = json.loads(raw)
            when = datetime.fromisoformat(entry["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue  # a line that is not the bot's JSON (a traceback's continuation)
        if not at - 0.5 <= when <= at + ANSWER_WAIT:
            continue
        level = str(entry.get("level", ""))
        if (rollout_id is None or rollout_id in raw) or level in ("warning", "error"):
            found.append(f"{entry['time'][11:23]} {level} {entry.get('logger', '')}: "
                         f"{entry.get('message', '')}")
    if len(found) > EXCERPT_LINES:
        return [*found[:EXCERPT_LINES], f"... and {len(found) - EXCERPT_LINES} more lines"]
    return found


#: how long after its delivery a replica's death explains a request it acked and never
#: answered (the soak waits this long for an answer, as a person would)
ANSWER_WAIT = 30.0


def unanswered(delivery: SlackDelivery | None, *, refused: bool = False,
               kills: Mapping[int, Sequence[float]] | None = None) -> str:
    """Why a Slack request has no answer through its response URL, as its delivery tells;
    an acked one by what became of its answer: Slack refused it (`refused`: an injected
    fault, and the bot gave up after its retries), or the replica it went to was killed
    before it answered (`kills`). What is left is an answer the bot never sent."""
    if delivery is None or delivery.status is None:
        return "slack requests not delivered (replica down, or no HTTP answer in time)"
    if delivery.status != 200:
        return f"slack requests refused at delivery (HTTP {delivery.status})"
    if not delivery.awaits_answer:
        return "slack requests answered in the ack"
    if delivery.card_changed:  # a click that changed the rollout says so on the card alone
        return "slack clicks answered on the card"
    if refused:
        return "slack requests acked, their answer refused by Slack's injected faults"
    died = (kills or {}).get(delivery.replica, []) if delivery.replica is not None else []
    if any(delivery.at <= k <= delivery.at + ANSWER_WAIT for k in died):
        return "slack requests acked by a replica killed before it answered"
    return "slack requests acked and never answered"


def _same_write(a: SlackAsk, b: SlackAsk) -> bool:
    """Whether two requests could make the same write (`_landed` tells them apart otherwise)."""
    if a.route != b.route or a.verb != b.verb:
        return False
    return a.verb == "start" or (a.rollout_id == b.rollout_id and a.step == b.step)


def _step(a: Answer) -> str:
    return "-" if a.step is None else str(a.step + 1)


def route_marker(route: dict[str, Any]) -> dict[str, Any]:
    raw = (route["metadata"].get("annotations") or {}).get(rule_key(0))
    return dict(json.loads(raw)) if raw else {}


def route_weights(route: dict[str, Any]) -> dict[str, int]:
    return {ref["name"]: int(ref.get("weight", 1))
            for ref in route["spec"]["rules"][0]["backendRefs"]}


_MARKER_OF_PHASE = {Phase.COMPLETED: MarkerState.COMPLETED.value,
                    Phase.ROLLED_BACK: MarkerState.ROLLED_BACK.value}


def store_cluster_disagreements(final_routes: Mapping[str, dict[str, Any]],
                                rollouts: Mapping[str, Rollout | None],
                                latest: Mapping[str, str | None]) -> list[str]:
    """Per route: the rollout its marker names, as the store has it, against the weights and
    marker the cluster shows (finished rollouts too); `latest` is the store's newest rollout
    id per route. Nothing may be left active once the soak converged."""
    found = []
    for name, route in sorted(final_routes.items()):
        marker, rid = route_marker(route), latest.get(name)
        if not marker:
            if rid is not None:
                found.append(f"{name}: no marker, the store's latest rollout is {rid}")
            continue
        if marker["rollout"] != rid:
            newer = rollouts.get(rid) if rid else None
            found.append(f"{name}: marker names {marker['rollout']}, the store's latest is {rid}"
                         + (f" ({newer.phase.value} at step {newer.step + 1})" if newer else ""))
        rollout = rollouts.get(str(marker["rollout"]))
        if rollout is None:
            found.append(f"{name}: the store has no rollout {marker['rollout']}")
            continue
        weights = route_weights(route)
        pair = expected_pair(rollout)
        shown = (weights.get(rollout.stable), weights.get(rollout.canary))
        if shown != (pair.stable, pair.canary):
            found.append(f"{name}: {rollout.id} is {rollout.phase.value} at step "
                         f"{rollout.step + 1}, expected {pair.describe()}, the route shows "
                         f"{weights}")
        state = _MARKER_OF_PHASE.get(rollout.phase, MarkerState.ACTIVE.value)
        if marker.get("state", "active") != state or int(marker["step"]) != rollout.step:
            found.append(f"{name}: {rollout.id} is {rollout.phase.value} at step "
                         f"{rollout.step + 1}, the marker says {marker}")
        if rollout.phase not in (Phase.COMPLETED, Phase.ROLLED_BACK, Phase.FAILED):
            found.append(f"{name}: {rollout.id} still {rollout.phase.value} after converging")
    return found


def audit_disagreements(writes: Sequence[Write], audited: Mapping[str, set[int]],
                        trails: Mapping[str, str] | None = None) -> list[str]:
    """Steps that landed but the audit (history --output json) never says were applied or
    recovered, per rollout still in the store (`audited`: rollout id -> steps; `trails`, the
    audit's actions in order, shown as the evidence)."""
    landed: dict[str, set[int]] = {}
    for w in writes:
        if w.applies_step:
            landed.setdefault(w.rollout, set()).add(w.step)
    found = []
    for rid, steps in sorted(landed.items()):
        if rid in audited and steps - audited[rid]:
            missing = sorted(s + 1 for s in steps - audited[rid])
            trail = (trails or {}).get(rid)
            found.append(f"rollout {rid}: steps {missing} landed, the audit does not say so"
                         + (f" (audit: {trail})" if trail else ""))
    return found


@dataclass
class Report:
    """Faults injected by kind and each check's findings; `must_be_zero` names the checks that
    fail the run."""

    faults: Counter[str] = field(default_factory=Counter)
    activity: Counter[str] = field(default_factory=Counter)
    checks: dict[str, list[str]] = field(default_factory=dict)
    must_be_zero: tuple[str, ...] = ()

    @property
    def failed(self) -> list[str]:
        return [name for name in self.must_be_zero if self.checks.get(name)]

    def lines(self) -> list[str]:
        out = ["faults injected:"]
        out += [f"  {kind:<28} {n}" for kind, n in sorted(self.faults.items())]
        out += ["activity:"]
        out += [f"  {kind:<28} {n}" for kind, n in sorted(self.activity.items())]
        out += ["checks:"]
        for name, found in self.checks.items():
            must = "must be 0" if name in self.must_be_zero else "printed"
            out.append(f"  {name:<40} {len(found):>4}  ({must})")
            out += [f"    - {line}" for line in found[:20]]
            if len(found) > 20:
                out.append(f"    ... and {len(found) - 20} more")
        return out
