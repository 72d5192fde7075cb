"""The Kubernetes naming rules, checked before any request is made.

A name that breaks them would reach the API server as a path segment (`llm-pool/status`
names a subresource) or be written into a live route as a backendRef; both edges and the
service check here first, so bad input gets one clear answer and changes nothing.
"""

from __future__ import annotations

import re

from rollout.domain.errors import InvalidInput

#: RFC 1123 subdomain: what InferencePools, HTTPRoutes and rewrites are named by
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_SUBDOMAIN = 253
#: RFC 1123 label: what namespaces are named by
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_LABEL = 63
#: an adapter (model) name in a rewrite target: free text of the CRD's length, printable
MAX_MODEL = 253
MAX_ACTOR = 100


def _shown(value: str) -> str:
    """The value as it may be quoted back on one line: control characters made visible."""
    shown = value.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 60 else shown[:57] + "..."


def object_name(what: str, value: str) -> str:
    """An object name (pool, route, rewrite): lowercase letters, digits, `-` and `.`."""
    if len(value) > MAX_SUBDOMAIN or not _SUBDOMAIN.match(value):
        raise InvalidInput(
            f"{what} `{_shown(value)}` is not a Kubernetes name: use at most {MAX_SUBDOMAIN} "
            "lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit")
    return value


def namespace_name(value: str) -> str:
    if len(value) > MAX_LABEL or not _LABEL.match(value):
        raise InvalidInput(
            f"namespace `{_shown(value)}` is not a Kubernetes namespace name: use at most "
            f"{MAX_LABEL} lowercase letters, digits and `-`")
    return value


#: Slack's markup characters: Slack sends a typed `&` as `&amp;` (which would be written
#: into the rewrite as is), and a name holding `<!channel>` would notify a channel from
#: every card and message that names the rollout
_MARKUP = frozenset("<>&")


def model_name(what: str, value: str) -> str:
    """An adapter name as a rewrite target carries it: any printable text without spaces
    or Slack's markup characters."""
    if not value or len(value) > MAX_MODEL or not value.isprintable() or any(
            c.isspace() or c in _MARKUP for c in value):
        raise InvalidInput(f"{what} `{_shown(value)}` is not a model name: use 1 to "
                           f"{MAX_MODEL} printable characters without spaces, `<`, `>` "
                           "or `&`")
    return value


def actor_name(value: str) -> str:
    """What `--as` records in the audit: short, printable, one line."""
    if not value or len(value) > MAX_ACTOR or not value.isprintable():
        raise InvalidInput(f"--as `{_shown(value)}` is not a usable name: use 1 to "
                           f"{MAX_ACTOR} printable characters")
    return value


def rollout_names(*, namespace: str, canary: str, route: str | None = None,
                  stable: str | None = None, rewrite: str | None = None) -> None:
    """Every name a start carries. An adapter rollout names models; a pool rollout, pools."""
    namespace_name(namespace)
    if rewrite is not None:
        object_name("rewrite", rewrite)
        model_name("adapter", canary)
        if stable is not None:
            model_name("stable adapter", stable)
    else:
        object_name("pool", canary)
        if stable is not None:
            object_name("stable pool", stable)
    if route is not None:
        object_name("route", route)
