"""Settings a person got wrong are refused at start in one line naming the variable, and
settings that carry secrets are read as meant and never shown."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings

PASSWORD = "s3cret/pa#ss"


@pytest.mark.parametrize("url", [
    "http://rollout-redis:6379/0",
    "rollout-redis:6379",
    "",
    "redis://rollout-bot:secret@rollout-redis:port/0",
    "redis://rollout-bot:secret@rollout-redis:6379/0?socket_timeout=soon",
    f"redis://rollout-bot:{PASSWORD}@rollout-redis:6379/0",  # `/` unencoded splits the URL
])
def test_a_malformed_redis_url_is_one_line_naming_it(url: str) -> None:
    with pytest.raises(SettingsError, match=r"^invalid configuration: REDIS_URL: ") as caught:
        load_settings(redis_url=url)
    assert "secret" not in str(caught.value) and "pa#ss" not in str(caught.value)


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "rediss://u:p@cache.example.org:6380/2?ssl_cert_reqs=required",
    "unix:///run/redis/redis.sock", "redis://u:s3cret%2Fpa%23ss@rollout-redis:6379/0",
])
def test_a_redis_url_the_client_reads_is_kept(url: str) -> None:
    assert load_settings(redis_url=url).redis_url == url


def test_a_secret_from_a_file_loses_the_files_last_newline() -> None:
    """A newline kept from the file would fail every signature and every Web API call."""
    settings = load_settings(slack_bot_token="xoxb-1-2-abc\n", slack_signing_secret="abc123\n",
                             slack_app_token=" xapp-1-A-2-def\r\n",
                             redis_url="redis://u:p@rollout-redis:6379/0\n")
    assert (settings.slack_bot_token, settings.slack_signing_secret,
            settings.slack_app_token) == ("xoxb-1-2-abc", "abc123", "xapp-1-A-2-def")
    assert settings.redis_url == "redis://u:p@rollout-redis:6379/0"


def test_a_blank_token_counts_as_missing_for_serve() -> None:
    from bot.settings import require_for_serve

    settings = load_settings(slack_bot_token="  \n", slack_signing_secret="abc",
                             rollout_approvers="U1")
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN"):
        require_for_serve(settings, socket_mode=False)


@pytest.mark.parametrize("url", ["slack.example.org/api", "ftp://slack.example.org/api/"])
def test_a_slack_api_url_without_http_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match=r"SLACK_API_URL: is a Web API base URL"):
        load_settings(slack_api_url=url)


def test_an_empty_slack_api_url_means_slack() -> None:
    assert load_settings(slack_api_url="").slack_api_url is None
    assert load_settings(slack_api_url="http://127.0.0.1:9/api/").slack_api_url == \
        "http://127.0.0.1:9/api/"


def test_the_settings_repr_shows_no_secret() -> None:
    settings = load_settings(slack_bot_token="xoxb-tok", slack_signing_secret="sig-secret",
                             slack_app_token="xapp-tok", redis_sentinel_password="sentinel-pw",
                             redis_url="redis://rollout-bot:redis-pw@rollout-redis:6379/0")
    shown = repr(settings) + str(settings)
    for secret in ("xoxb-tok", "sig-secret", "xapp-tok", "sentinel-pw", "redis-pw"):
        assert secret not in shown
    assert "rollout_namespace='default'" in shown


@pytest.mark.parametrize("name", ["rollout_leader_ttl", "rollout_tick", "rollout_lock_ttl"])
def test_a_lease_sweep_or_lock_of_zero_is_refused_not_read_as_the_default(name: str) -> None:
    variable = name.upper()
    with pytest.raises(SettingsError, match=rf"{variable}: .*must be at least 1s"):
        load_settings(**{name: "0s"})
    kept = load_settings(**{name: "2s"})
    assert kept.seconds(getattr(kept, name)) == 2


@pytest.mark.parametrize("name", ["rollout_namespace", "rollout_key_prefix"])
def test_a_blank_namespace_or_key_prefix_is_refused(name: str) -> None:
    with pytest.raises(SettingsError, match=rf"{name.upper()}: .*must not be empty"):
        load_settings(**{name: "  "})
    assert getattr(load_settings(**{name: " prod "}), name) == "prod"
