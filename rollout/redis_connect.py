"""The Redis client from settings: a URL (`redis://`, `rediss://` for TLS), or Redis
Sentinel, which finds the current master by name and follows it through a failover.

With Sentinel, REDIS_URL still carries what the data nodes need (ACL user, password, db,
TLS); REDIS_SENTINELS lists the sentinels (host:port,...) and REDIS_SENTINEL_MASTER names
the master. A command in flight when the master dies fails as StoreUnavailable (the caller
retries); the next one reaches whichever node Sentinel promoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry
from redis.sentinel import Sentinel

from rollout.domain.errors import InvalidInput


class SetupRefused(RedisConnectionError):
    """The server refused the connection's setup (SELECT of a db it does not have, HELLO,
    CLIENT SETNAME): a connection that failed, on which no command was sent, not a command's
    error (an uncaught ResponseError left the CLI with a traceback and a command with no
    answer)."""


def _set_up(connection: AbstractConnection) -> None:
    """redis-py's own setup of a new connection, its refusals told as SetupRefused."""
    try:
        connection.on_connect()  # type: ignore[no-untyped-call]
    except ResponseError as exc:
        raise SetupRefused(f"the server refused the connection's setup: {exc}; check "
                           "REDIS_URL (its db number, its protocol)") from exc


#: `retry`: a command is never sent again on its own. A save whose answer was lost may have
#: run; sent again it would find the lock given back and be answered "not recorded". The
#: store decides by reading back (`RedisStore._settled`), and the caller retries.
OPTIONS: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5,
                           "socket_connect_timeout": 2, "health_check_interval": 15,
                           "retry": Retry(NoBackoff(), 0), "redis_connect_func": _set_up}


SCHEMES = ("redis", "rediss", "unix")


def check_url(url: str) -> None:
    """Refuse a REDIS_URL the client could not connect with, before any connection is tried.
    The message never quotes the URL: it carries the password, and a password with a `/` or
    `#` in it splits where the URL's parts are read, so that any part may be some of it."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise InvalidInput("must be redis://USER:PASSWORD@HOST:6379/0 (rediss:// for TLS, "
                           "unix:///PATH for a socket)")
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError:
        raise InvalidInput("is not a URL the Redis client can read: check the port, the db "
                           "number and the query options, and percent-encode a password's "
                           "reserved characters (/ ? # @ :)") from None


def connect(url: str, *, sentinels: Sequence[str] = (), master: str = "mymaster",
            sentinel_password: str | None = None) -> redis.Redis:
    if not sentinels:
        return redis.Redis.from_url(url, **OPTIONS)
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise InvalidInput(f"REDIS_URL must be redis:// or rediss://, not {parsed.scheme}://")
    # user, password, db and TLS options, as redis.Redis.from_url reads them
    node: dict[str, Any] = {**OPTIONS, **parse_url(url)}  # type: ignore[no-untyped-call]
    for where in ("host", "port", "connection_class"):  # Sentinel says where the master is
        node.pop(where, None)
    if parsed.scheme == "rediss":
        node["ssl"] = True
    sentinel_options: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if sentinel_password:
        sentinel_options["password"] = sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [_address(s) for s in sentinels], sentinel_kwargs=sentinel_options, **node)
    client: redis.Redis = sentinel.master_for(master, **node)  # type: ignore[no-untyped-call]
    return client


def _address(entry: str) -> tuple[str, int]:
    host, sep, port = entry.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInput(f"REDIS_SENTINELS wants host:port entries, not {entry!r}")
    return host.strip("[]"), int(port)
