"""JSON log lines: one object per line, extra fields as keys, tracebacks kept, LOG_LEVEL."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from kubernetes import client
from urllib3.exceptions import MaxRetryError

from bot import logs
from bot.kube import request_retries
from bot.settings import SettingsError, load_settings
from tests.support.control_plane import free_port


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("info", stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_a_record_is_one_json_line_with_its_fields(stream: io.StringIO) -> None:
    log = logging.getLogger("rollout-bot.test")
    log.info("approved %s", "step 1", extra={"event": "decision", "rollout_id": "r-1",
                                             "actor": "U0BOB"})
    log.debug("not shown at INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"event": "error"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "approved step 1" and first["level"] == "info"
    assert (first["event"], first["rollout_id"], first["actor"]) == ("decision", "r-1", "U0BOB")
    assert second["level"] == "error" and "RuntimeError: boom" in second["error"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        logs.configure("chatty")
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        load_settings(log_level="chatty")
    assert load_settings(log_level="debug").log_level == "DEBUG"


def _ask_a_closed_port() -> None:
    """A GET through the bot's Kubernetes client settings to a port nothing listens on:
    urllib3 retries it once (bot.kube.request_retries) and gives up."""
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    configuration.retries = request_retries()
    with client.ApiClient(configuration) as api, pytest.raises(MaxRetryError):
        client.VersionApi(api).get_code(_request_timeout=2)


def test_urllib3s_retry_warnings_are_dropped_and_its_other_warnings_kept(
        stream: io.StringIO) -> None:
    _ask_a_closed_port()
    logging.getLogger("urllib3.connectionpool").warning(
        "Connection pool is full, discarding connection: %s", "api")
    said = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in said] == [
        "Connection pool is full, discarding connection: api"]


def test_urllib3s_retry_warnings_are_kept_at_debug(stream: io.StringIO) -> None:
    logs.configure("debug", stream=stream)
    _ask_a_closed_port()
    said = [json.loads(line) for line in stream.getvalue().splitlines()]
    retried = [line for line in said
               if line["logger"] == "urllib3.connectionpool" and line["level"] == "warning"]
    assert len(retried) == 1 and retried[0]["message"].startswith("Retrying (Retry(")
