"""A click is audited with who clicked and in which channel (DESIGN invariant 8)."""

from __future__ import annotations

from handlers.slack_listeners import _clicker


def test_a_click_names_its_channel() -> None:
    actor = _clicker({"user": {"id": "U0BOB", "username": "bob"}, "channel": {"id": "C0ROLL"}})
    assert (actor.id, actor.name, actor.via, actor.channel) == ("U0BOB", "bob", "slack", "C0ROLL")


def test_a_click_in_a_message_container_names_the_containers_channel() -> None:
    actor = _clicker({"user": {"id": "U0BOB"}, "container": {"channel_id": "C0ROLL"}})
    assert actor.channel == "C0ROLL"
