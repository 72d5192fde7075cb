"""Counted nouns in the sentences people read: `1 passing run`, `2 passing runs`, never
`run(s)`."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless `n` is 1 (the nouns the bot counts take an -s)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
