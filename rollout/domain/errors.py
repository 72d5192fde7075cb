"""One error root with kinds that tell the caller what to do: refuse, retry, or page a human.

Handlers turn these into Slack replies and the CLI into exit codes; nothing below the edge
formats a message for a particular channel.
"""

from __future__ import annotations


class RolloutError(Exception):
    """Root of every error the rollout layer raises on purpose."""


class Refused(RolloutError):
    """The request was understood and refused; nothing changed. Tell the person why."""


class NotFound(Refused):
    """A pool, route, rewrite or rollout that the request names does not exist."""


class Ambiguous(Refused):
    """The request matches more than one thing; the message lists them and how to pick."""


class InvalidInput(Refused):
    """The request is malformed (a bad step list, interval, or option)."""


class Conflict(Refused):
    """The request collides with current state (an active rollout, a phase that forbids it)."""


class NotYet(Conflict):
    """The step cannot be approved yet: its bake or its canary analysis has to end first.
    Time or a passing run brings it; the refusal says when, and what holds it after that."""


class NotReady(Refused):
    """The cluster is not ready for what was asked (a preflight gate, a freeze); the message
    lists each problem and what to do about it."""


class Outdated(Refused):
    """The request was made against a version of the rollout that has since moved on."""


class Unauthorized(Refused):
    """The actor may not take this action (not an approver, self-approval, wrong channel)."""


class TemporaryFailure(RolloutError):
    """Something we depend on is unavailable or busy; the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(TemporaryFailure):
    """Redis could not be reached; nothing was written (but see StoreUnknown)."""


class StoreUnknown(StoreUnavailable):
    """A save was sent and its answer never came, and Redis did not answer long enough after
    it to tell whether it was recorded."""


class ClusterUnavailable(TemporaryFailure):
    """The Kubernetes API failed or timed out."""


class Throttled(ClusterUnavailable):
    """The Kubernetes API refused a request before serving it (429: its priority and
    fairness, or its in-flight limit, throttling the bot): nothing was done, and the same
    request can be sent again after `retry_after`, which the server names."""


class WriteUnknown(ClusterUnavailable):
    """A write was sent and its answer lost, and the API did not answer long enough to tell
    whether it landed. The next read of the object (a command, the scheduler's sweep) tells,
    and the bot records what it finds."""


class Unrecorded(TemporaryFailure):
    """A change landed in the cluster and could not be recorded (Redis failed, or the lock
    lapsed, after the write). The next command or sweep reads it back and records it;
    repeating a command is safe: it finds the change applied."""


class Busy(TemporaryFailure):
    """Another operation holds the target's lock."""


class LockLapsed(TemporaryFailure):
    """This operation's target lock expired before it finished (Redis or the cluster was
    slow) and no rollback took it; nothing was recorded. The same request may be retried."""


class Superseded(RolloutError):
    """A later operation (a rollback) took the lock while this one ran; this one did not land,
    unless `landed`: then its write reached the cluster before the rollback, which undoes it."""

    def __init__(self, message: str, *, landed: bool = False) -> None:
        super().__init__(message)
        self.landed = landed


class DriftDetected(RolloutError):
    """The managed weights are not what the rollout last wrote: a human changed them."""


class FenceBehind(Superseded):
    """The object carries a higher fencing token than ours. Either a newer operation wrote
    it, or Redis lost its counter; only a holder whose lock is still intact may tell."""

    def __init__(self, message: str, *, seen: int) -> None:
        super().__init__(message)
        self.seen = seen


class StaleView(RolloutError):
    """A write decided on the namespace cache's copy of its object (a tick's reconcile)
    met an object that had moved since: the command is decided again, from a fresh read.
    Raised before anything is written or staged, and never out of the service."""


class NeedsOperator(RolloutError):
    """State and cluster disagree in a way the bot must not guess about; a human decides."""


class ClusterRejected(Refused, NeedsOperator):
    """The Kubernetes API refused an object the bot wrote as invalid (422, reason Invalid:
    the CRD's schema or validation rules, an admission policy). Nothing was written, and the
    same write would be refused again: no temporary failure. The message quotes the server's
    field causes. A refusal to whoever asked; a step the cluster refuses pauses its rollout
    for a person, as NeedsOperator does."""


class Unreadable(RolloutError):
    """A recorded state this version of the bot cannot read: a newer version wrote it (a
    rolling upgrade), or it was damaged. Nothing is decided on it; lists and the scheduler
    pass it by, and a command naming it is told so."""

    def __init__(self, message: str, *, rollout_id: str, field: str = "") -> None:
        super().__init__(message)
        self.rollout_id = rollout_id
        #: where the state could not be read (`phase`, `plan.steps.0`; '' when not JSON)
        self.field = field
