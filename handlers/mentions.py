"""Slack's own markup for people and times in what the bot posts.

An approval request that mentions no one is seldom seen, and a time written in UTC is wrong
for most readers: Slack renders `<!subteam^…>`, `<@…>` and `<!date^…>` for each reader,
in their own time zone, and the text never goes stale ("in 5 minutes" would).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from handlers.authorization import ANYONE


def approvers_mention(*, approvers: Iterable[str], groups: Iterable[str]) -> str:
    """The approver groups and users as Slack mentions; empty where anyone may approve and
    no group is named (there is no one in particular to call)."""
    parts = [f"<!subteam^{g}>" for g in groups]
    parts += [f"<@{u}>" for u in approvers if u != ANYONE]
    return " ".join(parts)


def slack_date(at: datetime, tokens: str = "{date_short_pretty} {time}",
               fallback: str = "%Y-%m-%d %H:%M UTC") -> str:
    """`<!date^EPOCH^TOKENS|fallback>`: local to whoever reads it, kept current by Slack;
    `fallback` (a strftime format) is what clients that cannot render it show."""
    return f"<!date^{int(at.timestamp())}^{tokens}|{at.strftime(fallback)}>"


def literal(text: str) -> str:
    """`text` as Slack shows it literally: `&`, `<` and `>` escaped, as Slack's formatting
    rules ask. Slack escapes a slash command's text itself, but not what is typed into a
    dialog, where `<!channel>` or `<@U…>` would otherwise mention people from the card."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unmarked(text: str) -> str:
    """Text the bot did not write in Slack's markup (the cluster's, such as a field manager's
    name in a drift pause, or a CLI `--as` name) with `<` and `>` escaped, so that it shows as
    written and mentions no one. `&` is left: a reason people typed is kept already escaped
    (`&lt;`), and escaping it again would show the entity instead of the character."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str) -> str:
    """`literal` undone, for a terminal: a reason typed in Slack (or the CLI) is kept as
    Slack escapes it, and the CLI prints what was typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
