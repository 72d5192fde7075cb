"""Structured logs: one JSON object per line on stderr, as `kubectl logs` and log shippers
expect. Each line has `time`, `level`, `logger`, `message` and, where known, `event`,
`rollout_id` and `actor`, passed as `extra=` fields by the code that logs.

`LOG_LEVEL` sets the threshold; the rollout's own events (requests, decisions, steps,
refusals) are logged at INFO, failures at WARNING or ERROR with the traceback in `error`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from urllib3.util.retry import Retry

from bot.settings import LEVELS
from rollout.service import Outcome

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """A record as one JSON line; `extra=` fields become keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO", *, stream: TextIO | None = None) -> None:
    """Route every logger (the bot's, Bolt's, waitress's) through one JSON handler."""
    name = level.strip().upper() or "INFO"
    if name not in LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name)
    # APScheduler logs every sweep at INFO (every few seconds): keep it for DEBUG
    logging.getLogger("apscheduler").setLevel(name if name == "DEBUG" else "WARNING")
    pool_log = logging.getLogger("urllib3.connectionpool")
    if name == "DEBUG":
        pool_log.removeFilter(_unsaid_retries)
    else:
        pool_log.addFilter(_unsaid_retries)  # once: a filter already there is not added again


def _unsaid_retries(record: logging.LogRecord) -> bool:
    """urllib3 warns of each retry it makes (`Retrying (Retry(...)) after connection broken
    by ...`): while the API server is down, a line per request beside the bot's own, which
    says the failure once where it acts on it. Known by the Retry it carries, not by its
    words; kept at DEBUG. Its other warnings (a full connection pool) stay."""
    args = record.args
    return not (isinstance(args, tuple) and args and isinstance(args[0], Retry))


_decisions = logging.getLogger("rollout-bot.decisions")


def log_outcome(outcome: Outcome) -> None:
    """A service listener: one line per recorded decision (a step applied is one too), and
    one for an outcome that refused or failed without recording anything."""
    for event in outcome.events:
        _decisions.info(
            "%s %s", event.action, event.target,
            extra={"event": "step" if event.action == "step_applied" else "decision",
                   "action": event.action, "rollout_id": event.rollout_id,
                   "target": event.target, "actor": event.actor.id, "via": event.actor.via,
                   "step": event.step, "percent": event.percent, "detail": event.detail},
        )
    r = outcome.rollout
    if not outcome.ok and not outcome.events:
        _decisions.info(outcome.message, extra={
            "event": "refusal", "rollout_id": r.id if r is not None else None,
            "phase": r.phase.value if r is not None else None})
