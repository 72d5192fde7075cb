"""Builds the Bolt app: the Web API client, the authorizer, the listeners and the card sync.

The only place that knows both Bolt and the container. The Web API client retries Slack's
rate limits (honouring a Retry-After of up to 10 s) and dropped connections; the app
authorizes every request with the configured bot token and makes no `auth.test` call on the
ack path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.bootstrap import Container
from bot.card_updates import build_publisher
from bot.settings import Settings
from bot.slack_budget import CappedRateLimitRetry
from handlers.authorization import Authorizer, GroupMembers, Policy
from handlers.slack_listeners import SlackEdge, register
from handlers.telemetry import Telemetry
from handlers.workers import Workers, rollback_workers, side_workers

log = logging.getLogger(__name__)

DEFAULT_GROUP_CACHE_SECONDS = 300


def web_client(settings: Settings) -> WebClient:
    """A Web API client for `SLACK_API_URL` (or Slack), retrying rate limits and drops."""
    base_url = settings.slack_api_url or WebClient.BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    client = WebClient(token=settings.slack_bot_token or None, base_url=base_url, timeout=10)
    if not any(isinstance(h, ConnectionErrorRetryHandler) for h in client.retry_handlers):
        client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=2))
    client.retry_handlers.append(CappedRateLimitRetry(max_retry_count=3))
    return client


@contextlib.contextmanager
def _wiring_notices_dropped(bolt_log: logging.Logger) -> Iterator[None]:
    """Bolt warns at every start, while it builds the app, that the token is unused and
    will be ignored: it reads SLACK_BOT_TOKEN from the environment by itself, and the bot
    gives the token through its own client and `authorize` on purpose. That is true of
    Bolt's own copy only; an operator reading the log learns that the token is ignored,
    which it is not. These notices are about the bot's code, not a setting: dropped while
    the app is built, Bolt's errors kept."""
    was = bolt_log.level
    bolt_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        bolt_log.setLevel(was)


def build_authorizer(settings: Settings, *, container: Container,
                     web_client: WebClient) -> Authorizer:
    policy = Policy.of(approvers=settings.rollout_approvers,
                       approver_groups=settings.rollout_approver_groups,
                       allowed_channels=settings.rollout_allowed_channels)

    def fetch(group_id: str) -> list[str]:
        response = web_client.usergroups_users_list(usergroup=group_id)
        return [str(u) for u in response.get("users") or []]

    ttl = settings.seconds(settings.rollout_group_cache_ttl) or DEFAULT_GROUP_CACHE_SECONDS
    members = GroupMembers(fetch=fetch, cache=container.store, ttl_seconds=ttl)
    return Authorizer(policy, members)


def build_app(
    container: Container, *, settings: Settings, web_client: WebClient,
    telemetry: Telemetry | None = None, socket_mode: bool = False,
    workers: Workers | None = None, side: Workers | None = None,
    rollbacks: Workers | None = None,
) -> App:
    """The Bolt app; also registers the card publisher as a listener of the service.

    Over HTTP every request's signature is checked (an empty secret refuses them all); in
    Socket Mode Slack's own connection authenticates the payloads. Listeners run with
    `process_before_response`: each acks and returns in the request thread, and the work
    after the ack runs on `workers` (the bot's bounded pool), so an ack never waits behind
    work already running on Bolt's listener pool."""
    token = settings.slack_bot_token

    def authorize(**kwargs: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=kwargs.get("enterprise_id"),
                               team_id=kwargs.get("team_id"), bot_token=token,
                               user_id=kwargs.get("user_id"))

    bolt_log = logging.getLogger("rollout-bot.bolt")
    with _wiring_notices_dropped(bolt_log):
        app = App(
            name="rollout-bot",
            signing_secret=settings.slack_signing_secret,
            client=web_client,
            authorize=authorize,
            token_verification_enabled=False,
            request_verification_enabled=not socket_mode,
            logger=bolt_log,
            process_before_response=True,
        )
    cards = build_publisher(container, client=web_client, telemetry=telemetry)
    container.listeners.append(cards)
    edge = SlackEdge(
        service=container.service,
        authorizer=build_authorizer(settings, container=container, web_client=web_client),
        cards=cards, namespace=settings.rollout_namespace, telemetry=telemetry,
        workers=workers or Workers(), side=side or side_workers(),
        rollbacks=rollbacks or rollback_workers(),
    )
    register(app, edge)
    return app
