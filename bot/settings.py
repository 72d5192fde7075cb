"""Settings from the environment, validated once at start with messages a person can act on."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rollout.adapters.analysis_file import load_analyses
from rollout.adapters.prometheus import (
    BearerTokenFile,
    check_header,
    check_one_credential,
    parse_headers,
)
from rollout.domain.errors import InvalidInput
from rollout.domain.plan import parse_interval
from rollout.redis_connect import check_url

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every knob the bot reads. Names are the environment variables of DESIGN.md §8."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # the secrets (REDIS_URL carries the password) are left out of the settings' repr, so
    # that no log line or traceback that shows the settings shows them
    slack_bot_token: str = Field(default="", repr=False)
    slack_signing_secret: str = Field(default="", repr=False)
    slack_app_token: str = Field(default="", repr=False)
    slack_api_url: str | None = None
    slack_socket_ping: float = Field(default=5.0, ge=0.5, le=60)
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_sentinels: CommaList = Field(default_factory=list)
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_password: str = Field(default="", repr=False)
    kubeconfig: str | None = None
    rollout_namespace: str = "default"
    rollout_approvers: CommaList = Field(default_factory=list)
    rollout_approver_groups: CommaList = Field(default_factory=list)
    rollout_allowed_channels: CommaList = Field(default_factory=list)
    rollout_self_approval: bool = False
    rollout_key_prefix: str = "rollout-bot"
    rollout_reminder: str = "30m"
    rollout_approval_timeout: str = ""
    # how long a completed rollout keeps the old pool in the route before `retire` is due
    rollout_keep: str = "24h"
    # how long Redis keeps a rollout nothing more is asked of (rolled back, failed, retired,
    # or completed past its keep period), with its history; 0: for ever
    rollout_retention: str = "90d"
    rollout_group_cache_ttl: str = "5m"
    rollout_leader_ttl: str = "15s"
    rollout_tick: str = "5s"
    rollout_kube_timeout: float = Field(default=5.0, gt=0, le=120)
    # serve, scheduler, sandbox: the namespace cache's watches end and resume this often;
    # 0 turns the cache off (every step reads the namespace, as the CLI does)
    rollout_watch_seconds: int = Field(default=60, ge=0, le=3600)
    rollout_lock_ttl: str = "15s"
    # serve, scheduler, sandbox: the leader's ticks in flight at once (each a thread and a
    # Kubernetes connection); the default is rollout.scheduler.STEP_THREADS, which says why
    rollout_tick_threads: int = Field(default=32, ge=1, le=256)
    # the capacity gate: Ready canary endpoints at any time, and the margin over its share
    rollout_capacity_minimum: int = Field(default=1, ge=0, le=100_000)
    rollout_capacity_headroom: int = Field(default=0, ge=0, le=1000)
    # rollback readiness: the share of its Ready endpoints at start the stable pool keeps
    rollout_rollback_ready_percent: int = Field(default=100, ge=0, le=100)
    # serve, scheduler: seconds the whole graceful stop may take after SIGTERM, every wait
    # in it included; below the pods' 60 s grace period less their 5 s preStop pause
    rollout_stop_timeout: float = Field(default=50.0, ge=1, le=3600)
    log_level: str = "INFO"

    @field_validator("rollout_approvers", "rollout_approver_groups", "rollout_allowed_channels",
                     "redis_sentinels", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rollout_reminder", "rollout_approval_timeout", "rollout_keep",
                     "rollout_group_cache_ttl",
                     "rollout_leader_ttl", "rollout_tick", "rollout_lock_ttl")
    @classmethod
    def _durations_parse(cls, value: str) -> str:
        if value.strip():
            try:
                parse_interval(value, require_unit=False)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("rollout_retention")
    @classmethod
    def _retention_parses(cls, value: str) -> str:
        try:
            retention_seconds(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("rollout_namespace", "rollout_key_prefix")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        """A blank namespace or key prefix was taken: commands without `-n` then failed at
        the cluster, and every Redis key began with `:`."""
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("rollout_leader_ttl", "rollout_tick", "rollout_lock_ttl")
    @classmethod
    def _never_off(cls, value: str) -> str:
        """The lease, the sweep and the locks cannot be switched off: 0 was read as the
        default, silently."""
        if value.strip() and parse_interval(value, require_unit=False) == 0:
            raise ValueError("must be at least 1s: the lease, the sweep and the locks "
                             "cannot be switched off")
        return value

    @field_validator("slack_bot_token", "slack_signing_secret", "slack_app_token", "redis_url",
                     mode="before")
    @classmethod
    def _no_surrounding_whitespace(cls, value: object) -> object:
        """A Secret made from a file (`kubectl create secret --from-file`, `echo > file`)
        keeps the file's last newline: a signing secret with it fails every request's
        signature, a token with it every Web API call. Slack's tokens and a URL hold no
        whitespace, so what surrounds them is dropped."""
        return value.strip() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: str) -> str:
        """Checked here, so that a malformed URL stops any command with this one line rather
        than a traceback at the first connection."""
        try:
            check_url(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_api_url(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and \
                not value.strip().startswith(("http://", "https://")):
            raise ValueError("is a Web API base URL, e.g. https://slack.com/api/")
        return value.strip() if value is not None and value.strip() else None

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"wants host:port entries, not {entry!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _level_known(cls, value: str) -> str:
        if value.strip().upper() not in LEVELS:
            raise ValueError(f"must be one of {', '.join(LEVELS)}")
        return value.strip().upper()

    def seconds(self, value: str) -> int | None:
        """A duration setting in seconds; None where it is empty or 0 (switched off)."""
        return (parse_interval(value, require_unit=False) or None) if value.strip() else None

    @property
    def approvers_configured(self) -> bool:
        return bool(self.rollout_approvers or self.rollout_approver_groups)

    # Slack edge (handlers/, bot/server.py): where cards of rollouts started outside Slack go
    rollout_notify_channel: str = ""

    # Canary analysis: without PROMETHEUS_URL, rollouts start without metric gates (README)
    prometheus_url: str = ""
    # credentials beyond the URL's basic auth (a token file, re-read at each query) and
    # extra headers, such as the tenant of a Mimir or Cortex
    prometheus_bearer_token_file: str = ""
    prometheus_headers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict,
                                                                    repr=False)
    rollout_analysis_file: str = ""

    @field_validator("prometheus_url")
    @classmethod
    def _prometheus_url(cls, value: str) -> str:
        if value.strip() and not value.startswith(("http://", "https://")):
            raise ValueError("PROMETHEUS_URL is the server's base URL, e.g. "
                             "http://prometheus.monitoring:9090")
        return value.strip()

    @field_validator("prometheus_bearer_token_file")
    @classmethod
    def _token_file_reads(cls, value: str, info: ValidationInfo) -> str:
        """Refused at start, not at each query: a file the bot cannot read or that holds no
        token, or a token beside credentials in PROMETHEUS_URL."""
        path = value.strip()
        if path:
            try:
                check_one_credential(info.data.get("prometheus_url", ""), path)
                BearerTokenFile(path).read()
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return path

    @field_validator("prometheus_headers", mode="before")
    @classmethod
    def _headers_parse(cls, value: object) -> object:
        """`Name=value,Name=value`, each header checked, the bad one named."""
        try:
            if isinstance(value, str):
                return parse_headers(value)
            if isinstance(value, dict):
                for name, header_value in value.items():
                    check_header(str(name), str(header_value))
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("rollout_analysis_file")
    @classmethod
    def _analysis_file_loads(cls, value: str) -> str:
        """A bad analysis file is refused at start, with its file, line and reason."""
        if value.strip():
            try:
                load_analyses(value)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value.strip()


_RETENTION = re.compile(r"^\s*([0-9]{1,7})\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_RETENTION_DAYS = 3650


def retention_seconds(value: str) -> int:
    """`90d`, `720h`, or `0` (for ever). At least an hour: a shorter one would take a
    rollback's record away before people have read what happened."""
    found = _RETENTION.match(value)
    if found is None:
        raise InvalidInput(f"invalid retention `{value.strip()}`: give a duration like 90d "
                           "or 720h, or 0 to keep every rollout for ever")
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if seconds > MAX_RETENTION_DAYS * 86400:
        raise InvalidInput(f"invalid retention `{value.strip()}`: at most "
                           f"{MAX_RETENTION_DAYS}d")
    if 0 < seconds < 3600:
        raise InvalidInput(f"invalid retention `{value.strip()}`: at least 1h (or 0 to keep "
                           "every rollout for ever)")
    return seconds


class SettingsError(Exception):
    """The environment is missing or malformed; the message names the variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err.get("loc", ())).upper()
            message = str(err.get("msg", "")).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


def require_for_serve(settings: Settings, *, socket_mode: bool) -> None:
    """`serve` refuses to start without the secrets Slack needs and at least one approver."""
    missing = []
    if not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN")
    if not settings.slack_signing_secret and not socket_mode:
        missing.append("SLACK_SIGNING_SECRET")
    if socket_mode and not settings.slack_app_token:
        missing.append("SLACK_APP_TOKEN (needed by --socket-mode)")
    if missing:
        raise SettingsError("missing configuration: " + ", ".join(missing))
    if not settings.approvers_configured:
        raise SettingsError(
            "no approvers configured: set ROLLOUT_APPROVERS (Slack user ids, comma-separated, "
            "or * for anyone) or ROLLOUT_APPROVER_GROUPS (Slack user group ids)"
        )
