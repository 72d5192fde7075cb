"""The emulator's signatures and request bodies must pass Slack's own verifier and parsers."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

from sandbox.slack import block_actions_body, sign_request, slash_command_body

SECRET = "unit-signing-secret"


def _verify(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    return SignatureVerifier(secret).is_valid_request(body, headers)


def test_signature_is_accepted_by_slack_sdk() -> None:
    body = slash_command_body(user_id="U0ALICE", channel_id="C0ROLLOUT", text="pool start")
    headers = sign_request(SECRET, body)
    assert set(headers) == {"X-Slack-Request-Timestamp", "X-Slack-Signature"}
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert abs(int(headers["X-Slack-Request-Timestamp"]) - time.time()) < 5
    assert _verify(SECRET, body, headers)


def test_signature_with_the_wrong_secret_is_rejected() -> None:
    body = b"token=x&text=hello"
    assert not _verify("another-secret", body, sign_request(SECRET, body))


def test_tampered_body_is_rejected() -> None:
    headers = sign_request(SECRET, b"text=approve")
    assert not _verify(SECRET, b"text=rollback", headers)


def test_signature_older_than_five_minutes_is_rejected() -> None:
    body = b"text=hello"
    stale = sign_request(SECRET, body, timestamp=int(time.time()) - 6 * 60)
    assert not _verify(SECRET, body, stale)
    recent = sign_request(SECRET, body, timestamp=int(time.time()) - 4 * 60)
    assert _verify(SECRET, body, recent)


def test_known_vector() -> None:
    # v0=HMAC_SHA256(secret, "v0:1531420618:" + body), as in Slack's documentation example.
    body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J"
    headers = sign_request("8f742231b10e8888abcd99yyyzzz85a5", body, timestamp=1531420618)
    verifier = SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5", clock=_FixedClock(1531420618))
    assert verifier.is_valid_request(body, headers)


class _FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def test_slash_command_body_has_slacks_fields() -> None:
    body = slash_command_body(
        user_id="U0ALICE",
        channel_id="C0ROLLOUT",
        text="llm-pool-version-2 start",
        user_name="alice",
        channel_name="llm-rollouts",
        response_url="http://127.0.0.1:1/response/x",
    )
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert list(fields) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert fields["command"] == "/rollout"
    assert fields["text"] == "llm-pool-version-2 start"
    assert fields["is_enterprise_install"] == "false"


def test_block_actions_body_is_a_payload_field() -> None:
    message = {"type": "message", "ts": "1732512345.000100", "text": "card", "blocks": []}
    body = block_actions_body(
        user_id="U0BOB",
        channel_id="C0ROLLOUT",
        message_ts="1732512345.000100",
        action_id="rollout_approve",
        value="r1:0:3",
        block_id="actions",
        message=message,
    )
    form = parse_qs(body.decode())
    assert list(form) == ["payload"]
    payload = json.loads(form["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0BOB"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1732512345.000100",
        "channel_id": "C0ROLLOUT",
        "is_ephemeral": False,
    }
    assert payload["message"] == message
    (action,) = payload["actions"]
    assert action["action_id"] == "rollout_approve"
    assert action["value"] == "r1:0:3"
    assert action["type"] == "button"
    assert action["block_id"] == "actions"
